//! `orderflow bench flash-sale` (issue 3 §9, issue 4 §6): one SKU, `--units` in stock,
//! `--submits` `SubmitOrder` calls from `--concurrency` gRPC clients of distinct buyers,
//! against the real command app (store, bus, relay, saga, single writers) served in this
//! process, with every projector following the store as `serve --role all` runs them
//! (`--no-projections` to leave them out).
//!
//! Reported: submits/s and submit latency; projection lag during the load (each submit's
//! answer → applied by every projection, in ms; committed events not yet applied, sampled:
//! [`lag`]); how long after the last submit's answer every
//! order was CREATED or FAILED; outcomes by reason; the SKU's durable ledger, its identity
//! (`added = available + reserved + deducted`) and the oversell (`CREATED − units`, must be
//! 0). With Postgres, the raw batched-INSERT ceiling of the same database, measured in the
//! same run once the app has stopped. Exits non-zero on oversell, a broken identity, or
//! orders left without an outcome (then the oversell cannot be checked).
//!
//! Client and server share the machine (and here the process): on two cores, every CPU
//! second the 256 clients spend is one the server does not get. That is part of the figure.

pub(crate) mod clients;
mod lag;
mod outcomes;
mod target;

use std::time::{Duration, Instant};

use clap::Args;
use orderflow_domain::sku::StockLevel;
use serde_json::json;

use self::clients::{LoadPlan, LoadResult};
use self::lag::{Heads, LagResult};
use self::outcomes::Outcomes;
use self::target::{Projections, Target};
use super::ceiling;
use super::cpu::{CpuMark, CpuUse};
use super::report::{self, ScenarioResult};

/// How long to wait, after the last submit's answer, for every order to be resolved.
const RESOLVE_LIMIT: Duration = Duration::from_secs(60);
/// Writers of the raw-INSERT ceiling: DESIGN.md's best figure on this machine was with four.
const CEILING_WRITERS: [usize; 2] = [1, 4];

#[derive(Debug, Args)]
pub struct FlashSaleArgs {
    /// PostgreSQL server (a fresh database is created on it and dropped after). Give it
    /// with --nats-url; without both, the app runs embedded (memory store, in-process bus).
    #[arg(long, env = "ORDERFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// NATS with JetStream (a unique prefix per run; its streams are deleted after).
    #[arg(long, env = "ORDERFLOW_NATS_URL")]
    pub nats_url: Option<String>,
    /// Stock of the one SKU.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..=100_000_000))]
    pub units: i64,
    /// SubmitOrder calls in all, each from a distinct buyer.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub submits: u64,
    /// Concurrent gRPC clients, each awaiting its answer before the next submit.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Clients sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients_per_connection: u64,
    /// No submit starts after this many seconds (the outcomes then get up to 60 s more).
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Seconds of each raw-INSERT ceiling measurement (Postgres only).
    #[arg(long, default_value_t = 5)]
    pub ceiling_seconds: u64,
    /// Group-commit writers per database (the store's default when absent).
    #[arg(long)]
    pub writers: Option<usize>,
    /// Connections per database of the store (its default when absent).
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// Leave the projectors out: the command side alone, as in issue 3's figures.
    #[arg(long)]
    pub no_projections: bool,
    /// PostgreSQL: run the projectors on a store instance and pool of this many connections
    /// of their own (as a `--role projections` process), instead of on the command app's
    /// store and pool (as `serve --role all`, the default: 0).
    #[arg(long, default_value_t = 0)]
    pub projection_pool: usize,
    /// Keep the bench database and the NATS streams instead of deleting them.
    #[arg(long)]
    pub keep_database: bool,
    /// Print the result as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: FlashSaleArgs) -> anyhow::Result<()> {
    let mut target = Target::start(
        args.database_url.as_deref(),
        args.nats_url.as_deref(),
        args.writers,
        args.pool_size,
        match (args.no_projections, args.projection_pool) {
            (true, _) => Projections::Off,
            (false, 0) => Projections::Shared,
            (false, n) => Projections::Own(n),
        },
    )
    .await?;
    let outcome = measure(&mut target, &args).await;
    // Whatever happened, the database and the streams go.
    let finished = target.finish(args.keep_database).await;
    let outcome = outcome?;
    finished?;
    outcome.print(args.json);
    outcome.verdict()
}

async fn measure(target: &mut Target, args: &FlashSaleArgs) -> anyhow::Result<FlashSale> {
    eprintln!(
        "bench flash-sale: {}, {} units, {} submits, {} clients over {} connections, {} cores",
        target.kind(),
        args.units,
        args.submits,
        args.concurrency,
        args.concurrency.div_ceil(args.clients_per_connection),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    target.seed(args.units).await?;
    let probe = match &target.read {
        Some(read) => {
            let heads = match &target.database {
                Some(db) => Heads::Postgres(db.client().await?),
                None => Heads::Store(target.app.store().clone()),
            };
            let projections = read
                .projections()
                .iter()
                .map(|p| (p.name(), p.applied().clone()))
                .collect();
            Some(lag::start(projections, heads, lag::DRAIN_LIMIT))
        }
        None => None,
    };
    let (probe, lag_task) = probe.unzip();
    // CPU from the first submit until every outcome is in: the work the submits caused,
    // including what the consumers and projectors still had to do after the last answer.
    // (A PostgreSQL run always has NATS beside it.)
    let cpu_client = match &target.database {
        Some(db) => Some(db.client().await?),
        None => None,
    };
    let cpu = CpuMark::start(cpu_client.as_ref(), target.database.is_some()).await;
    let load = clients::run(
        target,
        LoadPlan {
            submits: args.submits,
            concurrency: args.concurrency as usize,
            per_connection: args.clients_per_connection as usize,
            deadline: Instant::now() + Duration::from_secs(args.max_seconds.max(1)),
            probe,
        },
    )
    .await?;
    eprintln!(
        "submits done: {} ok, {:?} failed in {:.2} s; waiting for the outcomes",
        load.ok,
        load.errors,
        load.elapsed.as_secs_f64()
    );
    let lag = match lag_task {
        Some(task) => Some(task.await??),
        None => None,
    };
    let outcomes = outcomes::wait_for(target.app.store(), load.ok, RESOLVE_LIMIT).await?;
    let cpu = cpu.finish(cpu_client.as_ref()).await;
    drop(cpu_client);
    let ledger = target.ledger().await?;

    let mut ceilings = Vec::new();
    if target.database.is_some() {
        // A quiet database: the app (relay, saga, store writers) stops first.
        target.stop().await?;
        let db = target.database.as_ref().expect("checked above");
        let seconds = Duration::from_secs(args.ceiling_seconds.max(1));
        for writers in CEILING_WRITERS {
            ceilings.push(ceiling::batched_inserts(db, writers, seconds, 5_000_000).await?);
        }
    }
    Ok(FlashSale {
        kind: target.kind(),
        units: args.units,
        concurrency: args.concurrency as usize,
        load,
        outcomes,
        ledger,
        lag,
        cpu,
        ceilings,
    })
}

struct FlashSale {
    kind: &'static str,
    units: i64,
    concurrency: usize,
    load: LoadResult,
    outcomes: Outcomes,
    ledger: StockLevel,
    /// `None` with `--no-projections`.
    lag: Option<LagResult>,
    /// From the first submit until every outcome was read.
    cpu: CpuUse,
    ceilings: Vec<ScenarioResult>,
}

impl FlashSale {
    fn oversell(&self) -> i64 {
        (self.outcomes.created as i64 - self.units).max(0)
    }

    /// `added = available + reserved + deducted`, nothing negative, and every CREATED
    /// order holds exactly its one unit (no payments in this run, so nothing deducted).
    fn identity_holds(&self) -> bool {
        let s = &self.ledger;
        s.added == s.available + s.reserved + s.deducted
            && s.available >= 0
            && s.reserved >= 0
            && s.reserved + s.deducted == self.outcomes.created as i64
    }

    /// Milliseconds from the last submit's answer to the last outcome's commit (0 when
    /// every order was resolved before the last answer); `None` if not all were resolved.
    fn resolved_after_ms(&self) -> Option<i64> {
        match (self.outcomes.complete, self.outcomes.last_recorded_ms) {
            (true, Some(at)) => Some((at - self.load.last_answer_ms).max(0)),
            (true, None) => Some(0),
            (false, _) => None,
        }
    }

    fn submit_result(&self) -> ScenarioResult {
        ScenarioResult {
            name: format!("{}: SubmitOrder over gRPC", self.kind),
            concurrency: self.concurrency,
            operations: self.load.ok,
            errors: self.load.errors.values().sum(),
            elapsed: self.load.elapsed,
            latency: Some(self.load.latency.clone()),
        }
    }

    fn print(&self, as_json: bool) {
        let submit = self.submit_result();
        let s = &self.ledger;
        if as_json {
            let value = json!({
                "backend": self.kind,
                "units": self.units,
                "connections": self.load.connections,
                "submit": submit.to_json(),
                "submit_errors": self.load.errors,
                "resolved_after_ms": self.resolved_after_ms(),
                "outcomes_read_s": self.outcomes.read_for.as_secs_f64(),
                "created": self.outcomes.created,
                "failed": self.outcomes.failed,
                "refused_at_submit": self.outcomes.refused,
                "ledger": {"added": s.added, "available": s.available, "reserved": s.reserved,
                           "deducted": s.deducted, "released": s.released},
                "identity_holds": self.identity_holds(),
                "oversell": self.oversell(),
                "projection_lag": self.lag.as_ref().map(LagResult::to_json),
                "cpu": self.cpu.to_json(self.load.ok),
                "ceiling": self.ceilings.iter().map(ScenarioResult::to_json).collect::<Vec<_>>(),
            });
            println!("{value}");
            return;
        }
        let mut rows = vec![submit];
        rows.extend(self.ceilings.iter().map(|c| ScenarioResult {
            name: c.name.clone(),
            concurrency: c.concurrency,
            operations: c.operations,
            errors: c.errors,
            elapsed: c.elapsed,
            latency: None,
        }));
        report::print_table("flash sale: 1 sku, one unit per order", &rows);
        println!(
            "connections {}; submit errors {:?}",
            self.load.connections, self.load.errors
        );
        match self.resolved_after_ms() {
            Some(ms) => println!(
                "every order CREATED or FAILED {ms} ms after the last submit's answer \
                 (outcomes read in {:.2} s)",
                self.outcomes.read_for.as_secs_f64()
            ),
            None => println!(
                "NOT resolved: {} of {} orders have an outcome after {} s",
                self.outcomes.resolved(),
                self.load.ok,
                RESOLVE_LIMIT.as_secs()
            ),
        }
        println!(
            "CREATED {}, FAILED {} {:?} ({} of them refused at submit)",
            self.outcomes.created,
            self.outcomes.failed_total(),
            self.outcomes.failed,
            self.outcomes.refused
        );
        println!(
            "ledger: added {}, available {}, reserved {}, deducted {} (released {}); identity {}",
            s.added,
            s.available,
            s.reserved,
            s.deducted,
            s.released,
            if self.identity_holds() {
                "holds"
            } else {
                "BROKEN"
            }
        );
        println!("oversell {}", self.oversell());
        println!(
            "{}, from the first submit until every outcome was read",
            self.cpu.line(self.load.ok, "submit")
        );
        match &self.lag {
            Some(lag) => lag.print(),
            None => println!("projections off (--no-projections): no projection lag"),
        }
    }

    fn verdict(&self) -> anyhow::Result<()> {
        // Without every outcome the CREATED count, and so the oversell, is not final.
        if !self.outcomes.complete {
            anyhow::bail!("orders left unresolved: the oversell cannot be checked");
        }
        if self.oversell() > 0 {
            anyhow::bail!("oversold by {} units", self.oversell());
        }
        if !self.identity_holds() {
            anyhow::bail!("the ledger identity does not hold: {:?}", self.ledger);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(units: i64, submits: u64) -> FlashSaleArgs {
        FlashSaleArgs {
            database_url: None,
            nats_url: None,
            units,
            submits,
            concurrency: 8,
            clients_per_connection: 4,
            max_seconds: 30,
            ceiling_seconds: 1,
            writers: None,
            pool_size: None,
            no_projections: false,
            projection_pool: 0,
            keep_database: false,
            json: true,
        }
    }

    /// The whole bench, embedded and tiny: every submit answered, exactly the stock
    /// created, the rest refused for stock, the ledger identity holds, and every submit's
    /// event applied by every projection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_run_creates_exactly_the_stock() {
        let args = args(20, 120);
        let mut target = Target::start(None, None, None, None, Projections::Shared)
            .await
            .unwrap();
        let sale = measure(&mut target, &args).await.unwrap();
        target.finish(false).await.unwrap();
        assert_eq!(sale.load.ok, 120, "{:?}", sale.load.errors);
        assert!(sale.outcomes.complete);
        assert_eq!(sale.outcomes.created, 20);
        assert_eq!(sale.outcomes.failed.get("OUT_OF_STOCK"), Some(&100));
        assert_eq!(sale.oversell(), 0);
        assert!(sale.identity_holds(), "{:?}", sale.ledger);
        assert!(sale.verdict().is_ok());
        assert!(sale.resolved_after_ms().is_some());
        let lag = sale.lag.as_ref().expect("projections are on by default");
        assert_eq!((lag.tracked, lag.not_applied), (120, 0));
        assert_eq!(lag.views.len(), 7);
        assert!(lag.views.iter().all(|v| v.time.len() == 120));
    }
}
