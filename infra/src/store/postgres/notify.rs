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
    let statement = c.prepare_cached("SELECT pg_notify($1, $2)").await?;
    c.query_one(&statement, &[&NOTIFY_CHANNEL, &payload])
        .await?;
    Ok(())
}
