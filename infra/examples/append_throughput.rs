//! A quick, bounded throughput check of the PostgreSQL event store (the real benchmark is
//! `orderflow bench append`). Single-event appends for a few seconds per scenario, on a
//! fresh test database:
//!
//! ```text
//! cargo run --release -p orderflow-infra --features testing --example append_throughput
//! ```
//!
//! `SECONDS` sets the duration of each scenario (default 5), `WRITERS` the writers per
//! database (default 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_infra::store::{EventStore, ExpectedVersion, PgEventStore, PgStoreConfig};
use orderflow_infra::testing::store::{request, stream_in};
use orderflow_infra::testing::TestDatabase;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut config = PgStoreConfig::single(TestDatabase::create().await.url);
    if let Some(writers) = std::env::var("WRITERS").ok().and_then(|s| s.parse().ok()) {
        config.writers_per_database = writers;
        config.pool_size = config.pool_size.max(writers + 4);
    }
    let store: Arc<dyn EventStore> =
        Arc::new(PgEventStore::connect(config).await.expect("connect"));
    let run = Duration::from_secs(seconds);
    for (scenario_no, (label, tasks, hot)) in [
        ("1 appender, distinct streams", 1, None),
        ("16 appenders, distinct streams", 16, None),
        ("256 appenders, distinct streams", 256, None),
        ("64 appenders, 4 hot streams", 64, Some(4)),
    ]
    .into_iter()
    .enumerate()
    {
        scenario(&store, scenario_no, label, tasks, hot, run).await;
    }
}

async fn scenario(
    store: &Arc<dyn EventStore>,
    scenario_no: usize,
    label: &str,
    tasks: usize,
    hot: Option<usize>,
    run: Duration,
) {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while started.elapsed() < run {
                    let stream = match hot {
                        Some(n) => stream_in((t % n) as u8, &format!("hot{scenario_no}")),
                        None => stream_in((t % 32) as u8, &format!("s{scenario_no}t{t}n{i}")),
                    };
                    let at = Instant::now();
                    store
                        .append(request(&stream, ExpectedVersion::Any, 1))
                        .await
                        .expect("append");
                    latencies.push(at.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{label:34} {:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} appends)",
        all.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.len()
    );
}
