//! Several PostgreSQL projections applied together: one transaction per shard and batch for
//! all of them, instead of one per projection.
//!
//! Each member keeps its own checkpoint row (`projection:{name}`), so a member can still be
//! rebuilt and swapped in alone (`orderflow replay`), and may stand at another position than
//! the others (after such a swap, or a member added later): the group follows each shard from
//! the lowest of its members' checkpoints, and each member skips what its own row covers.
//!
//! A batch: `BEGIN`; `synchronous_commit` off, every member's row created if missing, locked
//! `FOR UPDATE` (sorted by name) and moved to the batch's end (never back), in one round
//! trip; each member with events past its checkpoint writes its rows
//! ([`PgProjection::apply_in`]), all at once (pipelined on the connection), then those that
//! share rows across shards; `COMMIT`. Any member failing rolls the whole batch back: no
//! member's rows or checkpoint move, and the projector retries the batch. A batch none of
//! the members reads (no event of their streams) is one statement that moves every
//! checkpoint ([`skip_batch`]).
//!
//! Why it cannot deadlock: docs/read-side.md, "Lock order". In short, checkpoint rows are
//! always locked in ascending `(name, shard)` order; no member writes a row before every
//! member's checkpoint row is locked, so a rebuild holding one member's checkpoint rows (and
//! then taking its tables for the swap) never waits for a group transaction that has touched
//! that member's tables; and rows two shards write (none today) would be written sorted by
//! key, by a member that says it shares rows, at the end of the transaction.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures::future::try_join_all;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};

use super::{lock_checkpoints, skip_batch, touches, PgProjection};
use crate::error::ProjectionError;
use crate::group::ProjectionGroup;
use crate::model::{unapplied, BatchOutcome};

/// PostgreSQL projections applied in one transaction per shard and batch. Cheap to clone.
#[derive(Clone)]
pub struct PgProjectionGroup {
    pool: Pool,
    /// In the order they are applied: the ones that share rows across shards last.
    members: Arc<Vec<Arc<dyn PgProjection>>>,
    /// Their names, in the same order.
    names: Arc<Vec<&'static str>>,
}

impl PgProjectionGroup {
    /// `pool`: the read models' database (the members' own, where their checkpoints are).
    ///
    /// # Panics
    /// If two members have one name: they would both apply each batch on one checkpoint.
    pub fn new(pool: Pool, members: Vec<Arc<dyn PgProjection>>) -> Self {
        let mut members = members;
        // Stable: the given order otherwise.
        members.sort_by_key(|m| m.shares_rows());
        let names: Vec<&'static str> = members.iter().map(|m| m.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            names.len(),
            "a projection group holds each projection once: {names:?}"
        );
        PgProjectionGroup {
            pool,
            members: Arc::new(members),
            names: Arc::new(names),
        }
    }
}

#[async_trait]
impl ProjectionGroup for PgProjectionGroup {
    fn names(&self) -> Vec<&'static str> {
        self.names.to_vec()
    }

    async fn checkpoints(&self) -> Result<Vec<HashMap<Shard, Position>>, ProjectionError> {
        let mut all = Vec::with_capacity(self.members.len());
        for member in self.members.iter() {
            all.push(member.checkpoints().await?);
        }
        Ok(all)
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(BatchOutcome::default());
        };
        if !self.members.iter().any(|m| touches(events, m.reads())) {
            skip_batch(&self.pool, &self.names, shard, events).await?;
            return Ok(BatchOutcome::default());
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let saved = lock_checkpoints(&tx, &self.names, shard, last).await?;
        // Each member with events past its own checkpoint and of its streams. A member at or
        // past the batch's end (swapped in by a rebuild, or the group restarted from a lower
        // member's checkpoint) has nothing to do here.
        let mut own = Vec::with_capacity(self.members.len());
        let mut shared = Vec::new();
        for (member, saved) in self.members.iter().zip(saved) {
            let Some((fresh, _)) = unapplied(events, saved) else {
                continue;
            };
            if touches(fresh.iter().copied(), member.reads()) {
                let work = (member, fresh);
                if member.shares_rows() {
                    shared.push(work);
                } else {
                    own.push(work);
                }
            }
        }
        // The members' statements go out together, pipelined on the transaction's
        // connection: a batch costs about the round trips of its longest member, not their
        // sum. The shared rows last, so they stay locked for the commit only.
        let mut changes = Vec::new();
        for phase in [own, shared] {
            let applied = try_join_all(
                phase
                    .iter()
                    .map(|(member, fresh)| member.apply_in(&tx, shard, fresh)),
            )
            .await?;
            changes.extend(applied.into_iter().flatten());
        }
        tx.commit().await?;
        Ok(BatchOutcome { changes })
    }
}
