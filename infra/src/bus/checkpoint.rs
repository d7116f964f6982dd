//! Checkpoints: per name (the relay, or a consumer) and per shard, the last position handled.
//!
//! Saves only move a checkpoint forward (`GREATEST`), so a slow or zombie writer holding an
//! old position can never rewind another's progress; to start over, [`CheckpointStore::reset`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use orderflow_domain::Shard;

use super::CheckpointError;
use crate::store::Position;

/// Longest checkpoint name accepted (the table's CHECK says the same).
pub const MAX_CHECKPOINT_NAME_LEN: usize = 200;

#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// Every stored shard position of `name`; a shard never saved is absent (= `ZERO`).
    async fn load(&self, name: &str) -> Result<HashMap<Shard, Position>, CheckpointError>;

    /// Moves the given shards' positions forward (a lower position than stored is ignored).
    async fn save(
        &self,
        name: &str,
        positions: &[(Shard, Position)],
    ) -> Result<(), CheckpointError>;

    /// Forgets every position of `name` (a rebuild starts from zero).
    async fn reset(&self, name: &str) -> Result<(), CheckpointError>;
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME_LEN {
        return Err(CheckpointError::InvalidName(name.len()));
    }
    Ok(())
}

/// Checkpoints in memory: the embedded mode and tests. Cheap to clone (clones share).
#[derive(Clone, Default)]
pub struct MemoryCheckpointStore {
    /// A std Mutex: held only for a map update, never across an await.
    inner: Arc<Mutex<HashMap<String, HashMap<Shard, Position>>>>,
}

impl MemoryCheckpointStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, name: &str) -> Result<HashMap<Shard, Position>, CheckpointError> {
        check_name(name)?;
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(name).cloned().unwrap_or_default())
    }

    async fn save(
        &self,
        name: &str,
        positions: &[(Shard, Position)],
    ) -> Result<(), CheckpointError> {
        check_name(name)?;
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(name.to_owned()).or_default();
        for &(shard, position) in positions {
            let p = entry.entry(shard).or_insert(Position::ZERO);
            *p = (*p).max(position);
        }
        Ok(())
    }

    async fn reset(&self, name: &str) -> Result<(), CheckpointError> {
        check_name(name)?;
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }
}

/// Checkpoints in PostgreSQL, table `checkpoints(name, shard, position)` (migration 0002).
#[derive(Clone)]
pub struct PgCheckpointStore {
    pool: Pool,
}

impl PgCheckpointStore {
    /// The pool must point at a database migrated by [`crate::migrate::run`].
    pub fn new(pool: Pool) -> Self {
        PgCheckpointStore { pool }
    }
}

#[async_trait]
impl CheckpointStore for PgCheckpointStore {
    async fn load(&self, name: &str) -> Result<HashMap<Shard, Position>, CheckpointError> {
        check_name(name)?;
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT shard, position FROM checkpoints WHERE name = $1",
                &[&name],
            )
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let corrupt = |field| CheckpointError::Corrupt {
                name: name.to_owned(),
                field,
            };
            let shard: i16 = row.get(0);
            let position: i64 = row.get(1);
            let shard = Shard::try_from(i64::from(shard)).map_err(|_| corrupt("shard"))?;
            let position = u64::try_from(position).map_err(|_| corrupt("position"))?;
            out.insert(shard, Position::new(position));
        }
        Ok(out)
    }

    async fn save(
        &self,
        name: &str,
        positions: &[(Shard, Position)],
    ) -> Result<(), CheckpointError> {
        check_name(name)?;
        if positions.is_empty() {
            return Ok(());
        }
        let shards: Vec<i16> = positions
            .iter()
            .map(|(s, _)| i16::from(s.index()))
            .collect();
        // Positions come from the store, where they are bigint; saturate rather than fail.
        let values: Vec<i64> = positions
            .iter()
            .map(|(_, p)| i64::try_from(p.get()).unwrap_or(i64::MAX))
            .collect();
        let client = self.pool.get().await?;
        // One statement for every shard: one round trip, and atomic.
        client
            .execute(
                "INSERT INTO checkpoints (name, shard, position)
                 SELECT $1, s, p FROM unnest($2::smallint[], $3::bigint[]) AS t(s, p)
                 ON CONFLICT (name, shard) DO UPDATE
                   SET position = GREATEST(checkpoints.position, EXCLUDED.position),
                       updated_at = now()",
                &[&name, &shards, &values],
            )
            .await?;
        Ok(())
    }

    async fn reset(&self, name: &str) -> Result<(), CheckpointError> {
        check_name(name)?;
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM checkpoints WHERE name = $1", &[&name])
            .await?;
        Ok(())
    }
}
