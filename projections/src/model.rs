//! The write port every read model implements, whatever it holds.
//!
//! A projection is a name, a pure function from events to row changes (in each projection's
//! module), and a read model that applies those changes. The framework
//! ([`crate::projector`]) feeds a model one shard's events at a time through
//! [`ProjectionModel::apply`]; the model applies them and moves that shard's checkpoint **in
//! the same atomic step** (one PostgreSQL transaction; one critical section in memory). So:
//!
//! - a projector killed mid-batch leaves the batch either wholly applied with its checkpoint,
//!   or not at all: no duplicate, no hole;
//! - an event at or below the saved checkpoint changes nothing (redelivery, replay, two
//!   projectors racing on one model): `apply` skips it under the same lock.

use std::collections::HashMap;

use async_trait::async_trait;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::ProjectionError;

/// One row a batch changed, as published (with the batch's other changes of its view) on
/// `{prefix}.views.{view}.{shard}` for analytics ([`crate::publish`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The view (table) the row belongs to.
    pub view: &'static str,
    /// The row's key (an order number, a merchant id, …).
    pub key: String,
    /// The event whose application produced this row state (changes carry it, so a
    /// consumer can drop a change it has seen).
    pub shard: Shard,
    pub position: Position,
    /// The row after the change, or `None` when it was deleted.
    pub row: Option<RowJson>,
}

/// A row as JSON text, encoded once from the row itself: a PostgreSQL model binds it as its
/// `json` column and the publisher copies it into the change message as it is. A `Value`
/// tree between the two was built, serialized twice and dropped for every changed row, about
/// a tenth of the process's CPU with the projectors on (perf, session 7).
#[derive(Debug, Clone)]
pub struct RowJson(Box<RawValue>);

impl RowJson {
    pub fn encode<T: Serialize + ?Sized>(row: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(row).map(RowJson)
    }

    /// The text, as it goes into a `json` column (`postgres_types::Json(row.raw())`) or a
    /// message.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The row parsed back, for tests and tools.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

/// Equal when the texts are: a row encodes the same way every time.
impl PartialEq for RowJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for RowJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The row changes, in the order they were made.
    pub changes: Vec<RowChange>,
}

#[async_trait]
pub trait ProjectionModel: Send + Sync + 'static {
    /// The projection's name: its checkpoint name and the `{view}` of its change subjects.
    fn name(&self) -> &'static str;

    /// The saved checkpoint of every shard (absent = never applied = `Position::ZERO`).
    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError>;

    /// Applies `events` (all of `shard`, in position order) and moves the shard's checkpoint
    /// to the last one, atomically. Events at or below the saved checkpoint are skipped.
    /// Events the projection does not care about only move the checkpoint.
    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError>;
}

/// The events of a batch past `saved` (the shard's checkpoint), and the last one's position;
/// `None` when the checkpoint already covers the whole batch (a redelivery or a replay).
pub(crate) fn unapplied(
    events: &[RecordedEvent],
    saved: Position,
) -> Option<(Vec<&RecordedEvent>, Position)> {
    let fresh: Vec<&RecordedEvent> = events.iter().filter(|e| e.position > saved).collect();
    let last = fresh.last()?.position;
    Some((fresh, last))
}
