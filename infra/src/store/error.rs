//! The event store's one error type.

use orderflow_domain::stream::InvalidStreamId;
use orderflow_domain::StreamId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream was not at the expected version. Nothing written.
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    Conflict {
        stream: StreamId,
        expected: u64,
        actual: u64,
    },

    #[error("invalid stream id: {0}")]
    InvalidStream(#[from] InvalidStreamId),
    #[error("expected version must be -1 (any) or >= 0, got {0}")]
    InvalidExpectedVersion(i64),
    #[error("{field} must be 1..=128 characters without control characters (got {len} bytes)")]
    InvalidId { field: &'static str, len: usize },
    #[error("an append must carry at least one event")]
    EmptyAppend,
    #[error("an append may carry at most {max} events, got {got}")]
    TooManyEvents { got: usize, max: usize },
    #[error("event type must be 1..=100 characters (event {index})")]
    InvalidEventType { index: usize },
    #[error("event version must be 1..=32767 (event {index})")]
    InvalidEventVersion { index: usize },
    #[error("payload is {bytes} bytes, the limit is {max} (event {index})")]
    PayloadTooLarge {
        index: usize,
        bytes: usize,
        max: usize,
    },
    /// An event id that is already stored (event ids are unique across the store).
    #[error("event id {0} is already stored")]
    DuplicateEventId(uuid::Uuid),

    /// An append group that breaks the group rules (see `EventStore::append_group`).
    #[error("invalid append group: {0}")]
    InvalidGroup(&'static str),
    /// Some requests of an append group were already stored under their command ids and
    /// some were not: the group is neither new nor a retry, and nothing was written.
    #[error("{stream} already holds command {command_id}; nothing of the group was written")]
    GroupPartlyStored {
        stream: StreamId,
        command_id: String,
    },

    /// [`super::EventStore::append_claimed`]: the claim already points to a stream (an
    /// earlier append took it); nothing was written.
    #[error("claim {key} is already taken by {stream}")]
    AlreadyClaimed { key: String, stream: StreamId },
    /// A claim outside the shard of the stream it would point to.
    #[error("claim {key} is in shard {claim_shard}, its stream {stream} is not")]
    ClaimShard {
        key: String,
        claim_shard: u8,
        stream: StreamId,
    },

    /// Configuration the store cannot run with (shard map, pool sizes).
    #[error("event store configuration: {0}")]
    Config(String),
    /// A stored row that cannot be decoded: a bug or a hand-edited database.
    #[error("corrupt stored event at shard {shard} position {position}: {reason}")]
    Corrupt {
        shard: u8,
        position: u64,
        reason: String,
    },
    /// The backend is unreachable or failed; the append may be retried with the same command id.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The store is shutting down and takes no more work.
    #[error("event store is shutting down")]
    ShuttingDown,
}

impl StoreError {
    /// True for faults of the backend rather than of the request: retrying (with the same
    /// command id, which makes it safe) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
