//! Telling other processes that a shard's head moved: `pg_notify` after commit, coalesced.
//!
//! Not inside the writers' transactions: PostgreSQL serialises the commits of every
//! transaction that notified (one lock for the whole cluster's notification queue, held
//! through the commit's WAL flush), which would undo group commit across writers. Here one
//! task per database sends the newest head of every shard that moved, outside any write
//! transaction; while one notification is in flight the next heads pile up and go as one.
//!
//! A notification lost to a crash between a commit and its notify only delays other
//! processes' subscribers until their fallback poll.

use std::collections::BTreeMap;

use deadpool_postgres::{Object, Pool};
use orderflow_domain::Shard;
use tokio::sync::mpsc;

use super::listen::NOTIFY_CHANNEL;
use crate::store::Position;

/// Runs until every sender (the writers) is gone, then sends what is left and returns.
pub(super) async fn run(pool: Pool, mut moved: mpsc::UnboundedReceiver<(Shard, Position)>) {
    let mut client: Option<Object> = None;
    while let Some((shard, position)) = moved.recv().await {
        let mut heads = BTreeMap::from([(shard, position)]);
        while let Ok((shard, position)) = moved.try_recv() {
            let head = heads.entry(shard).or_insert(position);
            *head = (*head).max(position);
        }
        let payload = heads
            .iter()
            .map(|(shard, position)| format!("{}:{position}", shard.index()))
            .collect::<Vec<_>>()
            .join(",");
        if let Err(e) = notify(&pool, &mut client, &payload).await {
            // Subscribers elsewhere catch up by their fallback poll.
            tracing::warn!(error = %e, "event store could not notify new heads");
            client = None;
        }
    }
}

async fn notify(
    pool: &Pool,
    client: &mut Option<Object>,
    payload: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if client.is_none() {
        *client = Some(pool.get().await?);
    }
    let c = client.as_ref().expect("just set");
    // The payload is ours (digits, ':' and ','), so it is safe to inline; one simple-query
    // round trip. `SET LOCAL synchronous_commit` makes this transaction skip the WAL flush
    // wait: a notification needs no durability (a lost one is caught by the fallback poll),
    // and the cluster-wide notify lock is then held only for microseconds. LOCAL, so the
    // pooled connection never carries the setting to a writer.
    debug_assert!(payload
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b':' || b == b','));
    c.batch_execute(&format!(
        "BEGIN; SET LOCAL synchronous_commit TO off; SELECT pg_notify('{NOTIFY_CHANNEL}', '{payload}'); COMMIT"
    ))
    .await?;
    Ok(())
}
