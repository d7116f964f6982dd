//! Batches: a whole fetch handed to a [`BatchEventHandler`] at once, and the pieces the
//! pipelined loop (`pipelined.rs`) shares with it: sorting a fetch into what to skip, nak or
//! hand over; retrying the failed events; landing a handled batch (dead letters, positions,
//! held acks).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{HandlerError, NextBatch, OrderedConsumer, ShardPositions};
use crate::bus::dead_letter::dlq_headers;
use crate::bus::route::{examine, Examined};
use crate::bus::{decode_event, BusError, ConsumerError, Delivery};
use crate::store::RecordedEvent;

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
    /// As [`super::EventHandler::wants`]: events it does not want are skipped undecoded.
    fn wants(&self, category: &str, event_type: &str) -> bool {
        let _ = (category, event_type);
        true
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>>;
}

/// One fetch, sorted: what to hand over, what only moves positions, and where the positions
/// will be once it is applied.
pub(super) struct Sorted {
    /// New events, in position order per shard, beside their deliveries (same index). Shared
    /// with a pipelined handler's stages, which outlive the loop's borrow.
    pub events: Arc<[RecordedEvent]>,
    pub deliveries: Vec<Delivery>,
    /// Events the handler does not want: their positions move with the batch.
    pub skipped: Vec<Delivery>,
    /// Dead letters redriven to this consumer: outside the checkpoint, acked once handled.
    pub redriven: Vec<(RecordedEvent, Delivery)>,
    /// Each shard's position once the batch is applied.
    pub next_last: ShardPositions,
}

impl Sorted {
    /// Takes over a later fetch that has nothing to hand over (only skipped events or
    /// redriven dead letters): its positions then move when this batch lands.
    pub fn absorb(&mut self, later: Sorted) {
        debug_assert!(later.events.is_empty());
        self.skipped.extend(later.skipped);
        self.redriven.extend(later.redriven);
        // The later fetch's positions are past this batch's on every shard they share.
        self.next_last.extend(&later.next_last);
    }
}

impl OrderedConsumer {
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
            let deliveries = match self
                .next_batch(&mut prefetched, &shutdown, &mut backoff)
                .await
            {
                NextBatch::Got(deliveries) => deliveries,
                NextBatch::Retry => continue,
                NextBatch::Stop => break,
            };
            let (fetched, fetch_took) = (deliveries.len(), started.elapsed());
            // While the handler works (its own round trips to the store), the bus gathers and
            // transfers the next batch. Only after a non-empty batch: an idle consumer's fetch
            // waits `fetch_wait` anyway. The batch in hand is always finished, even on
            // shutdown: its events may have been half-applied, and finishing them is cheaper
            // than redoing them.
            let processed = if fetched > 0 {
                let prefetch = self.prefetch(&shutdown);
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
            self.maybe_flush().await;
            if fetched > 0 {
                // `fetch_took` is 0 for a batch fetched ahead; the rest of the loop is waiting
                // for the next fetch, and starting a checkpoint save.
                tracing::debug!(fetched, ?fetch_took, ?handle_took,
                    rest_took = ?(started.elapsed() - fetch_took - handle_took), "batch");
            }
        }
        // Fetched ahead but never handed over: redeliver at once to whoever runs next.
        give_back(prefetched.take()).await;
        self.checkpointing.flush_now().await?;
        Ok(handler)
    }

    /// The next fetch, to run beside the work on the batch in hand; `None` on shutdown.
    pub(super) fn prefetch<'a>(
        &self,
        shutdown: &'a CancellationToken,
    ) -> impl std::future::Future<Output = Option<Result<Vec<Delivery>, BusError>>> + 'a {
        let consumer = self.consumer.clone();
        let (batch, wait) = (self.config.batch, self.config.fetch_wait);
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => None,
                f = consumer.fetch(batch, wait) => Some(f),
            }
        }
    }

    /// Sorts one fetch, hands the new events over as one batch, then lands it.
    async fn process_batch<H: BatchEventHandler>(
        &mut self,
        deliveries: Vec<Delivery>,
        handler: &mut H,
    ) -> Result<(), BusError> {
        let sorted = self
            .sort(
                deliveries,
                |c, t| handler.wants(c, t),
                &ShardPositions::default(),
            )
            .await?;
        let failed = self
            .handle_batch_with_retries(&sorted.events, &sorted.deliveries, None, handler)
            .await;
        self.land(sorted, failed, handler).await
    }

    /// Sorts one fetch into what to skip, nak, or hand over. `ahead` holds the positions of
    /// a batch handed over but not landed yet (the pipelined loop), which count as applied.
    /// Duplicates' acks are held at once; gaps are nak'ed; undecodable messages and other
    /// consumers' redriven dead letters are settled here.
    pub(super) async fn sort(
        &mut self,
        deliveries: Vec<Delivery>,
        wants: impl Fn(&str, &str) -> bool,
        ahead: &ShardPositions,
    ) -> Result<Sorted, BusError> {
        let mut events = Vec::new();
        let mut sorted = Sorted {
            events: Arc::from(Vec::new()),
            deliveries: Vec::new(),
            skipped: Vec::new(),
            redriven: Vec::new(),
            next_last: ShardPositions::default(),
        };
        for delivery in deliveries {
            if let Some(target) = delivery.message.header(dlq_headers::REDRIVE) {
                if target != self.config.name {
                    delivery.ack().await?;
                    continue;
                }
                match decode_event(&delivery.message) {
                    Ok(event) => sorted.redriven.push((event, delivery)),
                    Err(e) => {
                        self.dead_letter(&delivery, &e).await?;
                        delivery.ack().await?;
                    }
                }
                continue;
            }
            let examined = examine(&delivery.message, &wants);
            let (shard, position) = match &examined {
                Examined::Skip { shard, position } => (*shard, *position),
                Examined::Event(event) => (event.shard, event.position),
                Examined::Bad(e) => {
                    self.dead_letter(&delivery, e).await?;
                    delivery.ack().await?;
                    continue;
                }
            };
            let last = sorted
                .next_last
                .get(shard)
                .or_else(|| ahead.get(shard))
                .unwrap_or_else(|| self.last_applied(shard));
            if position <= last {
                let (_, acker) = delivery.into_parts();
                self.checkpointing.hold(acker);
                continue;
            }
            if position > last.next() {
                tracing::debug!(%shard, %position, %last, "event ahead of its predecessor; nak");
                delivery.nak(Some(self.config.gap_delay)).await?;
                continue;
            }
            sorted.next_last.insert(shard, position);
            match examined {
                Examined::Event(event) => {
                    events.push(event);
                    sorted.deliveries.push(delivery);
                }
                Examined::Skip { .. } | Examined::Bad(_) => sorted.skipped.push(delivery),
            }
        }
        sorted.events = Arc::from(events);
        Ok(sorted)
    }

    /// A handled batch: dead-letters the events that still fail, moves the positions, holds
    /// the acks for the checkpoint; then handles the redriven dead letters and acks them.
    pub(super) async fn land<H: BatchEventHandler>(
        &mut self,
        sorted: Sorted,
        failed: Vec<(usize, HandlerError)>,
        handler: &mut H,
    ) -> Result<(), BusError> {
        for (i, error) in failed {
            let (event, delivery) = (&sorted.events[i], &sorted.deliveries[i]);
            tracing::error!(shard = %event.shard, position = %event.position,
                event_id = %event.event_id, error = %error, "handler gave up; dead-lettering");
            self.dead_letter(delivery, error.as_ref()).await?;
        }
        for (shard, position) in sorted.next_last.iter() {
            self.last.insert(shard, position);
            self.checkpointing.moved(shard, position);
        }
        let settled = sorted.deliveries.into_iter().chain(sorted.skipped);
        for delivery in settled {
            self.checkpointing.hold(delivery.into_parts().1);
        }

        // Redriven dead letters: outside the checkpoint, acked at once.
        let (events, deliveries): (Vec<_>, Vec<_>) = sorted.redriven.into_iter().unzip();
        let failed = self
            .handle_batch_with_retries(&events, &deliveries, None, handler)
            .await;
        for (i, error) in failed {
            self.dead_letter(&deliveries[i], error.as_ref()).await?;
        }
        for delivery in deliveries {
            delivery.ack().await?;
        }
        Ok(())
    }

    /// Hands the events to the handler (unless `first` holds the first attempt's results
    /// already), then the failed ones again (in order) with back-off, `max_attempts` times in
    /// all. Returns the indexes that still fail, with their errors.
    pub(super) async fn handle_batch_with_retries<H: BatchEventHandler>(
        &self,
        events: &[RecordedEvent],
        deliveries: &[Delivery],
        first: Option<Vec<Result<(), HandlerError>>>,
        handler: &mut H,
    ) -> Vec<(usize, HandlerError)> {
        if events.is_empty() {
            return Vec::new();
        }
        // The first attempt takes the whole batch as it is; only retries copy events.
        let mut pending: Vec<usize> = (0..events.len()).collect();
        let mut results = match first {
            Some(results) => results,
            None => handler.handle_batch(events).await,
        };
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
                let _ = deliveries[*i].in_progress().await;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
            pending = failed.into_iter().map(|(i, _)| i).collect();
            let retried: Vec<RecordedEvent> = pending.iter().map(|&i| events[i].clone()).collect();
            results = handler.handle_batch(&retried).await;
        }
    }
}

/// Naks every delivery of a batch that will not be handled (fetched ahead of a failure or of
/// shutdown), so the bus delivers them again now instead of after the ack wait.
pub(super) async fn give_back(prefetched: Option<Result<Vec<Delivery>, BusError>>) {
    if let Some(Ok(deliveries)) = prefetched {
        nak_all(deliveries).await;
    }
}

/// Naks deliveries for redelivery now.
pub(super) async fn nak_all(deliveries: impl IntoIterator<Item = Delivery>) {
    for delivery in deliveries {
        let _ = delivery.nak(None).await;
    }
}
