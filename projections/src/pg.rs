//! What every PostgreSQL read model shares: its checkpoint rows, read and moved inside the
//! transaction that writes its rows.
//!
//! Checkpoints live in the `checkpoints` table of migration 0002 (the relay's and the bus
//! consumers' too), under `projection:{name}`, so `orderflow replay` and operators find every
//! position in one place.

use std::collections::HashMap;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use crate::error::ProjectionError;

/// A pool for the read models' queries, apart from the projectors' (and the event store's):
/// a burst of queries then waits for its own connections, never behind a projector's batch,
/// and the projectors never wait behind queries.
///
/// Unlike the event store's pool it leaves `plan_cache_mode` at PostgreSQL's default, so the
/// readers' prepared statements (`prepare_cached`, one parse per connection) settle on a
/// generic plan after five executions instead of planning every call: their plans are index
/// lookups by key whatever the table size, and an ANALYZE of a grown table invalidates a
/// cached plan anyway.
pub fn query_pool(url: &str, size: usize) -> Result<Pool, ProjectionError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| ProjectionError::Unavailable(format!("read-model database url: {e}")))?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            // No test query when a connection is taken: a broken one fails its query and is
            // dropped.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| ProjectionError::Unavailable(format!("read-model pool: {e}")))
}

/// A stored JSON document read straight into a view (one parse, no `serde_json::Value` in
/// between): column `index` of `row`.
pub fn doc_of<T: serde::de::DeserializeOwned>(
    view: &'static str,
    row: &tokio_postgres::Row,
    index: usize,
) -> Result<T, ProjectionError> {
    row.try_get::<_, tokio_postgres::types::Json<T>>(index)
        .map(|doc| doc.0)
        .map_err(|e| ProjectionError::Corrupt {
            view,
            reason: e.to_string(),
        })
}

/// The checkpoint name of a projection.
pub fn checkpoint_name(projection: &str) -> String {
    format!("projection:{projection}")
}

/// Every saved shard position of a projection.
pub async fn load_checkpoints(
    pool: &Pool,
    projection: &str,
) -> Result<HashMap<Shard, Position>, ProjectionError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT shard, position FROM checkpoints WHERE name = $1",
            &[&checkpoint_name(projection)],
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let shard: i16 = row.get(0);
        let position: i64 = row.get(1);
        let corrupt = |reason: &str| ProjectionError::Corrupt {
            view: "checkpoints",
            reason: format!("{projection}: {reason}"),
        };
        let shard = Shard::try_from(i64::from(shard)).map_err(|_| corrupt("shard"))?;
        let position = u64::try_from(position).map_err(|_| corrupt("position"))?;
        out.insert(shard, Position::new(position));
    }
    Ok(out)
}

/// Locks the shard's checkpoint row for this transaction and returns its position. Two
/// projectors of one model (a zombie and its replacement) take turns here, and the second
/// sees what the first committed, so it skips those events. Also makes the transaction's
/// commit asynchronous (why: below).
pub async fn lock_checkpoint(
    tx: &Transaction<'_>,
    projection: &str,
    shard: Shard,
) -> Result<Position, ProjectionError> {
    let name = checkpoint_name(projection);
    let shard_no = i16::from(shard.index());
    // Prepared once per connection, and both sent together (pipelined): one round trip
    // per batch instead of a parse and an execute for each.
    let (insert, select) = futures::try_join!(
        tx.prepare_cached(
            "INSERT INTO checkpoints (name, shard, position) VALUES ($1, $2, 0)
             ON CONFLICT (name, shard) DO NOTHING",
        ),
        tx.prepare_cached(
            "SELECT position FROM checkpoints WHERE name = $1 AND shard = $2 FOR UPDATE"
        ),
    )?;
    let params: [&(dyn ToSql + Sync); 2] = [&name, &shard_no];
    // The batch's commit does not wait for the WAL flush: a read model is rebuilt from the
    // log, and its rows and checkpoint are lost (or kept) together, so a commit lost to a
    // database crash only means those events are projected again. Visibility is unchanged:
    // readers see the rows as soon as the commit returns. Projectors commit a small
    // transaction per shard and batch, and the flush waits were most of their lag under load.
    let (_, _, row) = futures::try_join!(
        tx.batch_execute("SET LOCAL synchronous_commit TO off"),
        tx.execute(&insert, &params),
        tx.query_one(&select, &params)
    )?;
    let position: i64 = row.get(0);
    Ok(Position::new(u64::try_from(position).unwrap_or(0)))
}

/// Whether a batch holds an event of a stream in one of `categories` (the streams a
/// projection reads): a batch with none changes no row.
pub fn touches(events: &[RecordedEvent], categories: &[&str]) -> bool {
    events
        .iter()
        .any(|e| categories.contains(&e.stream.category()))
}

/// Moves a shard's checkpoint past a batch that changes no row of the projection (see
/// [`touches`]): one statement in one round trip, no row lock held across round trips, and
/// no wait for the WAL flush. Losing this commit in a crash loses no row, only makes a
/// restart re-read events that change nothing; the next batch that does change rows moves
/// the checkpoint synchronously past them anyway. `GREATEST`, so a checkpoint never moves
/// back (a zombie projector, or a rebuild that swapped in a later one: this waits on the
/// rebuild's lock of the row and then keeps the later position).
pub async fn skip_batch(
    pool: &Pool,
    projection: &str,
    shard: Shard,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let Some(last) = events.last() else {
        return Ok(());
    };
    let client = pool.get().await?;
    // A simple-query string, so the three statements travel together. The values are a
    // projection name (a constant of the code, quoted anyway) and two integers.
    let name = checkpoint_name(projection).replace('\'', "''");
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit TO off;
             INSERT INTO checkpoints (name, shard, position) VALUES ('{name}', {shard}, {position})
             ON CONFLICT (name, shard) DO UPDATE
                SET position = GREATEST(checkpoints.position, EXCLUDED.position), updated_at = now();
             COMMIT",
            shard = shard.index(),
            position = last.position.get(),
        ))
        .await?;
    Ok(())
}

/// Moves the (locked) checkpoint to `position`.
pub async fn save_checkpoint(
    tx: &Transaction<'_>,
    projection: &str,
    shard: Shard,
    position: Position,
) -> Result<(), ProjectionError> {
    let position = i64::try_from(position.get()).unwrap_or(i64::MAX);
    let update = tx
        .prepare_cached(
            "UPDATE checkpoints SET position = GREATEST(position, $3), updated_at = now()
             WHERE name = $1 AND shard = $2",
        )
        .await?;
    tx.execute(
        &update,
        &[
            &checkpoint_name(projection),
            &i16::from(shard.index()),
            &position,
        ],
    )
    .await?;
    Ok(())
}

/// A stored JSON document back as a view.
pub fn from_doc<T: serde::de::DeserializeOwned>(
    view: &'static str,
    doc: serde_json::Value,
) -> Result<T, ProjectionError> {
    serde_json::from_value(doc).map_err(|e| ProjectionError::Corrupt {
        view,
        reason: e.to_string(),
    })
}

/// A view as a stored JSON document.
pub fn to_doc<T: serde::Serialize>(
    view: &'static str,
    value: &T,
) -> Result<serde_json::Value, ProjectionError> {
    serde_json::to_value(value).map_err(|e| ProjectionError::Corrupt {
        view,
        reason: e.to_string(),
    })
}
