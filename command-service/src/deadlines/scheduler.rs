//! The deadline scheduler: a durable, ordered consumer of the event log that turns the
//! events opening a window into stored deadlines, and closes the ones that became moot.
//!
//! Idempotent by construction: a deadline's key names its window and `schedule` keeps the
//! first, so an event handled again after a crash stores nothing new; a cancel of a closed
//! key changes nothing. Both events of a pair (open, close) are in one stream, hence one
//! shard, so the consumer sees them in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::order::{Order, OrderEvent};
use orderflow_domain::rider::{Rider, RiderEvent};
use orderflow_domain::sku::{Sku, SkuEvent};
use orderflow_domain::{OfferId, OrderNo, RiderId, SkuId, Timestamp};
use orderflow_infra::bus::{
    BatchEventHandler, CheckpointStore, EventBus, HandlerError, OrderedConsumer,
    OrderedConsumerConfig,
};
use orderflow_infra::store::{CausationId, RecordedEvent};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::assignment::ASSIGNMENT_CHECK_AFTER;
use super::{
    Deadline, DeadlineCause, DeadlineError, DeadlineKey, DeadlineKind, DeadlineStore,
    DeadlineStoreError, Wakeup,
};
use crate::error::CommandError;
use crate::execute::decode;

/// The durable consumer's name (and its checkpoint's, and its dead-letter subject's token).
pub const SCHEDULER_CONSUMER: &str = "deadline-scheduler";

/// The events that open or close a window, by category: the only ones [`DeadlineScheduler::apply`]
/// acts on, and so the only ones the consumer decodes. `OrderFailed` is not among them: an
/// order fails only while CREATING, before it has a payment deadline (in a flash sale most
/// orders fail, and cancelling nothing cost a store round trip each).
pub(crate) const ORDER_TYPES: &[&str] = &[
    "OrderCreated",
    "OrderPaid",
    "OrderCancelled",
    "RidersNotified",
    "OfferExpired",
    "OrderGrabbed",
    "DeliveryTimedOut",
    "OrderDelivered",
    "OrderClosed",
];
pub(crate) const SKU_TYPES: &[&str] = &["StockReserved", "StockDeducted", "StockReleased"];
pub(crate) const RIDER_TYPES: &[&str] = &[
    "RiderOrderAssigned",
    "RiderOrderUnassigned",
    "RiderOrderFinished",
];

pub struct DeadlineScheduler {
    store: Arc<dyn DeadlineStore>,
    /// RECEIVED on time → CLOSED after this (`ORDERFLOW_CLOSE_AFTER`).
    close_after: Duration,
    wakeup: Arc<Wakeup>,
}

impl DeadlineScheduler {
    /// `wakeup` is shared with the firer of the same process (or a fresh one if the firer
    /// runs elsewhere: it then finds new deadlines by its regular look).
    pub fn new(store: Arc<dyn DeadlineStore>, close_after: Duration, wakeup: Arc<Wakeup>) -> Self {
        DeadlineScheduler {
            store,
            close_after,
            wakeup,
        }
    }

    /// The consumer settings `run` is meant for: every shard, named [`SCHEDULER_CONSUMER`].
    pub fn consumer_config() -> OrderedConsumerConfig {
        OrderedConsumerConfig::new(SCHEDULER_CONSUMER)
    }

    /// Consumes the event log until `shutdown`, a fetch at a time, then saves its checkpoint
    /// and returns.
    pub async fn run(
        self,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        consumer: OrderedConsumerConfig,
        shutdown: CancellationToken,
    ) -> Result<(), DeadlineError> {
        let consumer = OrderedConsumer::new(bus, checkpoints, consumer).await?;
        consumer.run_batched(self, shutdown).await?;
        Ok(())
    }

    /// Schedules and cancels what a batch of events asks for (other events are ignored), in
    /// as few store round trips as their order allows: one `schedule_many` and one
    /// `cancel_many` per segment. Returns one result per event: an event that cannot be
    /// decoded fails alone; a failed store call fails every event whose work was not done
    /// (the consumer hands them again, in order, and doing one again changes nothing).
    #[instrument(skip_all, fields(events = events.len()))]
    pub async fn apply_batch(&self, events: &[RecordedEvent]) -> Vec<Result<(), DeadlineError>> {
        let mut results: Vec<Result<(), DeadlineError>> = events.iter().map(|_| Ok(())).collect();
        let mut plan = Plan::default();
        for (index, event) in events.iter().enumerate() {
            match self.work(event) {
                Ok(work) => {
                    for step in work {
                        plan.push(index, step);
                    }
                }
                Err(e) => results[index] = Err(e),
            }
        }
        let segments = plan.finish();
        for (n, segment) in segments.iter().enumerate() {
            if let Err(e) = self.flush(segment).await {
                tracing::warn!(error = %e, "deadline batch not stored; its events are retried");
                for later in &segments[n..] {
                    for index in later.events() {
                        results[index] = Err(DeadlineError::Store(copy(&e)));
                    }
                }
                break;
            }
        }
        results
    }

    /// One segment: its schedules, then its cancels (a segment never cancels a key before
    /// scheduling it, see [`Plan::push`]).
    async fn flush(&self, segment: &Segment) -> Result<(), DeadlineStoreError> {
        if !segment.schedules.is_empty() {
            let deadlines: Vec<Deadline> =
                segment.schedules.iter().map(|(_, d)| d.clone()).collect();
            let stored = self.store.schedule_many(deadlines).await?;
            let earliest = segment
                .schedules
                .iter()
                .zip(&stored)
                .filter(|(_, stored)| **stored)
                .map(|((_, d), _)| d.due_at)
                .min();
            tracing::debug!(
                scheduled = stored.iter().filter(|s| **s).count(),
                asked = stored.len(),
                "deadlines scheduled"
            );
            if let Some(due_at) = earliest {
                self.wakeup.scheduled(due_at);
            }
        }
        if !segment.cancels.is_empty() {
            let keys: Vec<DeadlineKey> = segment.cancels.iter().map(|(_, k)| k.clone()).collect();
            let closed = self.store.cancel_many(&keys).await?;
            tracing::debug!(
                cancelled = closed.iter().filter(|c| **c).count(),
                asked = closed.len(),
                "deadlines cancelled: moot"
            );
        }
        Ok(())
    }

    /// What one event asks for, in order; nothing for events that open or close no window.
    fn work(&self, event: &RecordedEvent) -> Result<Vec<Step>, DeadlineError> {
        let corrupt = |e: &dyn std::fmt::Display| {
            DeadlineError::from(CommandError::Corrupt(format!("{}: {e}", event.stream)))
        };
        match event.stream.category() {
            "order" => {
                let order_no = OrderNo::parse(event.stream.id()).map_err(|e| corrupt(&e))?;
                Ok(self.on_order(event, order_no, decode::<Order>(event)?))
            }
            "sku" => {
                let sku = SkuId::parse(event.stream.id()).map_err(|e| corrupt(&e))?;
                Ok(on_sku(event, sku, decode::<Sku>(event)?))
            }
            // Riders report their location all the time: look at the type before decoding.
            "rider" if RIDER_TYPES.contains(&event.event_type.as_str()) => {
                let rider = RiderId::parse(event.stream.id()).map_err(|e| corrupt(&e))?;
                Ok(on_rider(event, rider, decode::<Rider>(event)?))
            }
            _ => Ok(Vec::new()),
        }
    }

    fn on_order(&self, event: &RecordedEvent, order_no: OrderNo, decoded: OrderEvent) -> Vec<Step> {
        let payment = || DeadlineKind::PaymentDue {
            order_no: order_no.clone(),
        };
        let offer = |offer_id: &OfferId| DeadlineKind::OfferExpires {
            order_no: order_no.clone(),
            offer_id: offer_id.clone(),
        };
        let delivery = || DeadlineKind::DeliveryDue {
            order_no: order_no.clone(),
        };
        let close = || DeadlineKind::CloseDue {
            order_no: order_no.clone(),
        };
        match &decoded {
            OrderEvent::Created(e) => vec![schedule(event, payment(), e.payment_deadline)],
            OrderEvent::Paid(_) | OrderEvent::Cancelled(_) => vec![cancel(payment())],
            OrderEvent::RidersNotified(e) => {
                vec![schedule(event, offer(&e.offer_id), e.expires_at)]
            }
            OrderEvent::OfferExpired(e) => vec![cancel(offer(&e.offer_id))],
            OrderEvent::Grabbed(e) => vec![
                cancel(offer(&e.offer_id)),
                schedule(event, delivery(), e.delivery_deadline),
            ],
            OrderEvent::DeliveryTimedOut(_) => vec![cancel(delivery())],
            // A late order closes after ops compensate it (`Compensate`, `CloseOrder`).
            OrderEvent::Delivered(e) if e.late => vec![cancel(delivery())],
            OrderEvent::Delivered(e) => vec![
                cancel(delivery()),
                schedule(event, close(), e.at.plus(self.close_after)),
            ],
            OrderEvent::Closed(_) => vec![cancel(close())],
            // Failed: only from CREATING, so there is no payment deadline to cancel.
            OrderEvent::Submitted(_)
            | OrderEvent::Failed(_)
            | OrderEvent::Refused(_)
            | OrderEvent::PaymentReceived(_)
            | OrderEvent::PaymentRefunded(_)
            | OrderEvent::PickedUp(_)
            | OrderEvent::Compensated(_) => Vec::new(),
        }
    }
}

fn on_rider(event: &RecordedEvent, rider: RiderId, decoded: RiderEvent) -> Vec<Step> {
    let check = |order_no: &OrderNo| DeadlineKind::AssignmentCheck {
        rider,
        order_no: order_no.clone(),
    };
    match &decoded {
        RiderEvent::OrderAssigned(e) => vec![schedule(
            event,
            check(&e.order_no),
            e.at.plus(ASSIGNMENT_CHECK_AFTER),
        )],
        RiderEvent::OrderUnassigned(e) => vec![cancel(check(&e.order_no))],
        RiderEvent::OrderFinished(e) => vec![cancel(check(&e.order_no))],
        RiderEvent::WentOnline(_)
        | RiderEvent::LocationReported(_)
        | RiderEvent::WentOffline(_) => Vec::new(),
    }
}

fn on_sku(event: &RecordedEvent, sku: SkuId, decoded: SkuEvent) -> Vec<Step> {
    let reservation = |order_no: &OrderNo| DeadlineKind::ReservationExpires {
        sku: sku.clone(),
        order_no: order_no.clone(),
    };
    match &decoded {
        SkuEvent::Reserved(e) => vec![schedule(event, reservation(&e.order_no), e.expires_at)],
        SkuEvent::Deducted(e) => vec![cancel(reservation(&e.order_no))],
        SkuEvent::Released(e) => vec![cancel(reservation(&e.order_no))],
        SkuEvent::Listed(_) | SkuEvent::Delisted(_) | SkuEvent::StockAdded(_) => Vec::new(),
    }
}

/// One thing an event asks of the store.
#[derive(Debug)]
enum Step {
    Schedule(Deadline),
    Cancel(DeadlineKey),
}

fn schedule(event: &RecordedEvent, kind: DeadlineKind, due_at: Timestamp) -> Step {
    let cause = DeadlineCause {
        correlation_id: event.metadata.correlation_id.clone(),
        causation_id: CausationId::parse(event.event_id.to_string()).ok(),
    };
    Step::Schedule(Deadline::new(kind, due_at).caused_by(cause))
}

fn cancel(kind: DeadlineKind) -> Step {
    Step::Cancel(kind.key())
}

/// Steps that can go to the store together: within a segment no key is cancelled before it
/// is scheduled, so "all its schedules, then all its cancels" has the effect of doing its
/// steps one by one in order.
#[derive(Debug, Default)]
struct Segment {
    /// Each with the index of the event that asked for it.
    schedules: Vec<(usize, Deadline)>,
    cancels: Vec<(usize, DeadlineKey)>,
    cancelled: HashSet<DeadlineKey>,
}

impl Segment {
    fn is_empty(&self) -> bool {
        self.schedules.is_empty() && self.cancels.is_empty()
    }

    /// The events whose steps are in this segment.
    fn events(&self) -> impl Iterator<Item = usize> + '_ {
        let schedules = self.schedules.iter().map(|(i, _)| *i);
        schedules.chain(self.cancels.iter().map(|(i, _)| *i))
    }
}

/// A batch's steps cut into segments, in event order.
#[derive(Debug, Default)]
struct Plan {
    done: Vec<Segment>,
    open: Segment,
}

impl Plan {
    /// Adds a step. A schedule of a key the open segment already cancels starts a new
    /// segment: done after the cancel, as the events ask. (A stream opens a window before it
    /// closes it, so this is rare: only a key scheduled again after its cancel, which the
    /// store then refuses anyway, since a closed key stays closed.)
    fn push(&mut self, index: usize, step: Step) {
        match step {
            Step::Schedule(deadline) => {
                if self.open.cancelled.contains(&deadline.key) {
                    self.done.push(std::mem::take(&mut self.open));
                }
                self.open.schedules.push((index, deadline));
            }
            Step::Cancel(key) => {
                self.open.cancelled.insert(key.clone());
                self.open.cancels.push((index, key));
            }
        }
    }

    fn finish(mut self) -> Vec<Segment> {
        if !self.open.is_empty() {
            self.done.push(self.open);
        }
        self.done
    }
}

/// The same store error again, for every event of a batch that failed with it.
fn copy(e: &DeadlineStoreError) -> DeadlineStoreError {
    match e {
        DeadlineStoreError::Unavailable(source) => {
            DeadlineStoreError::Unavailable(source.to_string().into())
        }
        DeadlineStoreError::Corrupt { key, reason } => DeadlineStoreError::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        },
    }
}

#[async_trait]
impl BatchEventHandler for DeadlineScheduler {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        let types = match category {
            "order" => ORDER_TYPES,
            "sku" => SKU_TYPES,
            "rider" => RIDER_TYPES,
            _ => return false,
        };
        types.contains(&event_type)
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>> {
        self.apply_batch(events)
            .await
            .into_iter()
            .map(|r| r.map_err(|e| Box::new(e) as HandlerError))
            .collect()
    }
}
