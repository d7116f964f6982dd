//! The ceiling: how fast this Postgres takes the same event rows with no event store logic,
//! as 256-row `INSERT … SELECT FROM unnest(…)` transactions with client-built positions.
//! Each writer owns one shard, so writers never wait on each other's rows.

use std::time::{Duration, Instant};

use super::report::ScenarioResult;
use orderflow::scratch::ScratchDatabase;

const ROWS_PER_TRANSACTION: usize = 256;

/// Positions far above anything the scenarios wrote, so the ceiling rows never collide.
const FIRST_POSITION: i64 = 1_000_000_000_000;

pub async fn batched_inserts(
    db: &ScratchDatabase,
    writers: usize,
    duration: Duration,
    max_rows: u64,
) -> anyhow::Result<ScenarioResult> {
    let start = Instant::now();
    let deadline = start + duration;
    let per_writer = max_rows / writers as u64 + 1;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut client = db.client().await?;
        tasks.push(tokio::spawn(async move {
            let shard = w as i16;
            // Each run (1, 4, 8 writers) gets its own range, so runs never collide.
            let mut position = FIRST_POSITION + writers as i64 * 10_000_000_000;
            let mut rows = 0u64;
            while Instant::now() < deadline && rows < per_writer {
                insert_batch(&mut client, shard, position).await?;
                position += ROWS_PER_TRANSACTION as i64;
                rows += ROWS_PER_TRANSACTION as u64;
            }
            anyhow::Ok(rows)
        }));
    }
    let mut rows = 0;
    for task in tasks {
        rows += task.await??;
    }
    Ok(ScenarioResult {
        name: format!("ceiling: raw 256-row INSERTs, {writers} conn"),
        concurrency: writers,
        operations: rows,
        errors: 0,
        elapsed: start.elapsed(),
        latency: None,
    })
}

async fn insert_batch(
    client: &mut tokio_postgres::Client,
    shard: i16,
    first: i64,
) -> anyhow::Result<()> {
    let n = ROWS_PER_TRANSACTION;
    let positions: Vec<i64> = (0..n as i64).map(|i| first + i).collect();
    let streams: Vec<String> = positions
        .iter()
        .map(|p| format!("ceiling-{shard}x{p}"))
        .collect();
    let versions = vec![1_i64; n];
    let event_ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::new_v4()).collect();
    let types = vec!["OrderSubmitted"; n];
    let type_versions = vec![1_i16; n];
    let payloads: Vec<serde_json::Value> =
        (0..n as u64).map(super::append::sample_payload).collect();
    let command_ids: Vec<String> = event_ids.iter().map(|id| id.to_string()).collect();
    let roles = vec!["buyer"; n];
    let subjects: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let now = chrono::Utc::now();
    let times = vec![now; n];
    let shards = vec![shard; n];

    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO events (shard, position, stream_id, stream_version, event_id, event_type, event_version,
                             payload, command_id, correlation_id, actor_role, actor_subject, occurred_at)
         SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
                              $7::smallint[], $8::jsonb[], $9::text[], $10::text[], $11::text[], $12::text[],
                              $13::timestamptz[])",
        &[
            &shards, &positions, &streams, &versions, &event_ids, &types, &type_versions, &payloads, &command_ids,
            &command_ids, &roles, &subjects, &times,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
