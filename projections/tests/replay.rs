//! `orderflow replay` on PostgreSQL: after a random workload the rebuilt tables equal the
//! live ones row for row, queries answer during the rebuild and after the swap, the live
//! projector (every projection in one group, as the read side runs them) carries on from the
//! swapped checkpoint, and an interrupted rebuild changes nothing live.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::{OrderNo, Shard};
use orderflow_infra::store::{ConsistencyToken, EventStore, PgEventStore, Position};
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::orders::{OrderDetailReader, PgOrderDetail};
use orderflow_projections::replay::{self, shadow_schema, Rebuildable, Replay, ReplayConfig};
use orderflow_projections::{PgProjectionGroup, Projector, ProjectorConfig};
use support::{append, checkpoints, feed_rounds, migrated, rows, store_on, workload, Rng};
use tokio_util::sync::CancellationToken;

struct Live {
    database: TestDatabase,
    pool: deadpool_postgres::Pool,
    store: Arc<PgEventStore>,
    /// Every rebuildable projection in one group, as the read side runs them.
    projector: Projector,
    shutdown: CancellationToken,
}

impl Live {
    /// A migrated database, its store, and the live projector of every rebuildable projection.
    async fn start() -> Live {
        let database = TestDatabase::create().await;
        let pool = migrated(&database, 8).await;
        let store = store_on(&database).await;
        let shutdown = CancellationToken::new();
        let config = ProjectorConfig {
            batch: 64,
            publish: false,
        };
        // The projector has a pool of its own, as in the `projections` role: during a swap
        // its shard tasks wait holding connections, and queries must not wait for them.
        let projector_pool = database.pool(8);
        let members = replay::CATALOG
            .iter()
            .map(|r| (r.model)(projector_pool.clone()))
            .collect();
        let group = PgProjectionGroup::new(projector_pool, members);
        let projector = Projector::group(Arc::new(group), store.clone(), None, config);
        tokio::spawn(projector.clone().run(shutdown.clone()));
        Live {
            database,
            pool,
            store,
            projector,
            shutdown,
        }
    }

    /// Appends a random workload of `orders` orders.
    async fn feed(&self, rng: &mut Rng, round: i64, orders: i64) {
        let log = workload(rng, round, orders);
        append(self.store.as_ref(), rng, log).await;
    }

    /// Waits until every live projection has applied every shard's head.
    async fn settle(&self) {
        let heads = replay::heads(self.store.as_ref()).await.expect("heads");
        for p in self.projector.projections() {
            for (shard, head) in &heads {
                p.applied()
                    .wait_for(
                        ConsistencyToken::new(*shard, *head),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{} did not catch up: {e}", p.name()));
            }
        }
    }

    fn config(&self) -> tokio_postgres::Config {
        self.database.url.parse().expect("url")
    }

    async fn replay(&self, target: &'static Rebuildable) -> Replay {
        let config = ReplayConfig {
            batch: 100,
            concurrency: 2,
            tail: 100,
        };
        Replay::prepare(target, self.config(), self.store.clone(), config)
            .await
            .expect("prepare")
    }
}

async fn snapshot(live: &Live, target: &Rebuildable, schema: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for table in target.tables {
        all.push(rows(&live.pool, schema, table).await);
    }
    all
}

/// Some order of the workload, to query.
async fn some_order(live: &Live) -> OrderNo {
    let client = live.pool.get().await.expect("client");
    let no: String = client
        .query_one("SELECT min(order_no) FROM public.order_detail", &[])
        .await
        .expect("an order")
        .get(0);
    OrderNo::parse(no).expect("order number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_models_equal_the_live_ones_row_for_row_and_swap_in() {
    // Given a random workload applied by the live projectors
    let live = Live::start().await;
    let mut rng = Rng(0x5eed_0004);
    live.feed(&mut rng, 0, 150).await;
    live.settle().await;
    let probe = some_order(&live).await;
    let reader = PgOrderDetail::new(live.pool.clone());

    // Each target gets its own rounds: order numbers derive from the round, so two feeds of
    // one round could mint the same number twice.
    for (k, target) in (0i64..).zip(replay::CATALOG) {
        // When each projection is rebuilt from position 0, more events arriving meanwhile
        let mut replay = live.replay(target).await;
        replay.catch_up().await.expect("catch up");
        assert!(reader
            .get(&probe)
            .await
            .expect("query during rebuild")
            .is_some());
        live.feed(&mut rng, 1 + 2 * k, 20).await;
        live.settle().await;
        let held = replay.hold().await.expect("hold");

        // Then, before the swap, the shadow equals the live model row for row
        let schema = shadow_schema(target.name);
        let before = snapshot(&live, target, "public").await;
        assert!(
            // (the main table; a side table such as open offers may rightly be empty)
            !before[0].is_empty(),
            "{}: empty",
            target.name
        );
        assert_eq!(
            snapshot(&live, target, &schema).await,
            before,
            "{} rebuilt differs",
            target.name
        );
        assert_eq!(
            checkpoints(&live.pool, &schema, target.name).await,
            checkpoints(&live.pool, "public", target.name).await,
        );
        assert!(reader
            .get(&probe)
            .await
            .expect("query while held")
            .is_some());

        // And after the swap the live tables are the rebuilt ones, queries answer, and the
        // live projector carries on on them
        let report = held.swap().await.expect("swap");
        assert!(report.events > 0);
        assert_eq!(snapshot(&live, target, "public").await, before);
        assert!(reader
            .get(&probe)
            .await
            .expect("query after swap")
            .is_some());
        live.feed(&mut rng, 2 + 2 * k, 10).await;
        live.settle().await;
        let after = snapshot(&live, target, "public").await;
        // (Rows move rather than only grow for some views: a ledger's levels, a rider's place.)
        assert_ne!(
            after, before,
            "{}: the live projector wrote nothing",
            target.name
        );
    }

    // And a second rebuild of every projection again equals the (swapped, advanced) live one
    for target in replay::CATALOG {
        let mut replay = live.replay(target).await;
        replay.catch_up().await.expect("catch up");
        let held = replay.hold().await.expect("hold");
        assert_eq!(
            snapshot(&live, target, &shadow_schema(target.name)).await,
            snapshot(&live, target, "public").await,
        );
        held.swap().await.expect("swap");
    }
    live.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_leaves_the_live_model_untouched() {
    // Given a settled live model
    let live = Live::start().await;
    let mut rng = Rng(0x1e7e_0004);
    live.feed(&mut rng, 0, 80).await;
    live.settle().await;
    let target = replay::find("order_detail").expect("order_detail is rebuildable");
    let before = snapshot(&live, target, "public").await;
    let marks = checkpoints(&live.pool, "public", target.name).await;

    // When one rebuild stops halfway, and another stops while holding the live checkpoints
    let heads = replay::heads(live.store.as_ref()).await.expect("heads");
    let half: HashMap<Shard, Position> = heads
        .iter()
        .map(|(s, p)| (*s, Position::new(p.get() / 2)))
        .collect();
    let mut halfway = live.replay(target).await;
    assert!(halfway.catch_up_to(&half).await.expect("half") > 0);
    drop(halfway);
    let mut held = live.replay(target).await;
    held.catch_up().await.expect("catch up");
    drop(held.hold().await.expect("hold"));

    // Then the live rows and checkpoints are as they were, and the live projector still
    // applies new events (nothing stays locked)
    assert_eq!(snapshot(&live, target, "public").await, before);
    assert_eq!(checkpoints(&live.pool, "public", target.name).await, marks);
    live.feed(&mut rng, 1, 10).await;
    live.settle().await;
    assert!(snapshot(&live, target, "public").await[0].len() > before[0].len());

    // And a rebuild started afresh completes and equals the live model
    let mut replay = live.replay(target).await;
    replay.catch_up().await.expect("catch up");
    let held = replay.hold().await.expect("hold");
    assert_eq!(
        snapshot(&live, target, &shadow_schema(target.name)).await,
        snapshot(&live, target, "public").await,
    );
    held.swap().await.expect("swap");
    live.shutdown.cancel();
}

/// Rebuild speed (docs/BENCHMARKS.md, "Rebuild"): `REPLAY_BENCH_ORDERS` random orders
/// (default 20,000, about 4.5 events each), every rebuildable projection rebuilt in turn with
/// the default configuration, live projectors idle; next to it, the same run's ceilings:
/// reading the whole store with `read_shard` alone, and PostgreSQL copying the rebuilt
/// `order_detail` rows into an indexed clone server-side.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn replay_speed() {
    let orders: i64 = std::env::var("REPLAY_BENCH_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let live = Live::start().await;
    let mut rng = Rng(0xbe7c_0004);
    feed_rounds(live.store.as_ref(), &mut rng, orders).await;
    live.settle().await;
    live.shutdown.cancel();
    let heads = replay::heads(live.store.as_ref()).await.expect("heads");
    let events: u64 = heads.values().map(|p| p.get()).sum();

    let config = ReplayConfig::default();
    let read_started = std::time::Instant::now();
    let mut read = 0usize;
    for shard in Shard::all() {
        let mut after = Position::ZERO;
        loop {
            let batch = live
                .store
                .read_shard(shard, after, config.batch)
                .await
                .expect("read");
            let Some(last) = batch.last() else { break };
            after = last.position;
            read += batch.len();
        }
    }
    let read_rate = read as f64 / read_started.elapsed().as_secs_f64();

    println!("store: {events} events, {orders} orders");
    println!(
        "read_shard alone (batch {}): {read_rate:.0} events/s",
        config.batch
    );
    for target in replay::CATALOG {
        let report = Replay::run(target, live.config(), live.store.clone(), config.clone())
            .await
            .expect("replay");
        println!(
            "replay {}: {} events in {:.2}s = {:.0} events/s",
            target.name,
            report.events,
            report.elapsed.as_secs_f64(),
            report.events_per_second()
        );
    }
    let client = live.pool.get().await.expect("client");
    client
        .batch_execute("CREATE TABLE ceiling_detail (LIKE order_detail INCLUDING ALL)")
        .await
        .expect("ceiling table");
    let copy_started = std::time::Instant::now();
    let copied = client
        .execute("INSERT INTO ceiling_detail SELECT * FROM order_detail", &[])
        .await
        .expect("copy");
    println!(
        "ceiling: PostgreSQL copies {copied} order_detail rows server-side at {:.0} rows/s",
        copied as f64 / copy_started.elapsed().as_secs_f64()
    );
}
