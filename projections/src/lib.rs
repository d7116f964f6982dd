//! The read side's projections: durable, checkpointed, idempotent projectors that turn the
//! event store's log into read models, in memory (embedded mode) or in PostgreSQL.
//!
//! The framework, which every projection uses:
//! - [`model::ProjectionModel`]: the write port of a read model — its name, its per-shard
//!   checkpoints, and `apply(shard, events)`, which moves rows and checkpoint together
//!   (one transaction in PostgreSQL), skipping what the checkpoint covers;
//! - [`group::ProjectionGroup`]: projections that follow the log together (one model, or
//!   several: the memory models one after another, the PostgreSQL ones in one transaction
//!   per batch, [`pg::PgProjectionGroup`]), each with its own checkpoints;
//! - [`projector::Projector`]: follows every shard of the store for one group, in batches,
//!   publishes the row changes on `{prefix}.views.{view}.{shard}` ([`publish`]: one message
//!   per view and batch), and advances each member's
//!   [`applied::Applied`], the in-memory applied position of each shard that
//!   read-your-writes and long-polls wait on;
//! - [`pg`]: checkpoint rows, JSON documents, and [`pg::PgProjection`], a PostgreSQL
//!   model's batch inside a transaction it is given.
//!
//! A new projection adds: a pure fold (events → rows), a read port (trait) with a memory twin
//! and a PostgreSQL adapter implementing [`model::ProjectionModel`] (through
//! [`pg::PgProjection::apply_in`] and [`pg::apply_alone`]), a migration, and a conformance
//! suite in [`testing`] run on both. The order views ([`orders`]) are the first;
//! the stock views ([`stock`]) and the merchant catalog ([`merchants`]) follow.
//! See `docs/read-side.md`.
#![forbid(unsafe_code)]

pub mod applied;
pub mod error;
pub mod group;
pub mod merchants;
pub mod model;
mod order_cache;
pub mod orders;
pub mod pg;
pub mod projector;
pub mod publish;
pub mod replay;
pub mod riders;
pub mod stats;
pub mod stock;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use applied::{Applied, Behind};
pub use error::ProjectionError;
pub use group::{ProjectionGroup, Sequential};
pub use model::{BatchOutcome, ProjectionModel, RowChange, RowJson};
pub use pg::{PgProjection, PgProjectionGroup, ShardEvents};
pub use projector::{ProjectionHandle, Projector, ProjectorConfig, ProjectorStats};
