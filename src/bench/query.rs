//! `orderflow bench query` (issue 4 §6): `GetOrder` and `ListBuyerOrders` from `--clients`
//! concurrent gRPC clients against the real `QueryService` (the read app on PostgreSQL read
//! models, served in this process on `127.0.0.1:0`, bearer tokens checked on every call),
//! over a read model of `--orders` orders seeded as [`seed`] says. Reported: queries/s and
//! p50/p99/p999 per RPC, and the same run's PostgreSQL read ceiling: the two queries the
//! adapters run, issued raw from as many connections as the app's pool, no gRPC, no auth, no
//! JSON decoding. Target: ≥ 5,000 queries/s with p99 ≤ 5 ms. Meanwhile [`lag`] appends new
//! orders through the event store and reports the projection lag the readers would see.
//!
//! Clients and server share the machine (and the process): on two cores, the clients' CPU
//! is the server's loss. That is part of the figure.

mod ceiling;
mod lag;
mod load;
pub mod seed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use orderflow_command_service::server;
use orderflow_domain::Shard;
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::store::{PgEventStore, PgStoreConfig, ShardMap};
use orderflow_query_service::ReadApp;
use serde_json::json;

use self::lag::LagResult;
use self::load::{LoadPlan, LoadResult, RpcLoad};
use self::seed::Dataset;
use super::cpu::{CpuMark, CpuUse};
use super::report::{self, ScenarioResult};
use orderflow::scratch::ScratchDatabase;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// PostgreSQL server (a fresh database is created on it and dropped after).
    #[arg(long, env = "ORDERFLOW_DATABASE_URL")]
    pub database_url: String,
    /// Orders in the read model.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub orders: u64,
    /// Concurrent gRPC clients, each awaiting its answer before the next call.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// Clients sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients_per_connection: u64,
    /// Seconds of the query load.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub seconds: u64,
    /// Seconds of each raw-query ceiling measurement.
    #[arg(long, default_value_t = 5)]
    pub ceiling_seconds: u64,
    /// Connections of the store's pool, which the projectors write on and the ceiling
    /// measures from (the store's default, 16, when absent).
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// Connections of the queries' own pool (`serve`'s `query_pool_size`; default eight per
    /// core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub query_pool_size: Option<u64>,
    /// Shared, pipelined connections for GetOrder and list pages (`serve`'s
    /// `query_connections`; default one per core); 0 puts every query on the pool.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=64))]
    pub query_connections: Option<u64>,
    /// Open loop: queries per second over all clients, sent on schedule whatever the
    /// answers, latency counted from when each call was due. Absent: closed loop (each
    /// client calls again as soon as it is answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Keep the bench database instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
    /// Print the result as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let db = super::database::create(&args.database_url).await?;
    let outcome = measure(&db, &args).await;
    // Whatever happened, the database goes.
    let finished = db.finish(args.keep_database).await;
    let outcome = outcome?;
    finished?;
    outcome.print(args.json);
    Ok(())
}

async fn measure(db: &ScratchDatabase, args: &QueryArgs) -> anyhow::Result<QueryBench> {
    let mut config = PgStoreConfig::new(ShardMap::single(&db.url));
    if let Some(size) = args.pool_size {
        config.pool_size = size.max(config.writers_per_database + 2);
    }
    let pool_size = config.pool_size;
    // Connecting migrates: the read-model tables are the app's own.
    let store = PgEventStore::connect(config)
        .await
        .context("connecting the event store")?;
    let pool = store.pool(Shard::of_id(0)).clone();
    let dataset = Dataset {
        orders: args.orders,
    };
    let query_pool_size = args
        .query_pool_size
        .map_or_else(crate::config::default_query_pool_size, |n| n as usize);
    let query_connections = args
        .query_connections
        .map_or_else(crate::config::default_query_connections, |n| n as usize);
    eprintln!(
        "bench query: {} orders of {} buyers; {} clients over {} connections, {}; store pool {}, \
         query pool {}, shared read connections {}; {} cores",
        dataset.orders,
        dataset.buyers(),
        args.clients,
        args.clients.div_ceil(args.clients_per_connection),
        args.rate.map_or("closed loop".to_owned(), |r| format!(
            "open loop at {r} queries/s"
        )),
        pool_size,
        query_pool_size,
        query_connections,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let started = Instant::now();
    let events = seed::seed(dataset, &pool).await?;
    let seeded_in = started.elapsed();
    eprintln!(
        "seeded {events} events into order_detail, buyer_order, seller_order in {:.1} s",
        seeded_in.as_secs_f64()
    );
    // Fresh statistics for the planner, as autovacuum would give a table this size.
    db.client()
        .await?
        .batch_execute("ANALYZE order_detail; ANALYZE buyer_order; ANALYZE seller_order")
        .await?;

    // The seeding moved the projections' checkpoints past positions this empty store has not
    // reached: back to zero, so the projectors follow the appends of the lag measurement (the
    // seeded rows stay; those appends are new orders).
    db.client()
        .await?
        .batch_execute("DELETE FROM checkpoints WHERE name LIKE 'projection:%'")
        .await?;

    let queries = orderflow_projections::pg::query_pool(&db.url, query_pool_size)?;
    let shared = (query_connections > 0)
        .then(|| orderflow_projections::pg::SharedReads::new(&db.url, query_connections))
        .transpose()?;
    let cpu_client = db.client().await?;
    let load = serve_and_load(&store, pool, queries, shared, dataset, args, &cpu_client).await;
    drop(cpu_client);
    store.shutdown().await;
    let (load, lag, cpu) = load?;

    let mut ceilings = Vec::new();
    let seconds = Duration::from_secs(args.ceiling_seconds.max(1));
    for query in [ceiling::Query::Detail, ceiling::Query::BuyerList] {
        ceilings.push(ceiling::raw_reads(db, query, pool_size, seconds, dataset).await?);
    }
    Ok(QueryBench {
        dataset,
        clients: args.clients as usize,
        seeded_in,
        load,
        lag,
        cpu,
        ceilings,
    })
}

/// The read app on the bench database, served on port 0 for the length of the load.
async fn serve_and_load(
    store: &PgEventStore,
    pool: deadpool_postgres::Pool,
    queries: deadpool_postgres::Pool,
    shared: Option<orderflow_projections::pg::SharedReads>,
    dataset: Dataset,
    args: &QueryArgs,
    cpu_client: &tokio_postgres::Client,
) -> anyhow::Result<(LoadResult, LagResult, CpuUse)> {
    // A random secret per run: tokens of one run are worthless anywhere else.
    let secret = JwtSecret::new(uuid::Uuid::new_v4().as_bytes().repeat(2))?;
    let auth = JwtAuth::new(&secret);
    let mut read = ReadApp::builder(auth.clone(), Arc::new(store.clone()))
        .postgres(pool)
        .query_pool(queries);
    if let Some(shared) = shared {
        read = read.shared_reads(shared);
    }
    let read = read.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(read.query_service())
            .serve_with_incoming_shutdown(server::incoming(listener), async move {
                let _ = stopped.await;
            }),
    );
    let plan = LoadPlan {
        clients: args.clients as usize,
        per_connection: args.clients_per_connection as usize,
        duration: Duration::from_secs(args.seconds),
        rate: args.rate,
    };
    let applied = read
        .projections()
        .iter()
        .map(|p| p.applied().clone())
        .collect();
    let deadline = Instant::now() + plan.duration;
    // Marks the start of the load on stderr (for attaching a profiler to this part only).
    eprintln!("load: {} s", plan.duration.as_secs());
    // CPU over the load (the server, the bench's clients, the lag appenders and projectors),
    // read before the read app stops: its query pool's backends end with it.
    let cpu = CpuMark::start(Some(cpu_client), false).await;
    let (load, lag) = tokio::join!(
        load::run(addr, &auth, dataset, plan),
        lag::run(Arc::new(store.clone()), applied, dataset, deadline)
    );
    let cpu = cpu.finish(Some(cpu_client)).await;
    read.begin_shutdown();
    let _ = stop.send(());
    let served = server.await;
    read.shutdown().await;
    served??;
    Ok((load?, lag?, cpu))
}

struct QueryBench {
    dataset: Dataset,
    clients: usize,
    seeded_in: Duration,
    load: LoadResult,
    lag: LagResult,
    /// Over the load, from the server's start to its stop.
    cpu: CpuUse,
    ceilings: Vec<ScenarioResult>,
}

impl QueryBench {
    fn rpc(&self, name: &str, rpc: &RpcLoad) -> ScenarioResult {
        ScenarioResult {
            name: format!("{name} over gRPC"),
            concurrency: self.clients,
            operations: rpc.ok,
            errors: rpc.errors.values().sum(),
            elapsed: self.load.elapsed,
            latency: Some(rpc.latency.clone()),
        }
    }

    fn rows(&self) -> Vec<ScenarioResult> {
        let get = self.rpc("GetOrder", &self.load.get_order);
        let list = self.rpc("ListBuyerOrders", &self.load.list_buyer);
        let mut both = self.load.get_order.latency.clone();
        let _ = both.add(&self.load.list_buyer.latency);
        let all = ScenarioResult {
            name: "both RPCs".to_owned(),
            concurrency: self.clients,
            operations: get.operations + list.operations,
            errors: get.errors + list.errors,
            elapsed: self.load.elapsed,
            latency: Some(both),
        };
        vec![get, list, all]
    }

    fn print(&self, as_json: bool) {
        let rows = self.rows();
        if as_json {
            let value = json!({
                "orders": self.dataset.orders,
                "buyers": self.dataset.buyers(),
                "seeded_s": self.seeded_in.as_secs_f64(),
                "connections": self.load.connections,
                "get_order": rows[0].to_json(),
                "list_buyer_orders": rows[1].to_json(),
                "all": rows[2].to_json(),
                "errors": {"get_order": self.load.get_order.errors,
                           "list_buyer_orders": self.load.list_buyer.errors},
                "projection_lag": {"appended": self.lag.appended, "timeouts": self.lag.timeouts,
                                   "appenders": lag::APPENDERS, "p50_ms": ms(&self.lag.lag, 0.5),
                                   "p99_ms": ms(&self.lag.lag, 0.99), "max_ms": self.lag.lag.max() as f64 / 1000.0},
                "ceiling": self.ceilings.iter().map(ScenarioResult::to_json).collect::<Vec<_>>(),
                "cpu": self.cpu.to_json(rows[2].operations),
            });
            println!("{value}");
            return;
        }
        let mut table: Vec<ScenarioResult> = rows;
        table.extend(self.ceilings.iter().map(|c| ScenarioResult {
            name: c.name.clone(),
            concurrency: c.concurrency,
            operations: c.operations,
            errors: c.errors,
            elapsed: c.elapsed,
            latency: c.latency.clone(),
        }));
        report::print_table(
            &format!(
                "query: {} orders, {} buyers, seeded in {:.1} s",
                self.dataset.orders,
                self.dataset.buyers(),
                self.seeded_in.as_secs_f64()
            ),
            &table,
        );
        let p999 = |r: &ScenarioResult| {
            r.latency
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(0.999) as f64 / 1000.0)
        };
        println!(
            "p999 ms: GetOrder {:.2}, ListBuyerOrders {:.2}, both {:.2}; connections {}; \
             errors GetOrder {:?}, ListBuyerOrders {:?}",
            p999(&table[0]),
            p999(&table[1]),
            p999(&table[2]),
            self.load.connections,
            self.load.get_order.errors,
            self.load.list_buyer.errors
        );
        println!(
            "projection lag (append answered -> applied by all three order views), {} appenders, \
             {} appends, {} not applied within 10 s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lag::APPENDERS,
            self.lag.appended,
            self.lag.timeouts,
            ms(&self.lag.lag, 0.5),
            ms(&self.lag.lag, 0.99),
            self.lag.lag.max() as f64 / 1000.0
        );
        println!(
            "{}, over the load (the lag appenders and projectors included)",
            self.cpu.line(table[2].operations, "query")
        );
    }
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole bench, tiny, on the tests' PostgreSQL: every call of both RPCs answered,
    /// by buyers and ops alike, and the ceiling measured.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tiny_run_answers_every_query() {
        let server = std::env::var("ORDERFLOW_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let args = QueryArgs {
            database_url: server.clone(),
            orders: 400,
            clients: 8,
            clients_per_connection: 4,
            seconds: 1,
            ceiling_seconds: 1,
            pool_size: None,
            query_pool_size: None,
            query_connections: None,
            rate: None,
            keep_database: false,
            json: true,
        };
        let db = crate::bench::database::create(&server).await.unwrap();
        let bench = measure(&db, &args).await;
        db.finish(false).await.unwrap();
        let bench = bench.unwrap();
        let (get, list) = (&bench.load.get_order, &bench.load.list_buyer);
        assert!(get.errors.is_empty(), "{:?}", get.errors);
        assert!(list.errors.is_empty(), "{:?}", list.errors);
        assert!(get.ok > 0 && list.ok > 0);
        assert!(bench.lag.appended > 0);
        assert_eq!(bench.lag.timeouts, 0);
        assert_eq!(bench.ceilings.len(), 2);
        assert!(bench.ceilings.iter().all(|c| c.operations > 0));
    }
}
