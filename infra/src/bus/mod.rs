//! The event bus port and its adapters (NATS JetStream, in-process), and the relay that
//! publishes every committed event from the store to the bus.
//!
//! The port has JetStream's semantics, and [`InProcessBus`] reproduces them in memory so the
//! embedded mode and fast tests behave like production:
//! - [`EventBus::publish`] returns once the bus has *stored* the message; a message id
//!   (`Nats-Msg-Id`) seen again within the dedup window is stored once;
//! - durable pull consumers by name, with a subject filter, explicit ack or ack-all (one ack
//!   covers every message below it), a start sequence, nak with a delay,
//!   redelivery after the ack wait, a max-deliver count, and the delivery count on each message;
//! - non-durable `publish_transient` / `subscribe` for fire-and-forget subjects (rider offers).
//!
//! One conformance suite (`crate::testing::bus`) runs against both adapters.
//! The wire format, subjects and guarantees are documented in `docs/bus.md`.

mod checkpoint;
mod dead_letter;
mod envelope;
/// Sample events for the store's tests too.
#[cfg(test)]
pub(crate) use envelope::tests as envelope_tests;
mod error;
mod headers;
mod memory;
mod nats;
mod ordered;
mod relay;
mod route;
mod subjects;

#[cfg(test)]
mod tests;

pub use checkpoint::{CheckpointStore, MemoryCheckpointStore, PgCheckpointStore};
pub use dead_letter::{dlq_headers, redrive};
pub use envelope::{decode_event, encode_event, headers as header_names, ENVELOPE_VERSION};
pub use error::{BoxError, BusError, CheckpointError, ConsumerError};
pub use headers::MessageHeaders;
pub use memory::InProcessBus;
pub use nats::{NatsBus, NatsBusConfig};
pub use ordered::{
    BatchEventHandler, EventHandler, HandlerError, OrderedConsumer, OrderedConsumerConfig,
    PipelinedHandler, SecondStage, ShardSelection, DURABLE_SUFFIX,
};
pub use relay::{Relay, RelayConfig, RelayError, RelayStats};
pub use subjects::{
    subject_matches, validate_consumer_name, validate_subject, StreamKind, Subjects, DEFAULT_PREFIX,
};

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// Message headers to send. NATS allows several values per name; orderflow never needs more
/// than one, and a sorted map keeps encodings deterministic. Received ones are
/// [`MessageHeaders`].
pub type Headers = BTreeMap<String, String>;

/// The header JetStream deduplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub subject: String,
    /// Sent as `Nats-Msg-Id`: a repeat within the dedup window is stored once.
    pub msg_id: Option<String>,
    pub headers: Headers,
    pub payload: Bytes,
}

impl OutgoingMessage {
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        OutgoingMessage {
            subject: subject.into(),
            msg_id: None,
            headers: Headers::new(),
            payload: payload.into(),
        }
    }

    pub fn with_msg_id(mut self, id: impl Into<String>) -> Self {
        self.msg_id = Some(id.into());
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The headers as they go on the wire: the caller's plus `Nats-Msg-Id`.
    pub fn wire_headers(&self) -> Headers {
        let mut h = self.headers.clone();
        if let Some(id) = &self.msg_id {
            h.insert(MSG_ID_HEADER.to_owned(), id.clone());
        }
        h
    }
}

/// A message as received (durable or transient). `headers` include `Nats-Msg-Id` if it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct BusMessage {
    pub subject: String,
    pub headers: MessageHeaders,
    pub payload: Bytes,
}

impl BusMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// What the bus answered to a stored publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    /// The message's sequence in its stream (for a duplicate, the sequence of the original
    /// where the adapter knows it).
    pub sequence: u64,
    /// The message id had been seen within the dedup window: nothing new was stored.
    pub duplicate: bool,
}

/// Resolves when the bus has stored (or refused) a message handed over by
/// [`EventBus::start_publish`].
pub type PendingAck = BoxFuture<'static, Result<PublishAck, BusError>>;

/// Messages of a transient subscription; it ends when the bus closes.
pub type TransientSubscription = BoxStream<'static, BusMessage>;

/// How a durable consumer's acks count. Fixed when the consumer is created: JetStream cannot
/// change it on an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// Each ack settles its own message.
    #[default]
    Explicit,
    /// An ack settles its message and every message below it in the stream that was
    /// delivered and not yet acked, nak'ed ones included (JetStream's `AckAll`). It is ignored
    /// unless both its stream and its delivery sequence are above the last ack-all's.
    All,
}

/// A durable consumer's state as the bus keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub ack_policy: AckPolicy,
    /// Every message up to this stream sequence is acked (0: none yet)…
    pub ack_floor_stream: u64,
    /// …and the delivery sequence of the ack that set it.
    pub ack_floor_delivery: u64,
    /// The delivery sequence of the last delivery (0: none yet); the next is one more.
    pub delivered: u64,
    /// Delivered and not acked yet.
    pub ack_pending: u64,
}

/// A durable pull consumer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Durable name: 1..=64 of `[A-Za-z0-9_-]`.
    pub name: String,
    /// One subject filter (wildcards allowed) inside one stream (nats-server 2.9 has no
    /// multi-filter consumers).
    pub filter_subject: String,
    /// An unacknowledged delivery is redelivered after this long.
    pub ack_wait: Duration,
    /// Deliveries of one message before the bus stops redelivering it; `None` = unlimited.
    pub max_deliver: Option<u32>,
    /// Most deliveries awaiting an ack at once; the bus stops delivering beyond that.
    pub max_ack_pending: u32,
    pub ack_policy: AckPolicy,
    /// Where a consumer created by this call starts: the stream sequence of its first message
    /// (`None`: the stream's first). Ignored when it exists already.
    pub start_sequence: Option<u64>,
}

impl ConsumerConfig {
    pub fn new(name: impl Into<String>, filter_subject: impl Into<String>) -> Self {
        ConsumerConfig {
            name: name.into(),
            filter_subject: filter_subject.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: None,
            max_ack_pending: 10_000,
            ack_policy: AckPolicy::Explicit,
            start_sequence: None,
        }
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Done: never deliver it again.
    Ack,
    /// Not now: deliver it again after the delay (at once if `None`).
    Nak(Option<Duration>),
    /// Still working: restart the ack wait.
    InProgress,
    /// Never deliver it again, without having handled it.
    Term,
}

/// Settles one delivery; implemented by each adapter.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn settle(&self, kind: AckKind) -> Result<(), BusError>;
}

/// One delivery of a stored message to a durable consumer.
pub struct Delivery {
    pub message: BusMessage,
    /// 1 on the first delivery, 2 on the first redelivery, …
    pub delivered: u32,
    /// The message's sequence in its stream.
    pub stream_sequence: u64,
    /// This delivery's sequence in the consumer: one more for every delivery it makes,
    /// redeliveries included, so a jump means a delivery this client never received.
    pub delivery_sequence: u64,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.message.subject)
            .field("delivered", &self.delivered)
            .field("stream_sequence", &self.stream_sequence)
            .field("delivery_sequence", &self.delivery_sequence)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub fn new(
        message: BusMessage,
        delivered: u32,
        stream_sequence: u64,
        delivery_sequence: u64,
        acker: Box<dyn Acker>,
    ) -> Self {
        Delivery {
            message,
            delivered,
            stream_sequence,
            delivery_sequence,
            acker,
        }
    }

    pub async fn ack(&self) -> Result<(), BusError> {
        self.acker.settle(AckKind::Ack).await
    }

    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        self.acker.settle(AckKind::Nak(delay)).await
    }

    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.acker.settle(AckKind::InProgress).await
    }

    pub async fn term(&self) -> Result<(), BusError> {
        self.acker.settle(AckKind::Term).await
    }

    /// Splits off the acker, to settle later (e.g. after a checkpoint is saved).
    pub fn into_parts(self) -> (BusMessage, Box<dyn Acker>) {
        (self.message, self.acker)
    }

    /// The same delivery with another acker (one that wraps this one's).
    pub fn map_acker(self, f: impl FnOnce(Box<dyn Acker>) -> Box<dyn Acker>) -> Self {
        Delivery {
            acker: f(self.acker),
            ..self
        }
    }
}

/// A durable pull consumer: the bus remembers what it acknowledged across restarts.
#[async_trait]
pub trait DurableConsumer: Send + Sync {
    fn name(&self) -> &str;

    /// Up to `max` deliveries: returns as soon as at least one is available, or empty after
    /// `max_wait`. Redeliveries come before new messages.
    async fn fetch(&self, max: usize, max_wait: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Its state on the bus.
    async fn info(&self) -> Result<ConsumerInfo, BusError>;
}

/// The event bus port.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// The subjects this bus was opened with.
    fn subjects(&self) -> &Subjects;

    /// Hands a message to the bus and returns a future of its store acknowledgement.
    /// Messages handed over by successive calls from one task reach the stream in that
    /// order, so a publisher can keep a window of acks in flight without reordering.
    async fn start_publish(&self, message: OutgoingMessage) -> Result<PendingAck, BusError>;

    /// Publishes and waits until the bus has stored the message.
    async fn publish(&self, message: OutgoingMessage) -> Result<PublishAck, BusError> {
        self.start_publish(message).await?.await
    }

    /// Creates the durable consumer, or binds to it if it exists (keeping its progress).
    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn DurableConsumer>, BusError>;

    /// A durable consumer's state, if it exists.
    async fn consumer_info(
        &self,
        stream: StreamKind,
        name: &str,
    ) -> Result<Option<ConsumerInfo>, BusError>;

    /// Deletes a durable consumer and its progress.
    async fn delete_consumer(&self, stream: StreamKind, name: &str) -> Result<(), BusError>;

    /// Fire-and-forget: not stored, delivered only to current subscribers.
    async fn publish_transient(&self, message: OutgoingMessage) -> Result<(), BusError>;

    /// Subscribes to a transient subject filter (wildcards allowed).
    async fn subscribe(&self, filter: &str) -> Result<TransientSubscription, BusError>;
}
