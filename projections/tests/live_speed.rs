//! The live projector's cost per event (docs/BENCHMARKS.md, "Projection lag"): every
//! rebuildable projection in one group, as the read side runs them, catching up on a store
//! of `LIVE_BENCH_ORDERS` random orders (default 10,000, about 4.5 events each) with batches
//! of at most 8, 32 and 256 events. The live path (upserts of loaded rows, one transaction
//! per batch of one or more shards) and not the rebuild's bulk copy, so the figures say what a batch costs
//! and what each event in it costs, in our process and in the PostgreSQL backends serving it.
//!
//! Run: `cargo test --release -p orderflow-projections --test live_speed -- --ignored --nocapture`

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_infra::store::ConsistencyToken;
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::replay;
use orderflow_projections::{PgProjectionGroup, Projector, ProjectorConfig};
use support::{feed_rounds, migrated, store_on, Rng};
use tokio_util::sync::CancellationToken;

/// User plus system CPU of a process so far, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// The PostgreSQL backends serving this database (the pool's connections once warm).
async fn backends(pool: &deadpool_postgres::Pool) -> Vec<u32> {
    let client = pool.get().await.expect("client");
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("backends")
        .iter()
        .map(|r| r.get::<_, i32>(0) as u32)
        .collect()
}

struct Run {
    events: u64,
    batches: u64,
    elapsed: Duration,
    process_ticks: u64,
    backend_ticks: u64,
}

async fn catch_up(orders: i64, batch: usize) -> Run {
    let database = TestDatabase::create().await;
    let admin = migrated(&database, 2).await;
    let store = store_on(&database).await;
    feed_rounds(store.as_ref(), &mut Rng(0x11fe_0006), orders).await;
    let heads = replay::heads(store.as_ref()).await.expect("heads");
    let events: u64 = heads.values().map(|p| p.get()).sum();

    let pool = database.pool(8);
    // Warm the pool so every backend it will use exists before the clock starts.
    let warm: Vec<_> = futures::future::join_all((0..8).map(|_| pool.get())).await;
    drop(warm);
    let members = replay::CATALOG
        .iter()
        .map(|r| (r.model)(pool.clone()))
        .collect();
    let group = PgProjectionGroup::new(pool.clone(), members);
    let config = ProjectorConfig {
        batch,
        publish: false,
    };
    let projector = Projector::group(Arc::new(group), store.clone(), None, config);
    let shutdown = CancellationToken::new();
    let pids = backends(&admin).await;
    let backend_before: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    let process_before = cpu_ticks(std::process::id());
    let started = Instant::now();
    let running = tokio::spawn(projector.clone().run(shutdown.clone()));
    for (shard, head) in &heads {
        projector
            .applied()
            .wait_for(
                ConsistencyToken::new(*shard, *head),
                Duration::from_secs(600),
            )
            .await
            .expect("caught up");
    }
    let elapsed = started.elapsed();
    let process_ticks = cpu_ticks(std::process::id()) - process_before;
    let backend_ticks = pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>() - backend_before;
    shutdown.cancel();
    running.await.expect("projector task").expect("projector");
    let batches = projector
        .stats()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed);
    Run {
        events,
        batches,
        elapsed,
        process_ticks,
        backend_ticks,
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn live_apply_speed() {
    let orders: i64 = std::env::var("LIVE_BENCH_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    println!("batch   events  batches  ev/batch  events/s  process µs/ev  postgres µs/ev");
    for batch in [8, 32, 256] {
        let run = catch_up(orders, batch).await;
        // A tick is 10 ms.
        let per_event = |ticks: u64| ticks as f64 * 10_000.0 / run.events as f64;
        println!(
            "{batch:>5} {:>8} {:>8} {:>9.1} {:>9.0} {:>14.1} {:>15.1}",
            run.events,
            run.batches,
            run.events as f64 / run.batches.max(1) as f64,
            run.events as f64 / run.elapsed.as_secs_f64(),
            per_event(run.process_ticks),
            per_event(run.backend_ticks),
        );
    }
}
