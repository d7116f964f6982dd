//! Pipelined batches: a handler whose work on a batch has two stages, the second of which may
//! overlap the next batch's first. For a process manager whose batch is "claim in log order,
//! then write the outcomes", the outcomes of batch N are written while batch N+1 claims.
//!
//! Same guarantees as [`OrderedConsumer::run_batched`]: per-shard order into each batch,
//! duplicates skipped, gaps nak'ed, failures retried then dead-lettered, checkpoint before
//! ack. A batch's positions move (and its acks are held for the checkpoint) only once its
//! second stage has finished and its failed events were retried: a crash at any point
//! redelivers every event of both batches in flight, so both stages must be idempotent.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::instrument;

use super::batched::{give_back, nak_all, BatchEventHandler, Sorted};
use super::{HandlerError, NextBatch, OrderedConsumer};
use crate::bus::{BusError, ConsumerError, Delivery};
use crate::store::RecordedEvent;

/// The rest of a batch's work once its first stage returned: one result per event of the
/// batch, as [`BatchEventHandler::handle_batch`] answers.
pub type SecondStage = BoxFuture<'static, Vec<Result<(), HandlerError>>>;

/// A batch handler in two stages (see the module doc).
///
/// - [`PipelinedHandler::start`] runs batch after batch: the first stage of batch N+1 begins
///   only once batch N's first stage returned. Work that must follow the log's order (e.g.
///   first-come-first-served claims) belongs there.
/// - The [`SecondStage`] it returns runs in a task of its own, beside the next batch's first
///   stage, and may take as long as it needs; the next batch's second stage waits for it.
///   A first stage must therefore not rely on the previous batch's second stage being done.
///
/// Failed events are retried as in [`BatchEventHandler`], both stages at once and not
/// overlapped, after the next batch's first stage; then dead-lettered.
#[async_trait]
pub trait PipelinedHandler: Send {
    /// As [`super::EventHandler::wants`]: events it does not want are skipped undecoded.
    fn wants(&self, category: &str, event_type: &str) -> bool {
        let _ = (category, event_type);
        true
    }

    /// The first stage of `events` (never empty); returns the second.
    async fn start(&mut self, events: Arc<[RecordedEvent]>) -> SecondStage;
}

/// A batch whose first stage ran and whose second runs in its task.
struct InFlight {
    sorted: Sorted,
    second: Running,
}

/// A second stage running in a task of its own. Dropping it aborts the task: if the consumer
/// dies, so does the work it would have acknowledged.
struct Running(AbortOnDropHandle<Vec<Result<(), HandlerError>>>);

impl Running {
    fn spawn(stage: SecondStage) -> Self {
        Running(AbortOnDropHandle::new(tokio::spawn(stage)))
    }

    /// The stage's results; every event failed if the task panicked.
    async fn results(self, events: usize) -> Vec<Result<(), HandlerError>> {
        match self.0.await {
            Ok(results) => results,
            Err(e) => {
                let error = format!("second stage ended abnormally: {e}");
                (0..events).map(|_| Err(error.as_str().into())).collect()
            }
        }
    }
}

impl OrderedConsumer {
    /// As [`OrderedConsumer::run_batched`], with each batch's second stage overlapping the
    /// next batch's first (see [`PipelinedHandler`]).
    #[instrument(skip_all, fields(consumer = %self.config.name))]
    pub async fn run_pipelined<H: PipelinedHandler>(
        mut self,
        mut handler: H,
        shutdown: CancellationToken,
    ) -> Result<H, ConsumerError> {
        let mut backoff = self.config.retry_backoff;
        let mut prefetched: Option<Result<Vec<Delivery>, BusError>> = None;
        let mut in_flight: Option<InFlight> = None;
        while !shutdown.is_cancelled() {
            let deliveries = match self
                .next_batch(&mut prefetched, &shutdown, &mut backoff)
                .await
            {
                NextBatch::Got(deliveries) => deliveries,
                NextBatch::Retry => continue,
                NextBatch::Stop => break,
            };
            if deliveries.is_empty() {
                // Idle: nothing to overlap the batch in flight with.
                if let Some(batch) = in_flight.take() {
                    if let Err(e) = self.finish(batch, &mut handler).await {
                        tracing::warn!(error = %e, "cannot settle a message; retrying later");
                        self.pause(&shutdown, &mut backoff).await;
                        continue;
                    }
                }
                self.maybe_flush().await;
                continue;
            }
            let ahead = in_flight
                .as_ref()
                .map(|b| b.sorted.next_last)
                .unwrap_or_default();
            let sorted = match self
                .sort(deliveries, |c, t| handler.wants(c, t), &ahead)
                .await
            {
                Ok(sorted) => sorted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot settle a message; retrying later");
                    self.pause(&shutdown, &mut backoff).await;
                    continue;
                }
            };
            let sorted = match in_flight.as_mut() {
                // Nothing to hand over: no stage of its own, it lands with the batch in
                // flight (which may still be writing; the pipeline does not wait for it).
                Some(batch) if sorted.events.is_empty() => {
                    batch.sorted.absorb(sorted);
                    self.maybe_flush().await;
                    continue;
                }
                _ => sorted,
            };
            // This batch's first stage, and the next fetch, while the batch before runs its
            // second stage in its task. The second stage starts as soon as the first returns,
            // not once the fetch does (which waits up to `fetch_wait` when the bus is idle).
            let events = Arc::clone(&sorted.events);
            let first = async {
                let second: SecondStage = if events.is_empty() {
                    Box::pin(async { Vec::new() })
                } else {
                    handler.start(events).await
                };
                Running::spawn(second)
            };
            let (second, next) = tokio::join!(first, self.prefetch(&shutdown));
            prefetched = next;
            let batch = InFlight { sorted, second };
            if let Some(previous) = in_flight.replace(batch) {
                if let Err(e) = self.finish(previous, &mut handler).await {
                    tracing::warn!(error = %e, "cannot settle a message; retrying later");
                    // The batch just started was sorted as if the one before had landed: let
                    // its second stage end (its work is idempotent, and is done again on
                    // redelivery), then give it back with what was fetched ahead, in order.
                    if let Some(abandoned) = in_flight.take() {
                        let _ = abandoned.second.results(0).await;
                        nak_all(abandoned.sorted.deliveries).await;
                        nak_all(abandoned.sorted.skipped).await;
                        nak_all(abandoned.sorted.redriven.into_iter().map(|(_, d)| d)).await;
                    }
                    give_back(prefetched.take()).await;
                    self.pause(&shutdown, &mut backoff).await;
                    continue;
                }
            }
            backoff = self.config.retry_backoff;
            self.maybe_flush().await;
        }
        // The batch in flight had its first stage: finish it rather than redo it.
        if let Some(batch) = in_flight.take() {
            self.finish(batch, &mut handler).await?;
        }
        give_back(prefetched.take()).await;
        self.checkpointing.flush_now().await?;
        Ok(handler)
    }

    /// Waits for a batch's second stage, retries its failed events (both stages, one batch
    /// at a time), then lands it.
    async fn finish<H: PipelinedHandler>(
        &mut self,
        batch: InFlight,
        handler: &mut H,
    ) -> Result<(), BusError> {
        let InFlight { sorted, second } = batch;
        let results = second.results(sorted.events.len()).await;
        let mut sequential = Sequential(handler);
        let failed = self
            .handle_batch_with_retries(
                &sorted.events,
                &sorted.deliveries,
                Some(results),
                &mut sequential,
            )
            .await;
        self.land(sorted, failed, &mut sequential).await
    }
}

/// A pipelined handler run one batch at a time, both stages in turn: for retries and
/// redriven dead letters, which are rare and must not race the pipeline's order.
struct Sequential<'a, H>(&'a mut H);

#[async_trait]
impl<H: PipelinedHandler> BatchEventHandler for Sequential<'_, H> {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        self.0.wants(category, event_type)
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>> {
        if events.is_empty() {
            return Vec::new();
        }
        self.0.start(Arc::from(events.to_vec())).await.await
    }
}
