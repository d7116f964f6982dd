//! What every PostgreSQL read model shares: its checkpoint rows, read and moved inside the
//! transaction that writes its rows, and the split of its batch into the work on its own
//! tables ([`PgProjection::apply_in`]) and the transaction around it.
//!
//! Checkpoints live in the `checkpoints` table of migration 0002 (the relay's and the bus
//! consumers' too), under `projection:{name}`, so `orderflow replay` and operators find every
//! position in one place.
//!
//! Two ways to run a batch, one per caller:
//! - [`apply_alone`]: one transaction for one model (its own `ProjectionModel::apply`:
//!   rebuilds, the conformance suites, a projector of one model);
//! - [`group::PgProjectionGroup`]: one transaction for several models (the live projector),
//!   each locking and moving its own checkpoint row in it.
//!
//! Two ways to read: the query pool ([`query_pool`], a connection per query), and a few
//! shared, pipelined connections for the hot queries ([`SharedReads`]).

mod checkpoints;
pub mod group;
mod shared;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use futures::future::try_join_all;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};

use crate::error::ProjectionError;
use crate::model::{unapplied, BatchOutcome, ProjectionModel, RowChange};

pub use checkpoints::{checkpoint_name, load_checkpoints, lock_checkpoints, skip_batch, touches};
pub use group::PgProjectionGroup;
pub use shared::{pool_query, pool_query_opt, SharedReads};

/// One shard's part of a batch: its events past a model's checkpoint, in position order.
/// A live group hands a model several shards' parts at once (one transaction and one
/// statement per table for all of them: `group`), a model alone one.
#[derive(Debug, Clone)]
pub struct ShardEvents<'a> {
    pub shard: Shard,
    pub events: Vec<&'a RecordedEvent>,
}

impl<'a> ShardEvents<'a> {
    /// Every event of `batch`, shard after shard.
    pub fn all<'b>(batch: &'b [ShardEvents<'a>]) -> impl Iterator<Item = &'a RecordedEvent> + 'b {
        batch.iter().flat_map(|part| part.events.iter().copied())
    }
}

/// A PostgreSQL read model's work on a batch, inside a transaction its caller holds: the
/// caller has locked the model's checkpoint row of each shard in the batch (`FOR UPDATE`),
/// dropped the events they cover, and moves them in the same transaction. The model writes only its own
/// tables, and only through `tx`; other members of a group may be writing theirs through the
/// same `tx` at the same time (their statements pipelined on the one connection).
#[async_trait]
pub trait PgProjection: ProjectionModel {
    /// The stream categories whose events can change its rows: a batch with none of them
    /// only moves the checkpoint.
    fn reads(&self) -> &'static [&'static str];

    /// Whether two shards' batches can write one row of it (none today: `merchant_hourly`
    /// did, before its hours became per-shard partials). Such a model sorts its writes by
    /// key (docs/read-side.md, "Lock order"), and a group applies it after the others, so
    /// that the row locks other shards wait for are held for the end of the transaction only.
    fn shares_rows(&self) -> bool {
        false
    }

    /// Writes the rows `batch` changes (events past the checkpoints, of one or more shards,
    /// each shard's in position order, at least one of a category it
    /// [`reads`](PgProjection::reads)) inside `tx`, and returns the row changes, each with
    /// its event's shard. A model writes each row once per call (an upsert may not touch a
    /// row twice), whichever shards changed it. Undecodable events are logged and skipped.
    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError>;
}

/// One model's batch in its own transaction: lock (and move) its checkpoint row, drop what
/// it covers, [`PgProjection::apply_in`], commit. A batch of streams the model does
/// not read only moves the checkpoint ([`skip_batch`]). What a model's
/// `ProjectionModel::apply` is.
pub async fn apply_alone(
    pool: &Pool,
    model: &dyn PgProjection,
    shard: Shard,
    events: &[RecordedEvent],
) -> Result<BatchOutcome, ProjectionError> {
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(BatchOutcome::default());
    };
    if !touches(events, model.reads()) {
        skip_batch(pool, &[model.name()], &[(shard, last)]).await?;
        return Ok(BatchOutcome::default());
    }
    let changes = write_batch(pool, &[model], &[(shard, events)]).await?;
    Ok(BatchOutcome { changes })
}

/// One transaction of `members` over `parts` (each shard once, each holding an event some
/// member reads): lock (and move) every member's checkpoint row of every shard, hand each
/// member each shard's events past its own checkpoint and of its streams
/// ([`PgProjection::apply_in`]), commit; the row changes. A member at or past a shard's batch
/// (swapped in by a rebuild, or a group restarted from a lower member's checkpoint) has
/// nothing to do there.
pub(crate) async fn write_batch(
    pool: &Pool,
    members: &[&dyn PgProjection],
    parts: &[(Shard, &[RecordedEvent])],
) -> Result<Vec<RowChange>, ProjectionError> {
    let names: Vec<&str> = members.iter().map(|m| m.name()).collect();
    let moves: Vec<(Shard, Position)> = parts
        .iter()
        .filter_map(|(shard, events)| events.last().map(|e| (*shard, e.position)))
        .collect();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let saved = lock_checkpoints(&tx, &names, &moves).await?;
    let mut own = Vec::with_capacity(members.len());
    let mut shared = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let mut batch = Vec::with_capacity(parts.len());
        for ((shard, events), saved) in parts.iter().zip(&saved) {
            let Some((fresh, _)) = unapplied(events, saved[i]) else {
                continue;
            };
            if touches(fresh.iter().copied(), member.reads()) {
                batch.push(ShardEvents {
                    shard: *shard,
                    events: fresh,
                });
            }
        }
        if batch.is_empty() {
            continue;
        }
        if member.shares_rows() {
            shared.push((member, batch));
        } else {
            own.push((member, batch));
        }
    }
    // The members' statements go out together, pipelined on the transaction's connection: a
    // batch costs about the round trips of its longest member, not their sum. The shared
    // rows last, so they stay locked for the commit only.
    let mut changes = Vec::new();
    for phase in [own, shared] {
        let applied = try_join_all(
            phase
                .iter()
                .map(|(member, batch)| member.apply_in(&tx, batch)),
        )
        .await?;
        changes.extend(applied.into_iter().flatten());
    }
    tx.commit().await?;
    Ok(changes)
}

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
/// `value` as a row change's JSON text ([`RowJson`](crate::model::RowJson)), which a view
/// whose `doc` is the same document also binds as that column.
pub fn to_row_json<T: serde::Serialize>(
    view: &'static str,
    value: &T,
) -> Result<crate::model::RowJson, ProjectionError> {
    crate::model::RowJson::encode(value).map_err(|e| ProjectionError::Corrupt {
        view,
        reason: e.to_string(),
    })
}

pub fn to_doc<T: serde::Serialize>(
    view: &'static str,
    value: &T,
) -> Result<serde_json::Value, ProjectionError> {
    serde_json::to_value(value).map_err(|e| ProjectionError::Corrupt {
        view,
        reason: e.to_string(),
    })
}
