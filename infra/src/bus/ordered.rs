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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::Shard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::dead_letter::{dead_letter_message, dlq_headers};
use super::error::ConsumerError;
use super::route::{examine, Examined};
use super::{
    decode_event, validate_consumer_name, AckKind, Acker, BoxError, BusError, CheckpointStore,
    ConsumerConfig, Delivery, DurableConsumer, EventBus,
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

/// A handler that takes the events of one fetch at once, to work on them concurrently (group
/// them by key, send them to a backend together) instead of one round trip per event.
///
/// `events` are in position order per shard, each new (duplicates and gaps are already dealt
/// with). The answer has one result per event, in the same order; a missing result counts as
/// a failure. Failed events are handed again (alone, in order) up to `max_attempts`, then
/// dead-lettered. So a failing event may be retried after later events of its batch were
/// applied: a handler that needs strict order within a key fails the key's later events too.
#[async_trait]
pub trait BatchEventHandler: Send {
    /// As [`EventHandler::wants`]: events it does not want are skipped undecoded.
    fn wants(&self, category: &str, event_type: &str) -> bool {
        let _ = (category, event_type);
        true
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>>;
}

/// Which shards a consumer follows. Always whole shards: the gap check relies on seeing every
/// position of a shard, so a handler that wants a few event types says so with `wants`, and
/// the consumer skips the others by their headers without decoding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSelection {
    All,
    One(Shard),
}

#[derive(Debug, Clone)]
pub struct OrderedConsumerConfig {
    /// Durable consumer name, checkpoint name and dead-letter subject token.
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
    checkpoints: Arc<dyn CheckpointStore>,
    config: OrderedConsumerConfig,
    /// Shared with the fetch that runs ahead while a batch is handled (`run_batched`).
    consumer: Arc<dyn DurableConsumer>,
    /// Last applied position per shard (in memory; saved by `flush`).
    last: HashMap<Shard, Position>,
    /// Shards whose position moved since the last save.
    dirty: HashMap<Shard, Position>,
    /// Acks held until the checkpoint covering them is saved.
    held: Vec<Box<dyn Acker>>,
    last_flush: Instant,
}

impl OrderedConsumer {
    /// Creates (or binds to) the durable consumer and loads the checkpoint.
    pub async fn new(
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        config: OrderedConsumerConfig,
    ) -> Result<Self, ConsumerError> {
        validate_consumer_name(&config.name)?;
        let subjects = bus.subjects();
        let filter = match config.shards {
            ShardSelection::All => subjects.events_all(),
            ShardSelection::One(shard) => subjects.events_shard(shard),
        };
        let mut consumer_config = ConsumerConfig::new(config.name.clone(), filter);
        consumer_config.ack_wait = config.ack_wait;
        // Unlimited: gap naks must not use up deliveries; handler retries are counted here.
        consumer_config.max_deliver = None;
        let consumer = Arc::from(bus.consumer(consumer_config).await?);
        let last = checkpoints.load(&config.name).await?;
        Ok(OrderedConsumer {
            bus,
            checkpoints,
            config,
            consumer,
            last,
            dirty: HashMap::new(),
            held: Vec::new(),
            last_flush: Instant::now(),
        })
    }

    /// The last position applied (or skipped past) on a shard.
    pub fn last_applied(&self, shard: Shard) -> Position {
        self.last.get(&shard).copied().unwrap_or(Position::ZERO)
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
            if self.held.len() >= self.config.checkpoint_every
                || self.last_flush.elapsed() >= self.config.checkpoint_interval
            {
                if let Err(e) = self.flush().await {
                    tracing::warn!(error = %e, "cannot save consumer checkpoint; retrying later");
                }
            }
        }
        self.flush().await?;
        Ok(handler)
    }

    /// As [`OrderedConsumer::run`], handing each fetch to a [`BatchEventHandler`] at once.
    /// Same guarantees: per-shard order into the batch, checkpoint before ack, duplicates
    /// skipped, gaps nak'ed, failures retried then dead-lettered.
    #[instrument(skip_all, fields(consumer = %self.config.name))]
    pub async fn run_batched<H: BatchEventHandler>(
        mut self,
        mut handler: H,
        shutdown: CancellationToken,
    ) -> Result<H, ConsumerError> {
        let mut backoff = self.config.retry_backoff;
        // The next fetch, started while the handler worked on the batch before it.
        let mut prefetched: Option<Result<Vec<Delivery>, BusError>> = None;
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let fetched = match prefetched.take() {
                Some(fetched) => fetched,
                None => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    f = self.consumer.fetch(self.config.batch, self.config.fetch_wait) => f,
                },
            };
            let deliveries = match fetched {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, ?backoff, "fetch failed; retrying");
                    self.pause(&shutdown, &mut backoff).await;
                    continue;
                }
            };
            let (fetched, fetch_took) = (deliveries.len(), started.elapsed());
            // While the handler works (its own round trips to the store), the bus gathers and
            // transfers the next batch. Only after a non-empty batch: an idle consumer's fetch
            // waits `fetch_wait` anyway. The batch in hand is always finished, even on
            // shutdown: its events may have been half-applied, and finishing them is cheaper
            // than redoing them.
            let processed = if fetched > 0 {
                let consumer = self.consumer.clone();
                let (batch, wait) = (self.config.batch, self.config.fetch_wait);
                let prefetch = async {
                    tokio::select! {
                        _ = shutdown.cancelled() => None,
                        f = consumer.fetch(batch, wait) => Some(f),
                    }
                };
                let process = async {
                    let began = Instant::now();
                    let processed = self.process_batch(deliveries, &mut handler).await;
                    (processed, began.elapsed())
                };
                let ((processed, took), next) = tokio::join!(process, prefetch);
                prefetched = next;
                (processed, took)
            } else {
                (Ok(()), Duration::ZERO)
            };
            let (processed, handle_took) = processed;
            if let Err(e) = processed {
                tracing::warn!(error = %e, "cannot settle a message; retrying later");
                // What was fetched ahead may now be past a gap: give it back, in order.
                give_back(prefetched.take()).await;
                self.pause(&shutdown, &mut backoff).await;
                continue;
            }
            backoff = self.config.retry_backoff;
            if self.held.len() >= self.config.checkpoint_every
                || self.last_flush.elapsed() >= self.config.checkpoint_interval
            {
                if let Err(e) = self.flush().await {
                    tracing::warn!(error = %e, "cannot save consumer checkpoint; retrying later");
                }
            }
            if fetched > 0 {
                // `fetch_took` is 0 for a batch fetched ahead; the rest of the loop is waiting
                // for the next fetch, and the checkpoint.
                tracing::debug!(fetched, ?fetch_took, ?handle_took,
                    rest_took = ?(started.elapsed() - fetch_took - handle_took), "batch");
            }
        }
        // Fetched ahead but never handed over: redeliver at once to whoever runs next.
        give_back(prefetched.take()).await;
        self.flush().await?;
        Ok(handler)
    }

    /// Sorts one fetch into what to skip, nak, or hand over; hands the rest over as one
    /// batch; then moves the positions and holds the acks.
    async fn process_batch<H: BatchEventHandler>(
        &mut self,
        deliveries: Vec<Delivery>,
        handler: &mut H,
    ) -> Result<(), BusError> {
        // Positions as they will be once this batch is applied, for the gap check within it.
        let mut next_last: HashMap<Shard, Position> = HashMap::new();
        let mut ready = Ready::default();
        let mut redriven = Ready::default();
        let mut skipped: Vec<Delivery> = Vec::new();
        for delivery in deliveries {
            if let Some(target) = delivery.message.header(dlq_headers::REDRIVE) {
                if target != self.config.name {
                    delivery.ack().await?;
                    continue;
                }
                match decode_event(&delivery.message) {
                    Ok(event) => redriven.push(event, delivery),
                    Err(e) => {
                        self.dead_letter(&delivery, &e).await?;
                        delivery.ack().await?;
                    }
                }
                continue;
            }
            let examined = examine(&delivery.message, |c, t| handler.wants(c, t));
            let (shard, position) = match &examined {
                Examined::Skip { shard, position } => (*shard, *position),
                Examined::Event(event) => (event.shard, event.position),
                Examined::Bad(e) => {
                    self.dead_letter(&delivery, e).await?;
                    delivery.ack().await?;
                    continue;
                }
            };
            let last = next_last
                .get(&shard)
                .copied()
                .unwrap_or_else(|| self.last_applied(shard));
            if position <= last {
                let (_, acker) = delivery.into_parts();
                self.held.push(acker);
                continue;
            }
            if position > last.next() {
                tracing::debug!(%shard, %position, %last, "event ahead of its predecessor; nak");
                delivery.nak(Some(self.config.gap_delay)).await?;
                continue;
            }
            next_last.insert(shard, position);
            match examined {
                Examined::Event(event) => ready.push(event, delivery),
                Examined::Skip { .. } | Examined::Bad(_) => skipped.push(delivery),
            }
        }

        let failed = self.handle_batch_with_retries(&ready, handler).await;
        for (i, error) in failed {
            let (event, delivery) = (&ready.events[i], &ready.deliveries[i]);
            tracing::error!(shard = %event.shard, position = %event.position,
                event_id = %event.event_id, error = %error, "handler gave up; dead-lettering");
            self.dead_letter(delivery, error.as_ref()).await?;
        }
        for (shard, position) in next_last {
            self.last.insert(shard, position);
            self.dirty.insert(shard, position);
        }
        let settled = ready.deliveries.into_iter().chain(skipped);
        self.held.extend(settled.map(|d| d.into_parts().1));

        // Redriven dead letters: outside the checkpoint, acked at once.
        let failed = self.handle_batch_with_retries(&redriven, handler).await;
        for (i, error) in failed {
            self.dead_letter(&redriven.deliveries[i], error.as_ref())
                .await?;
        }
        for delivery in redriven.deliveries {
            delivery.ack().await?;
        }
        Ok(())
    }

    /// Hands the events to the handler, then the failed ones again (in order) with back-off,
    /// `max_attempts` times in all. Returns the indexes that still fail, with their errors.
    async fn handle_batch_with_retries<H: BatchEventHandler>(
        &self,
        items: &Ready,
        handler: &mut H,
    ) -> Vec<(usize, HandlerError)> {
        if items.events.is_empty() {
            return Vec::new();
        }
        // The first attempt takes the whole batch as it is; only retries copy events.
        let mut pending: Vec<usize> = (0..items.events.len()).collect();
        let mut results = handler.handle_batch(&items.events).await;
        let mut backoff = self.config.retry_backoff;
        let mut attempt = 1;
        loop {
            let mut results_iter = results.into_iter();
            let mut failed = Vec::new();
            for &i in &pending {
                match results_iter.next() {
                    Some(Ok(())) => {}
                    Some(Err(e)) => failed.push((i, e)),
                    None => failed.push((i, HandlerError::from("the handler gave no result"))),
                }
            }
            if failed.is_empty() || attempt >= self.config.max_attempts {
                return failed;
            }
            tracing::warn!(attempt, failed = failed.len(), error = %failed[0].1,
                "batch handler failed on some events; retrying them");
            for (i, _) in &failed {
                // Keep the bus from redelivering them elsewhere while we retry.
                let _ = items.deliveries[*i].in_progress().await;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
            pending = failed.into_iter().map(|(i, _)| i).collect();
            let events: Vec<RecordedEvent> =
                pending.iter().map(|&i| items.events[i].clone()).collect();
            results = handler.handle_batch(&events).await;
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
            self.held.push(acker);
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
        self.dirty.insert(shard, position);
        let (_, acker) = delivery.into_parts();
        self.held.push(acker);
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

    /// Saves the moved positions, then releases the acks they cover.
    async fn flush(&mut self) -> Result<(), ConsumerError> {
        if !self.dirty.is_empty() {
            let positions: Vec<_> = self.dirty.iter().map(|(s, p)| (*s, *p)).collect();
            self.checkpoints.save(&self.config.name, &positions).await?;
            self.dirty.clear();
        }
        for acker in self.held.drain(..) {
            if let Err(e) = acker.settle(AckKind::Ack).await {
                // A lost ack means one redelivery, which the position check skips.
                tracing::debug!(error = %e, "ack failed");
            }
        }
        self.last_flush = Instant::now();
        Ok(())
    }
}

/// The events of a batch to hand over, beside their deliveries (same index): the handler
/// takes `&events` as is.
#[derive(Default)]
struct Ready {
    events: Vec<RecordedEvent>,
    deliveries: Vec<Delivery>,
}

impl Ready {
    fn push(&mut self, event: RecordedEvent, delivery: Delivery) {
        self.events.push(event);
        self.deliveries.push(delivery);
    }
}

/// Naks every delivery of a batch that will not be handled (fetched ahead of a failure or of
/// shutdown), so the bus delivers them again now instead of after the ack wait.
async fn give_back(prefetched: Option<Result<Vec<Delivery>, BusError>>) {
    if let Some(Ok(deliveries)) = prefetched {
        for delivery in deliveries {
            let _ = delivery.nak(None).await;
        }
    }
}
