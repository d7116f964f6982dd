//! What a [`crate::Projector`] runs: projections that follow the log together, one
//! subscription per shard and one `apply` per batch for all of them.
//!
//! Each member keeps its own checkpoint, so members may stand at different positions; the
//! projector follows a shard from the lowest, and each member skips what it has applied.
//! Two implementations:
//! - [`Sequential`]: any [`ProjectionModel`]s, applied one after another, each in its own
//!   atomic step (the memory models; a projector of one model);
//! - [`crate::pg::PgProjectionGroup`]: PostgreSQL models in one transaction per batch.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};

use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel};

#[async_trait]
pub trait ProjectionGroup: Send + Sync + 'static {
    /// The members' names (checkpoint names, the `{view}` of their changes), in the order of
    /// [`ProjectionGroup::checkpoints`].
    fn names(&self) -> Vec<&'static str>;

    /// Each member's saved checkpoints, in the order of [`ProjectionGroup::names`].
    async fn checkpoints(&self) -> Result<Vec<HashMap<Shard, Position>>, ProjectionError>;

    /// Applies `events` (all of `shard`, in position order) to every member, each skipping
    /// what its checkpoint covers and moving its checkpoint to the last event. The row
    /// changes of every member. After an error the batch is applied again: whatever a member
    /// had applied of it, it skips.
    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError>;
}

/// Models applied one after another, each atomically on its own (its rows and checkpoint
/// together). A failing member leaves the members before it applied: the retry finds them
/// past the batch and they skip it. For models with no transaction to share (memory), or a
/// single model.
#[derive(Clone)]
pub struct Sequential {
    members: Arc<Vec<Arc<dyn ProjectionModel>>>,
}

impl Sequential {
    /// # Panics
    /// If two members have one name (see [`crate::pg::PgProjectionGroup::new`]).
    pub fn new(members: Vec<Arc<dyn ProjectionModel>>) -> Self {
        let mut names: Vec<&str> = members.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            members.len(),
            "a projection group holds each projection once"
        );
        Sequential {
            members: Arc::new(members),
        }
    }
}

#[async_trait]
impl ProjectionGroup for Sequential {
    fn names(&self) -> Vec<&'static str> {
        self.members.iter().map(|m| m.name()).collect()
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
        let mut changes = Vec::new();
        for member in self.members.iter() {
            changes.extend(member.apply(shard, events).await?.changes);
        }
        Ok(BatchOutcome { changes })
    }
}
