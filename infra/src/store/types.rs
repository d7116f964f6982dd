//! The vocabulary of the event store: what goes in, what comes out, and the limits.

use std::sync::Arc;

use orderflow_domain::{Actor, Shard, StreamId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EventPayload, StoreError};

/// A position in a shard's log. The first event of a shard is at 1; `Position::ZERO` means
/// "before everything" and is where a new subscriber starts.
///
/// Positions are gap-free and in commit order within a shard: a reader of
/// `position > checkpoint` never skips an event that commits later.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(u64);

impl Position {
    pub const ZERO: Position = Position(0);

    pub fn new(n: u64) -> Self {
        Position(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Self {
        Position(self.0 + 1)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the writer believes the stream's version is. The first event of a stream has
/// version 1, so an empty (or never written) stream is at version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the version is (no concurrency check).
    Any,
    /// The stream must be exactly at this version; `Exact(0)` means "must not exist yet".
    Exact(u64),
}

impl ExpectedVersion {
    pub const NO_STREAM: ExpectedVersion = ExpectedVersion::Exact(0);

    /// The optimistic concurrency check every store makes: `Ok` if a stream at `actual`
    /// satisfies this expectation, else the typed [`StoreError::Conflict`].
    pub fn check(self, stream: &StreamId, actual: u64) -> Result<(), StoreError> {
        match self {
            ExpectedVersion::Exact(expected) if expected != actual => Err(StoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            }),
            _ => Ok(()),
        }
    }
}

impl TryFrom<i64> for ExpectedVersion {
    type Error = StoreError;
    /// From a wire value, where `-1` conventionally means "any".
    fn try_from(v: i64) -> Result<Self, StoreError> {
        match v {
            -1 => Ok(ExpectedVersion::Any),
            v if v >= 0 => Ok(ExpectedVersion::Exact(v as u64)),
            v => Err(StoreError::InvalidExpectedVersion(v)),
        }
    }
}

/// Longest command, correlation or causation id accepted.
pub const MAX_ID_LEN: usize = 128;
/// Highest event schema version accepted (stored as a PostgreSQL `smallint`).
pub const MAX_EVENT_VERSION: u16 = i16::MAX as u16;
/// Longest event type name accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 100;

/// What every id and key of the store must be: 1..=[`MAX_ID_LEN`] bytes, no control chars.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, StoreError> {
                let s = s.into();
                if !valid_id(&s) {
                    return Err(StoreError::InvalidId { field: $field, len: s.len() });
                }
                Ok($name(s.into()))
            }

            /// A fresh random id (UUID v4).
            pub fn random() -> Self {
                $name(Uuid::new_v4().to_string().into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = StoreError;
            fn try_from(s: String) -> Result<Self, StoreError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The idempotency key of a command: a client's request id, or an id a process manager
    /// derives deterministically from the event it reacts to. 1..=128 chars, no control chars.
    CommandId,
    "command_id"
);
string_id!(
    /// Ties together everything that one outside request set off.
    CorrelationId,
    "correlation_id"
);
string_id!(
    /// The command or event that directly caused this one.
    CausationId,
    "causation_id"
);

/// Who, why and when, recorded with every event of one append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub command_id: CommandId,
    pub correlation_id: CorrelationId,
    pub causation_id: Option<CausationId>,
    pub actor: Actor,
    /// When the command was decided (the command's time, not the commit time).
    pub occurred_at: Timestamp,
}

/// An event to append. The payload is the serde JSON form of a domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: u16,
    pub payload: EventPayload,
}

impl NewEvent {
    pub fn new(
        event_type: impl Into<String>,
        event_version: u16,
        payload: impl Into<EventPayload>,
    ) -> Self {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            event_version,
            payload: payload.into(),
        }
    }
}

/// One append: events for one stream, all-or-nothing, under one command id.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub metadata: EventMetadata,
}

/// What an append wrote (or, for a repeated command id, what the first append wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub shard: Shard,
    /// Position of the first and last event written, in the shard's log.
    pub first_position: Position,
    pub last_position: Position,
    /// Stream version of the first and last event written.
    pub first_version: u64,
    pub last_version: u64,
    /// True when this command id had already been appended to this stream: nothing was
    /// written now, and the positions are those of the first append.
    pub deduplicated: bool,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub shard: Shard,
    pub position: Position,
    pub stream: StreamId,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: u16,
    pub payload: EventPayload,
    pub metadata: EventMetadata,
    /// When the store committed it.
    pub recorded_at: Timestamp,
}

/// Limits every store enforces before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most events in one append.
    pub max_events_per_append: usize,
    /// Largest payload of one event, as serialized JSON bytes.
    pub max_payload_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_events_per_append: 1_000,
            max_payload_bytes: 64 * 1024,
        }
    }
}

impl StoreLimits {
    /// Checks an append against the limits; every store calls this before writing.
    pub fn check(&self, req: &AppendRequest) -> Result<(), StoreError> {
        if req.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if req.events.len() > self.max_events_per_append {
            return Err(StoreError::TooManyEvents {
                got: req.events.len(),
                max: self.max_events_per_append,
            });
        }
        for (index, event) in req.events.iter().enumerate() {
            if event.event_type.is_empty() || event.event_type.len() > MAX_EVENT_TYPE_LEN {
                return Err(StoreError::InvalidEventType { index });
            }
            // Stored as a smallint: above i16::MAX would not round-trip.
            if event.event_version == 0 || event.event_version > MAX_EVENT_VERSION {
                return Err(StoreError::InvalidEventVersion { index });
            }
            let bytes = event.payload.len();
            if bytes > self.max_payload_bytes {
                return Err(StoreError::PayloadTooLarge {
                    index,
                    bytes,
                    max: self.max_payload_bytes,
                });
            }
        }
        Ok(())
    }
}

impl StoreLimits {
    /// Checks a claimed append: the request against the limits, the claim in its shard.
    pub fn check_claimed(
        &self,
        claim: &ClaimKey,
        request: &AppendRequest,
    ) -> Result<(), StoreError> {
        if claim.shard() != request.stream.shard() {
            return Err(StoreError::ClaimShard {
                key: claim.as_str().to_owned(),
                claim_shard: claim.shard().index(),
                stream: request.stream.clone(),
            });
        }
        self.check(request)
    }

    /// Checks an append group against the group rules and every request against the
    /// limits; returns the group's shard.
    pub fn check_group(&self, requests: &[AppendRequest]) -> Result<Shard, StoreError> {
        let first = requests.first().ok_or(StoreError::InvalidGroup(
            "a group must hold at least one append",
        ))?;
        let shard = first.stream.shard();
        for (i, request) in requests.iter().enumerate() {
            if request.stream.shard() != shard {
                return Err(StoreError::InvalidGroup(
                    "every stream of a group must be in one shard",
                ));
            }
            if requests[..i].iter().any(|r| r.stream == request.stream) {
                return Err(StoreError::InvalidGroup(
                    "a group may append to each stream once",
                ));
            }
            self.check(request)?;
        }
        Ok(shard)
    }
}

/// A name that, once an append claimed it, points to that append's stream forever
/// ([`super::EventStore::append_claimed`]): how a request whose stream name is drawn fresh
/// on every attempt (a submit's order number) finds the stream its first attempt created.
///
/// A claim lives in one shard, that of the stream it points to, so it commits with that
/// stream's append under one head lock. 1..=128 chars, no control chars.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimKey {
    shard: Shard,
    key: Arc<str>,
}

impl ClaimKey {
    pub fn parse(shard: Shard, key: impl Into<String>) -> Result<Self, StoreError> {
        let key = key.into();
        if !valid_id(&key) {
            return Err(StoreError::InvalidId {
                field: "claim_key",
                len: key.len(),
            });
        }
        Ok(ClaimKey {
            shard,
            key: key.into(),
        })
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.key, self.shard.index())
    }
}
