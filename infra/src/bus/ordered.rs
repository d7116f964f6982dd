//! The ordered consumer: a durable consumer of whole shards that hands a handler each event
//! exactly once and in position order per shard, even when the relay re-sent or reordered
//! publishes; plus dead-lettering of events the handler keeps failing on, and `redrive`.
//!
//! - position ≤ last applied: a duplicate (relay re-send past the dedup window) → ack, skip;
//! - position > last + 1: a gap (a retried publish landed after later ones) → nak with a short
//!   delay, so the missing event is handled first;
//! - handler fails `max_attempts` times → the message goes to `{prefix}.dlq.{consumer}` with
//!   the error in a header, and the consumer moves on.
//!
//! Checkpoint before ack: acks are held until the checkpoint covering them is saved, so after
//! a crash every event past the saved checkpoint is redelivered (at-least-once; handlers are
//! idempotent) and none is acknowledged-but-forgotten, which would leave a permanent gap.
//! Saves run in the background (`checkpointing.rs`), beside the next events' handling, and
//! end with one ack-all up to the first message not done (`acks.rs`): one ack per save.
//!
//! Three ways to hand events over: one at a time ([`OrderedConsumer::run`]), a fetch at once
//! (`batched.rs`), or a fetch at once in two stages that overlap the next fetch's
//! (`pipelined.rs`).

mod acks;
mod batched;
mod checkpointing;
mod pipelined;
mod positions;

pub use batched::BatchEventHandler;
pub use pipelined::{PipelinedHandler, SecondStage};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::Shard;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use self::acks::{AckFloor, FloorConsumer};
use self::checkpointing::Checkpointing;
use self::positions::ShardPositions;

/// What [`OrderedConsumer::next_batch`] found.
enum NextBatch {
    Got(Vec<Delivery>),
    /// The fetch failed (and the back-off was waited out): go round again.
    Retry,
    /// Shutdown while waiting for the fetch.
    Stop,
}
use super::dead_letter::{dead_letter_message, dlq_headers};
use super::error::ConsumerError;
use super::route::{examine, Examined};
use super::{
    decode_event, validate_consumer_name, AckPolicy, BoxError, BusError, CheckpointStore,
    ConsumerConfig, ConsumerInfo, Delivery, DurableConsumer, EventBus, StreamKind,
};
use crate::store::{Position, RecordedEvent};

/// What a handler failure is: anything, kept whole for the logs and the dead letter.
pub type HandlerError = BoxError;

#[async_trait]
pub trait EventHandler: Send {
    /// Whether this handler wants events of `event_type` in streams of `category` (`order`,
    /// `sku`, …). Asked before the body is decoded: an event it does not want is never
    /// decoded nor handed over, but its position still counts (duplicates, gaps, the
    /// checkpoint). Must not change while the consumer runs. Default: every event.
    fn wants(&self, category: &str, event_type: &str) -> bool {
        let _ = (category, event_type);
        true
    }

    /// Applies one event. Must be idempotent: after a crash, events past the saved
    /// checkpoint are handled again.
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError>;
}

/// Which shards a consumer follows. Always whole shards: the gap check relies on seeing every
/// position of a shard, so a handler that wants a few event types says so with `wants`, and
/// the consumer skips the others by their headers without decoding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSelection {
    All,
    One(Shard),
}

/// Appended to an ordered consumer's name to name its durable consumer on the bus: version 2,
/// acked with `AckPolicy::All`. Version 1 was the bare name, acked message by message; an
/// ack policy cannot change on an existing durable, hence a new name (see `durable`).
pub const DURABLE_SUFFIX: &str = "-v2";

#[derive(Debug, Clone)]
pub struct OrderedConsumerConfig {
    /// Checkpoint name and dead-letter subject token; with [`DURABLE_SUFFIX`], the durable
    /// consumer's name (so at most 61 characters).
    pub name: String,
    pub shards: ShardSelection,
    /// Messages per fetch.
    pub batch: usize,
    /// How long one fetch waits for a message.
    pub fetch_wait: Duration,
    pub ack_wait: Duration,
    /// Handler attempts per event before it is dead-lettered.
    pub max_attempts: u32,
    /// First back-off between handler attempts; doubles each time.
    pub retry_backoff: Duration,
    /// Nak delay of an event that arrived before its predecessor.
    pub gap_delay: Duration,
    /// Save the checkpoint (then ack) after this many handled events…
    pub checkpoint_every: usize,
    /// …or this long after the last save.
    pub checkpoint_interval: Duration,
}

impl OrderedConsumerConfig {
    pub fn new(name: impl Into<String>) -> Self {
        OrderedConsumerConfig {
            name: name.into(),
            shards: ShardSelection::All,
            batch: 256,
            fetch_wait: Duration::from_millis(500),
            ack_wait: Duration::from_secs(30),
            max_attempts: 5,
            retry_backoff: Duration::from_millis(50),
            gap_delay: Duration::from_millis(100),
            checkpoint_every: 256,
            checkpoint_interval: Duration::from_millis(500),
        }
    }
}

pub struct OrderedConsumer {
    bus: Arc<dyn EventBus>,
    config: OrderedConsumerConfig,
    /// Shared with the fetch that runs ahead while a batch is handled (`run_batched`).
    consumer: Arc<dyn DurableConsumer>,
    /// Last applied position per shard (in memory; saved by `checkpointing`).
    last: ShardPositions,
    /// Moved positions and held acks, and their saves.
    checkpointing: Checkpointing,
}

impl OrderedConsumer {
    /// Creates (or binds to) the durable consumer and loads the checkpoint.
    pub async fn new(
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        config: OrderedConsumerConfig,
    ) -> Result<Self, ConsumerError> {
        validate_consumer_name(&config.name)?;
        let (consumer, info) = durable(&*bus, &config).await?;
        let floor = AckFloor::new(Arc::clone(&consumer), &info);
        let consumer: Arc<dyn DurableConsumer> =
            Arc::new(FloorConsumer::new(consumer, Arc::clone(&floor)));
        let last = ShardPositions::from(checkpoints.load(&config.name).await?);
        Ok(OrderedConsumer {
            bus,
            checkpointing: Checkpointing::new(checkpoints, config.name.clone(), floor),
            config,
            consumer,
            last,
        })
    }

    /// The durable consumer's name on the bus.
    pub fn durable_name(name: &str) -> String {
        format!("{name}{DURABLE_SUFFIX}")
    }

    /// The last position applied (or skipped past) on a shard.
    pub fn last_applied(&self, shard: Shard) -> Position {
        self.last.get(shard).unwrap_or(Position::ZERO)
    }

    /// Handles events until `shutdown`; then finishes the message in hand, saves the
    /// checkpoint, acks, and returns the handler.
    #[instrument(skip_all, fields(consumer = %self.config.name))]
    pub async fn run<H: EventHandler>(
        mut self,
        mut handler: H,
        shutdown: CancellationToken,
    ) -> Result<H, ConsumerError> {
        let mut backoff = self.config.retry_backoff;
        'outer: while !shutdown.is_cancelled() {
            let fetched = tokio::select! {
                _ = shutdown.cancelled() => break,
                f = self.consumer.fetch(self.config.batch, self.config.fetch_wait) => f,
            };
            let deliveries = match fetched {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, ?backoff, "fetch failed; retrying");
                    self.pause(&shutdown, &mut backoff).await;
                    continue;
                }
            };
            let mut deliveries = deliveries.into_iter();
            while let Some(delivery) = deliveries.next() {
                if let Err(e) = self.process(delivery, &mut handler).await {
                    tracing::warn!(error = %e, "cannot settle a message; retrying later");
                    // Give back the rest of the batch at once; they come again in order.
                    for rest in deliveries.by_ref() {
                        let _ = rest.nak(None).await;
                    }
                    self.pause(&shutdown, &mut backoff).await;
                    continue 'outer;
                }
                if shutdown.is_cancelled() {
                    for rest in deliveries.by_ref() {
                        let _ = rest.nak(None).await;
                    }
                    break 'outer;
                }
            }
            backoff = self.config.retry_backoff;
            self.maybe_flush().await;
        }
        self.checkpointing.flush_now().await?;
        Ok(handler)
    }

    /// Starts a checkpoint save if `checkpoint_every` acks are held or `checkpoint_interval`
    /// has passed (it runs beside the consumer; a failed one is retried by the next).
    async fn maybe_flush(&mut self) {
        let (every, interval) = (
            self.config.checkpoint_every,
            self.config.checkpoint_interval,
        );
        self.checkpointing.maybe_flush(every, interval).await;
    }

    /// The next batch of deliveries: the one `prefetched` while the last batch was handled,
    /// or a fresh fetch; a failed fetch waits out the back-off first.
    async fn next_batch(
        &self,
        prefetched: &mut Option<Result<Vec<Delivery>, BusError>>,
        shutdown: &CancellationToken,
        backoff: &mut Duration,
    ) -> NextBatch {
        let fetched = match prefetched.take() {
            Some(fetched) => fetched,
            None => tokio::select! {
                _ = shutdown.cancelled() => return NextBatch::Stop,
                f = self.consumer.fetch(self.config.batch, self.config.fetch_wait) => f,
            },
        };
        match fetched {
            Ok(deliveries) => NextBatch::Got(deliveries),
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "fetch failed; retrying");
                self.pause(shutdown, backoff).await;
                NextBatch::Retry
            }
        }
    }

    async fn pause(&self, shutdown: &CancellationToken, backoff: &mut Duration) {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(*backoff) => {}
        }
        *backoff = (*backoff * 2).min(Duration::from_secs(5));
    }

    /// Decides what one delivery is and settles it (or holds its ack for the checkpoint).
    async fn process<H: EventHandler>(
        &mut self,
        delivery: Delivery,
        handler: &mut H,
    ) -> Result<(), BusError> {
        if let Some(target) = delivery.message.header(dlq_headers::REDRIVE) {
            if target != self.config.name {
                // Someone else's redriven dead letter: this consumer already handled it.
                return delivery.ack().await;
            }
            return self.process_redriven(delivery, handler).await;
        }
        let examined = examine(&delivery.message, |c, t| handler.wants(c, t));
        let (shard, position) = match &examined {
            Examined::Skip { shard, position } => (*shard, *position),
            Examined::Event(event) => (event.shard, event.position),
            Examined::Bad(e) => {
                // Nothing can ever decode it; keep it for an operator instead of blocking.
                self.dead_letter(&delivery, e).await?;
                return delivery.ack().await;
            }
        };
        let last = self.last_applied(shard);
        if position <= last {
            let (_, acker) = delivery.into_parts();
            self.checkpointing.hold(acker);
            return Ok(());
        }
        if position > last.next() {
            tracing::debug!(%shard, %position, %last, "event ahead of its predecessor; nak");
            return delivery.nak(Some(self.config.gap_delay)).await;
        }
        let Examined::Event(event) = examined else {
            // Not wanted: only its position moves.
            self.advance(shard, position, delivery);
            return Ok(());
        };
        if let Err(e) = self.handle_with_retries(&event, &delivery, handler).await {
            tracing::error!(shard = %event.shard, position = %event.position,
                event_id = %event.event_id, error = %e, "handler gave up; dead-lettering");
            self.dead_letter(&delivery, e.as_ref()).await?;
        }
        self.advance(shard, position, delivery);
        Ok(())
    }

    /// Records a shard's new position and holds the delivery's ack for the checkpoint.
    fn advance(&mut self, shard: Shard, position: Position, delivery: Delivery) {
        self.last.insert(shard, position);
        self.checkpointing.moved(shard, position);
        let (_, acker) = delivery.into_parts();
        self.checkpointing.hold(acker);
    }

    /// A dead letter sent back by `redrive` for this consumer: out of order by nature, and
    /// not part of the checkpoint.
    async fn process_redriven<H: EventHandler>(
        &mut self,
        delivery: Delivery,
        handler: &mut H,
    ) -> Result<(), BusError> {
        match decode_event(&delivery.message) {
            Ok(event) => {
                if let Err(e) = self.handle_with_retries(&event, &delivery, handler).await {
                    self.dead_letter(&delivery, e.as_ref()).await?;
                }
            }
            Err(e) => self.dead_letter(&delivery, &e).await?,
        }
        delivery.ack().await
    }

    async fn handle_with_retries<H: EventHandler>(
        &self,
        event: &RecordedEvent,
        delivery: &Delivery,
        handler: &mut H,
    ) -> Result<(), HandlerError> {
        let mut backoff = self.config.retry_backoff;
        let mut attempt = 1;
        loop {
            match handler.handle(event).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= self.config.max_attempts => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, position = %event.position,
                        "handler failed; retrying");
                    // Keep the bus from redelivering it elsewhere while we retry.
                    let _ = delivery.in_progress().await;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &(dyn std::error::Error + Send + Sync),
    ) -> Result<(), BusError> {
        let name = &self.config.name;
        let message = dead_letter_message(
            &delivery.message,
            &self.bus.subjects().dead_letter(name),
            name,
            delivery.stream_sequence,
            error,
        );
        self.bus.publish(message).await.map(|_| ())
    }
}

/// Binds to the consumer's durable (`{name}-v2`, ack-all), creating it if needed, and returns
/// it with its state. A deployment upgraded from version 1 has a durable under the bare name,
/// acked message by message: the new one starts just above its ack floor (everything at or
/// below was acked, so checkpointed), not at the stream's first message, and the old one is
/// deleted once the new one exists (also when a crash came in between). What lies between the
/// old floor and the checkpoint is delivered again and skipped by position.
async fn durable(
    bus: &dyn EventBus,
    config: &OrderedConsumerConfig,
) -> Result<(Arc<dyn DurableConsumer>, ConsumerInfo), BusError> {
    let name = OrderedConsumer::durable_name(&config.name);
    validate_consumer_name(&name)?;
    let subjects = bus.subjects();
    let filter = match config.shards {
        ShardSelection::All => subjects.events_all(),
        ShardSelection::One(shard) => subjects.events_shard(shard),
    };
    let mut consumer_config = ConsumerConfig::new(name.clone(), filter);
    consumer_config.ack_wait = config.ack_wait;
    consumer_config.ack_policy = AckPolicy::All;
    // Unlimited: gap naks must not use up deliveries; handler retries are counted here.
    consumer_config.max_deliver = None;
    let old = bus.consumer_info(StreamKind::Events, &config.name).await?;
    if bus
        .consumer_info(StreamKind::Events, &name)
        .await?
        .is_none()
    {
        consumer_config.start_sequence = old.map(|old| old.ack_floor_stream + 1);
    }
    let consumer: Arc<dyn DurableConsumer> = Arc::from(bus.consumer(consumer_config).await?);
    if let Some(old) = old {
        tracing::info!(consumer = %config.name, new = %name, from = old.ack_floor_stream + 1,
            "replacing the version 1 durable consumer (one ack per message)");
        match bus.delete_consumer(StreamKind::Events, &config.name).await {
            Ok(()) | Err(BusError::ConsumerNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let info = consumer.info().await?;
    if info.ack_policy != AckPolicy::All {
        return Err(BusError::setup(
            "create consumer",
            format!("durable consumer {name} exists without ack-all; delete it"),
        ));
    }
    Ok((consumer, info))
}
