//! The deadline firer: on a clock, takes the due deadlines in bounded batches and sends each
//! one's command; marks a deadline done only once its command is durable.
//!
//! Fire once, in effect: every command id is derived from the deadline's key
//! (`deadline:payment:{order_no}`), so firing again, after a crash between the append and
//! `complete`, or from a second firer, is answered by the store without appending. What
//! happens to each outcome:
//! - appended (or already appended) → `complete`;
//! - refused because the deadline is moot (paid, grabbed, a stale offer, …) → `complete`;
//! - refused because it has not passed yet (the stored time was earlier than the order's)
//!   → `postpone` to the order's time;
//! - the reaper found the order still pending → `postpone` by `pending_retry`;
//! - a backend outage → left due, the tick stops, and the loop backs off;
//! - any other failure → `postpone` with back-off, counted; after `max_attempts` it is
//!   **parked**: closed with its error kept (outcome `parked`), so it never blocks the queue
//!   and an operator can find it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::order::{CancelCause, Order, OrderCommand, OrderError};
use orderflow_domain::{Actor, Decider, Timestamp};
use orderflow_infra::store::{CommandId, CorrelationId};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::assignment::reconcile_assignment;
use super::reaper::settle_reservation;
use super::{Deadline, DeadlineError, DeadlineKind, DeadlineStore, Wakeup};
use crate::clock::Clock;
use crate::error::CommandError;
use crate::execute::{CommandMeta, Executor};
use crate::stock::StockWriters;

/// The actor of every command a deadline sends.
pub(super) const COMPONENT: &str = "deadlines";

#[derive(Debug, Clone)]
pub struct FirerConfig {
    /// Deadlines taken per look.
    pub batch: usize,
    /// Deadlines of one batch fired at once.
    pub concurrency: usize,
    /// Longest sleep between two looks (a deadline scheduled in the meantime by another
    /// process is found at most this late).
    pub max_idle: Duration,
    /// The reaper looks again this long after finding an order still CREATING or CREATED
    /// (its payment deadline will cancel it, or the payment deduct it).
    pub pending_retry: Duration,
    /// First delay after a failed firing; doubles per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Failed firings before a deadline is parked.
    pub max_attempts: u32,
    /// Longest back-off of the loop while a backend is down.
    pub outage_backoff_max: Duration,
    /// How long a claimed deadline is hidden from other firers (other processes on the same
    /// database). Longer than a batch takes; if a firer dies, its deadlines fire this late.
    pub lease: Duration,
    /// Closed deadlines older than this are deleted (`ORDERFLOW_DEADLINE_RETENTION`).
    pub retention: Duration,
    /// How often the loop prunes, and how many rows one delete takes (a pass stops after
    /// `prune_max_batches`, so a backlog is worked off over several passes).
    pub prune_every: Duration,
    pub prune_batch: usize,
    pub prune_max_batches: usize,
}

impl Default for FirerConfig {
    fn default() -> Self {
        FirerConfig {
            batch: 256,
            concurrency: 16,
            max_idle: Duration::from_secs(1),
            pending_retry: Duration::from_secs(60),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_attempts: 8,
            outage_backoff_max: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(600),
            prune_batch: 1_000,
            prune_max_batches: 100,
        }
    }
}

/// What firing a deadline came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fired {
    /// The command is durable, or was moot: the deadline is done.
    Done,
    /// Look again at this time.
    Later(Timestamp),
}

pub struct DeadlineFirer {
    store: Arc<dyn DeadlineStore>,
    executor: Executor,
    stock: StockWriters,
    clock: Arc<dyn Clock>,
    wakeup: Arc<Wakeup>,
    config: FirerConfig,
}

impl DeadlineFirer {
    pub fn new(
        store: Arc<dyn DeadlineStore>,
        executor: Executor,
        stock: StockWriters,
        clock: Arc<dyn Clock>,
        wakeup: Arc<Wakeup>,
    ) -> Self {
        DeadlineFirer {
            store,
            executor,
            stock,
            clock,
            wakeup,
            config: FirerConfig::default(),
        }
    }

    pub fn with_config(mut self, config: FirerConfig) -> Self {
        self.config = config;
        self
    }

    /// Fires every deadline due at `now`, up to one batch. Returns how many it settled
    /// (done, postponed or parked). An outage stops the batch with an error; the deadlines
    /// not settled stay due.
    #[instrument(skip_all, fields(now = %now))]
    pub async fn tick(&self, now: Timestamp) -> Result<usize, DeadlineError> {
        let due = self
            .store
            .claim(now, self.config.batch, self.config.lease)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let fired: Vec<(Deadline, Result<Fired, DeadlineError>)> = futures::stream::iter(due)
            .map(|d| async move {
                let outcome = self.fire(&d, now).await;
                (d, outcome)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut settled = 0;
        let mut outage = None;
        let mut unsettled = Vec::new();
        for (deadline, outcome) in fired {
            match self.settle(&deadline, outcome, now).await {
                Ok(()) => settled += 1,
                Err(e) if e.is_transient() => {
                    outage = outage.or(Some(e));
                    unsettled.push(deadline);
                }
                Err(e) => return Err(e),
            }
        }
        // Give back what an outage left unsettled, so the next look (ours after the back-off,
        // or another firer's) retries it at once rather than after the lease. Best effort: if
        // the deadline store is the one down, the lease brings them back.
        for deadline in unsettled {
            if let Err(e) = self
                .store
                .postpone(&deadline.key, deadline.due_at, None)
                .await
            {
                tracing::debug!(key = %deadline.key, error = %e, "claim left to its lease");
            }
        }
        match outage {
            Some(e) => Err(e),
            None => Ok(settled),
        }
    }

    /// Deletes closed deadlines older than the retention, in bounded batches. Returns how
    /// many. A deleted key could be scheduled again by a replay of its opening event, which
    /// fires a command the order refuses as moot; the retention keeps that to replays older
    /// than any checkpoint lag.
    #[instrument(skip_all)]
    pub async fn prune(&self, now: Timestamp) -> Result<u64, DeadlineError> {
        let retention = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp::from_millis(now.as_millis().saturating_sub(retention));
        let mut pruned = 0;
        for _ in 0..self.config.prune_max_batches {
            let n = self.store.prune(before, self.config.prune_batch).await?;
            pruned += n;
            if n < self.config.prune_batch as u64 {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, "closed deadlines pruned");
        }
        Ok(pruned)
    }

    /// Looks for due deadlines until `shutdown`: at once again after a full batch, else when
    /// the earliest one is due (at most `max_idle` later) or the scheduler stores a sooner one.
    #[instrument(skip_all)]
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DeadlineError> {
        let mut outage_backoff = self.config.retry_base.min(self.config.outage_backoff_max);
        let mut next_prune = self.clock.now();
        while !shutdown.is_cancelled() {
            let now = self.clock.now();
            if now >= next_prune {
                next_prune = now.plus(self.config.prune_every);
                if let Err(e) = self.prune(now).await {
                    tracing::warn!(error = %e, "cannot prune closed deadlines");
                }
            }
            let wait = match self.tick(now).await {
                Ok(n) if n >= self.config.batch => Duration::ZERO,
                Ok(_) => {
                    outage_backoff = self.config.retry_base.min(self.config.outage_backoff_max);
                    self.idle_wait().await
                }
                Err(e) => {
                    tracing::warn!(error = %e, backoff = ?outage_backoff,
                        "cannot fire deadlines; retrying");
                    let wait = outage_backoff;
                    outage_backoff = (outage_backoff * 2).min(self.config.outage_backoff_max);
                    wait
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            self.wakeup.plan(now.plus(wait));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.wakeup.notified() => {}
            }
        }
        Ok(())
    }

    async fn idle_wait(&self) -> Duration {
        let max = self.config.max_idle;
        match self.store.next_due().await {
            Ok(Some(due_at)) => {
                let ms = due_at
                    .as_millis()
                    .saturating_sub(self.clock.now().as_millis());
                Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(max)
            }
            Ok(None) => max,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next deadline");
                max
            }
        }
    }

    /// Records what firing came to.
    async fn settle(
        &self,
        deadline: &Deadline,
        outcome: Result<Fired, DeadlineError>,
        now: Timestamp,
    ) -> Result<(), DeadlineError> {
        let key = &deadline.key;
        match outcome {
            Ok(Fired::Done) => {
                self.store.complete(key).await?;
            }
            Ok(Fired::Later(at)) => {
                self.store.postpone(key, at, None).await?;
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let error = e.to_string();
                if deadline.attempts.saturating_add(1) >= self.config.max_attempts {
                    tracing::error!(%key, attempts = deadline.attempts + 1, %error,
                        "deadline keeps failing; parked for an operator");
                    self.store.park(key, &error).await?;
                } else {
                    let retry_at = now.plus(self.backoff(deadline.attempts));
                    tracing::warn!(%key, attempts = deadline.attempts + 1, %error, %retry_at,
                        "deadline failed; retrying later");
                    self.store.postpone(key, retry_at, Some(&error)).await?;
                }
            }
        }
        Ok(())
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.min(20));
        self.config
            .retry_base
            .saturating_mul(factor)
            .min(self.config.retry_max)
    }

    #[instrument(skip_all, fields(key = %deadline.key, due_at = %deadline.due_at))]
    async fn fire(&self, deadline: &Deadline, now: Timestamp) -> Result<Fired, DeadlineError> {
        let command = match &deadline.kind {
            DeadlineKind::PaymentDue { .. } => OrderCommand::Cancel {
                cause: CancelCause::PaymentDeadlinePassed,
                now,
            },
            DeadlineKind::OfferExpires { offer_id, .. } => OrderCommand::ExpireOffer {
                offer_id: offer_id.clone(),
                now,
            },
            DeadlineKind::DeliveryDue { .. } => OrderCommand::DeliveryDeadlinePassed { now },
            DeadlineKind::CloseDue { .. } => OrderCommand::Close { at: now },
            DeadlineKind::AssignmentCheck { rider, order_no } => {
                return reconcile_assignment(&self.executor, deadline, *rider, order_no, now).await;
            }
            DeadlineKind::ReservationExpires { sku, order_no } => {
                return settle_reservation(
                    &self.executor,
                    &self.stock,
                    deadline,
                    sku,
                    order_no,
                    now,
                    self.config.pending_retry,
                )
                .await;
            }
        };
        let stream = deadline.kind.order_no().stream_id();
        let meta = command_meta(deadline, &format!("deadline:{}", deadline.key), now)?;
        match self
            .executor
            .execute::<Order>(&stream, &command, &meta)
            .await
        {
            Ok(done) => {
                tracing::info!(
                    appended = done.events.len(),
                    deduplicated = done.deduplicated,
                    "deadline fired"
                );
                Ok(Fired::Done)
            }
            Err(CommandError::Refused { .. }) => {
                // Why? The refusal's text is for people; decide again on the state to get
                // the typed reason.
                let state = self.executor.load::<Order>(&stream).await?.state;
                Ok(match Order::decide(&command, &state) {
                    Err(
                        OrderError::PaymentDeadlineNotPassed { deadline: at, .. }
                        | OrderError::OfferNotExpired { expires_at: at, .. }
                        | OrderError::DeliveryDeadlineNotPassed { deadline: at, .. },
                    ) => {
                        tracing::warn!(order_deadline = %at, "deadline fired before the order's; postponed");
                        Fired::Later(at)
                    }
                    Err(reason) => {
                        tracing::debug!(%reason, "deadline moot");
                        Fired::Done
                    }
                    // The order changed between the two reads: look again shortly.
                    Ok(_) => Fired::Later(now.plus(self.config.retry_base)),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The metadata of a deadline's command: a command id derived from the key (the fire-once
/// guarantee), the correlation and causation of the event that opened the deadline.
pub(super) fn command_meta(
    deadline: &Deadline,
    command_id: &str,
    now: Timestamp,
) -> Result<CommandMeta, CommandError> {
    let (correlation_id, causation_id) = match &deadline.cause {
        Some(cause) => (cause.correlation_id.clone(), cause.causation_id.clone()),
        None => (CorrelationId::parse(command_id)?, None),
    };
    Ok(CommandMeta {
        command_id: CommandId::parse(command_id)?,
        correlation_id,
        causation_id,
        actor: Actor::system(COMPONENT),
        at: now,
    })
}
