//! `orderflow bench append`: single-event commands through the event store.
//!
//! Scenarios (issue 2): 1, 16 and 256 appenders each creating new streams (like new orders
//! arriving), and 64 appenders on 4 hot streams (like a flash-sale SKU). With a database URL
//! the store is PostgreSQL in a fresh database on that server, and the run ends with the raw
//! batched-INSERT ceiling into the same table, so the figures can be read against what this
//! machine's Postgres can do at that moment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use orderflow_domain::{Actor, Role, StreamId, Timestamp};
use orderflow_infra::store::{
    AppendRequest, CommandId, CorrelationId, EventMetadata, EventStore, ExpectedVersion,
    MemoryEventStore, NewEvent,
};
use serde_json::json;

use super::ceiling;
use super::report::{self, ScenarioResult};

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// PostgreSQL server to measure (a fresh database is created on it and dropped after).
    /// Without it, the in-memory store is measured.
    #[arg(long, env = "ORDERFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How long each scenario runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Upper bound on appends per scenario, whatever the duration.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_events: u64,
    /// Only these appender counts for the distinct-stream scenarios.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 256])]
    pub appenders: Vec<usize>,
    /// Group-commit writers per database (the store's default when absent).
    #[arg(long)]
    pub writers: Option<usize>,
    /// Keep the bench database instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
    /// Print the results as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Where the appenders write.
#[derive(Debug, Clone, Copy)]
enum Streams {
    /// Every command creates a new stream (expected version: no stream).
    Fresh,
    /// All appenders share this many streams (expected version: any).
    Hot(usize),
}

pub async fn run(args: AppendArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds.max(1));
    let (store, pg, database): (Arc<dyn EventStore>, _, _) = match &args.database_url {
        Some(url) => {
            let db = super::database::create(url).await?;
            let pg = super::database::event_store(&db, args.writers).await?;
            (Arc::new(pg.clone()), Some(pg), Some(db))
        }
        None => (Arc::new(MemoryEventStore::default()), None, None),
    };
    let kind = if database.is_some() {
        "postgres"
    } else {
        "memory"
    };
    eprintln!(
        "bench append: store={kind}, {} s per scenario, at most {} events each, {} cores",
        duration.as_secs(),
        args.max_events,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut results = Vec::new();
    for &n in &args.appenders {
        let name = format!("{kind}: {n} appenders, new streams");
        results.push(
            scenario(
                &store,
                &name,
                &run_id,
                n,
                Streams::Fresh,
                duration,
                args.max_events,
            )
            .await,
        );
    }
    let name = format!("{kind}: 64 appenders, 4 hot streams");
    results.push(
        scenario(
            &store,
            &name,
            &run_id,
            64,
            Streams::Hot(4),
            duration,
            args.max_events,
        )
        .await,
    );

    if let (Some(db), Some(pg)) = (&database, &pg) {
        // A quiet database for the ceiling: the store's writers and listener stop first.
        pg.shutdown().await;
        for writers in [1, 4, 8] {
            results.push(ceiling::batched_inserts(db, writers, duration, args.max_events).await?);
        }
    }

    if args.json {
        for r in &results {
            println!("{}", r.to_json());
        }
    } else {
        report::print_table("event store: single-event appends", &results);
    }
    // Close the store's pools before the database goes away, so no connection of ours is
    // killed by the drop.
    drop((store, pg));
    if let Some(db) = database {
        db.finish(args.keep_database).await?;
    }
    Ok(())
}

async fn scenario(
    store: &Arc<dyn EventStore>,
    name: &str,
    run_id: &str,
    appenders: usize,
    streams: Streams,
    duration: Duration,
    max_events: u64,
) -> ScenarioResult {
    let per_task = max_events / appenders as u64 + 1;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let store = Arc::clone(store);
            let prefix = format!("bench-{run_id}{appenders}x{task}");
            let hot = match streams {
                Streams::Hot(n) => Some(
                    StreamId::parse(format!("bench-{run_id}hot{}", task % n))
                        .expect("bench stream ids are valid"),
                ),
                Streams::Fresh => None,
            };
            tokio::spawn(async move {
                let mut latency = report::histogram();
                let (mut ok, mut errors) = (0u64, 0u64);
                for i in 0..per_task {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let (stream, expected) = match &hot {
                        Some(stream) => (stream.clone(), ExpectedVersion::Any),
                        None => (
                            StreamId::parse(format!("{prefix}n{i}"))
                                .expect("bench stream ids are valid"),
                            ExpectedVersion::NO_STREAM,
                        ),
                    };
                    let request = command(stream, expected, i);
                    let began = Instant::now();
                    match store.append(request).await {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            errors += 1;
                            tracing::warn!(error = %e, "append failed");
                        }
                    }
                    report::record(&mut latency, began.elapsed());
                }
                (ok, errors, latency)
            })
        })
        .collect();

    let mut latency = report::histogram();
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        let (o, e, h) = task.await.expect("bench appender panicked");
        ok += o;
        errors += e;
        latency.add(&h).expect("histograms share bounds");
    }
    ScenarioResult {
        name: name.to_owned(),
        concurrency: appenders,
        operations: ok,
        errors,
        elapsed: start.elapsed(),
        latency: Some(latency),
    }
}

/// A one-event command shaped like an order submission.
fn command(stream: StreamId, expected: ExpectedVersion, i: u64) -> AppendRequest {
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    AppendRequest {
        stream,
        expected,
        events: vec![NewEvent::new("OrderSubmitted", 1, sample_payload(i))],
        metadata: EventMetadata {
            command_id: CommandId::random(),
            correlation_id: CorrelationId::random(),
            causation_id: None,
            actor: Actor::new(Role::Buyer, (i % 100_000).to_string()),
            occurred_at: now,
        },
    }
}

pub fn sample_payload(i: u64) -> serde_json::Value {
    json!({
        "buyer_id": i % 100_000,
        "merchant_id": 7,
        "lines": [{"sku_id": "flash-latte", "quantity": 1,
                   "unit_price": {"currency_code": "CNY", "minor_units": 1800}}],
        "address": {"text": "88 Century Avenue, Pudong", "location": {"lat": 31.2397, "lng": 121.4998}},
    })
}
