//! Reads: a stream, a shard's log, a shard's head. Each is one prepared statement on a
//! pooled connection, scoped to one shard and so to one database.

use deadpool_postgres::{Client, Pool};
use orderflow_domain::{Shard, StreamId};

use super::codec::{decode, SELECT_COLUMNS};
use super::unavailable;
use crate::store::{ClaimKey, Position, RecordedEvent, StoreError};

/// Bounds a caller's `limit` to what a query may ask for.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) async fn read_stream(
    pool: &Pool,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    let sql = format!(
        "SELECT {SELECT_COLUMNS} FROM events \
         WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
    );
    let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
    let from = i64::try_from(from_version).unwrap_or(i64::MAX);
    let rows = client
        .query(&statement, &[&stream.as_str(), &from, &sql_limit(limit)])
        .await
        .map_err(unavailable)?;
    rows.iter().map(decode).collect()
}

pub(super) async fn read_shard(
    pool: &Pool,
    shard: Shard,
    after: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    let sql = format!(
        "SELECT {SELECT_COLUMNS} FROM events \
         WHERE shard = $1 AND position > $2 ORDER BY position LIMIT $3"
    );
    let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
    let after = i64::try_from(after.get()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &statement,
            &[&i16::from(shard.index()), &after, &sql_limit(limit)],
        )
        .await
        .map_err(unavailable)?;
    rows.iter().map(decode).collect()
}

pub(super) async fn head(pool: &Pool, shard: Shard) -> Result<Position, StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    let statement = client
        .prepare_cached("SELECT position FROM shard_heads WHERE shard = $1")
        .await
        .map_err(unavailable)?;
    let row = client
        .query_one(&statement, &[&i16::from(shard.index())])
        .await
        .map_err(unavailable)?;
    let position: i64 = row.get(0);
    u64::try_from(position)
        .map(Position::new)
        .map_err(|_| StoreError::Corrupt {
            shard: shard.index(),
            position: 0,
            reason: format!("negative head {position}"),
        })
}

/// The stream a claim points to (`EventStore::claimed`).
pub(super) async fn claimed(pool: &Pool, claim: &ClaimKey) -> Result<Option<StreamId>, StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    claimed_on(&client, claim).await
}

/// As [`claimed`], on a connection the caller holds (the writer explaining a refusal).
pub(super) async fn claimed_on(
    client: &Client,
    claim: &ClaimKey,
) -> Result<Option<StreamId>, StoreError> {
    let statement = client
        .prepare_cached("SELECT stream_id FROM stream_claims WHERE shard = $1 AND claim_key = $2")
        .await
        .map_err(unavailable)?;
    let shard = i16::from(claim.shard().index());
    let row = client
        .query_opt(&statement, &[&shard, &claim.as_str()])
        .await
        .map_err(unavailable)?;
    row.map(|row| {
        let stream: &str = row.get(0);
        StreamId::parse(stream)
            .map_err(|e| StoreError::Unavailable(format!("claim {claim} names a bad stream: {e}")))
    })
    .transpose()
}
