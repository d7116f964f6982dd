//! The event store port and its adapters.
//!
//! Append-only, one row per event, 32 logical shards each with a gap-free, commit-ordered
//! position. See `docs/event-store.md` for how the PostgreSQL adapter keeps that promise
//! and what it costs.

mod error;
mod follow;
mod memory;
mod payload;
mod postgres;
mod tail;
mod token;
mod types;

pub use error::StoreError;
pub use memory::MemoryEventStore;
pub use payload::EventPayload;
pub use postgres::{PgEventStore, PgStoreConfig, ShardMap};
pub use token::{ConsistencyToken, InvalidToken};
pub use types::*;

use async_trait::async_trait;
use futures::stream::BoxStream;
use orderflow_domain::{Shard, StreamId};

/// A live, never-ending stream of a shard's events, in position order, starting after the
/// position the subscription was opened at. It ends only with an error or when dropped.
pub type Subscription = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// The event store port. One conformance suite (`crate::testing::store`) runs against
/// every implementation.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one stream, all or nothing.
    ///
    /// - Fails with [`StoreError::Conflict`] if the stream is not at `expected`.
    /// - Idempotent by command id: if this stream already has an append with the same
    ///   `metadata.command_id`, nothing is written and the first append's outcome is returned
    ///   with `deduplicated: true` (checked before the expected version, with no time window).
    /// - Appends to one shard are processed in the order they were submitted, so a single
    ///   writer may pipeline appends to one stream with chained expected versions.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Appends to several streams of one shard in one transaction: every request is
    /// written, or none is. The outcomes come back in the order of the requests.
    ///
    /// - The streams must be distinct and all in one shard, and there must be at least
    ///   one ([`StoreError::InvalidGroup`] otherwise). A shard is the unit of ordering and
    ///   lives in one database, so a group commits under one head lock with no protocol
    ///   across databases. Each request must pass the store's limits on its own.
    /// - Idempotent as a whole: if every request's command id is already stored on its
    ///   stream, nothing is written and the first outcomes come back `deduplicated`; if only
    ///   some are, nothing is written and the answer is [`StoreError::GroupPartlyStored`].
    /// - Otherwise each request is checked as [`EventStore::append`] checks it (expected
    ///   version, event ids); the first that fails is the group's error.
    /// - In its shard the group is ordered like one append (FIFO with the other appends);
    ///   its events take consecutive positions, in the order of the requests.
    async fn append_group(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Appends `request` and records `claim` → its stream, in one transaction: both or
    /// neither. The claim must be in the stream's shard ([`StoreError::ClaimShard`]).
    ///
    /// - A claim already recorded is [`StoreError::AlreadyClaimed`] with the stream it points
    ///   to, and nothing is written, unless this is a repeat of the append that took it (same
    ///   stream, command id stored on it): that is answered `deduplicated`, as `append` would.
    /// - Otherwise the append is checked as [`EventStore::append`] checks it; if it is
    ///   refused, the claim is not recorded either.
    /// - A claim is never released: it is the request's record, like a command id.
    async fn append_claimed(
        &self,
        claim: ClaimKey,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError>;

    /// The stream `claim` points to, if an append recorded it.
    async fn claimed(&self, claim: &ClaimKey) -> Result<Option<StreamId>, StoreError>;

    /// Submits several appends at once (to any streams); each succeeds or fails alone, and the
    /// results come back in the order of the requests.
    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<AppendOutcome, StoreError>> {
        futures::future::join_all(requests.into_iter().map(|r| self.append(r))).await
    }

    /// Events of a stream with `stream_version >= from_version`, oldest first, at most `limit`.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of a shard with `position > after`, in position order, at most `limit`.
    async fn read_shard(
        &self,
        shard: Shard,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last committed event of a shard (`Position::ZERO` if none).
    async fn head(&self, shard: Shard) -> Result<Position, StoreError>;

    /// Every event of the shard after `after`: first the stored ones (catch-up), then new
    /// ones as they commit (live), with no gap and no duplicate at the switch.
    fn subscribe(&self, shard: Shard, after: Position) -> Subscription;
}
