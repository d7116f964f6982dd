//! The deadline scheduler: a durable, ordered consumer of the event log that turns the
//! events opening a window into stored deadlines, and closes the ones that became moot.
//!
//! Idempotent by construction: a deadline's key names its window and `schedule` keeps the
//! first, so an event handled again after a crash stores nothing new; a cancel of a closed
//! key changes nothing. Both events of a pair (open, close) are in one stream, hence one
//! shard, so the consumer sees them in order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::order::{Order, OrderEvent};
use orderflow_domain::rider::{Rider, RiderEvent};
use orderflow_domain::sku::{Sku, SkuEvent};
use orderflow_domain::{OfferId, OrderNo, RiderId, SkuId, Timestamp};
use orderflow_infra::bus::{
    CheckpointStore, EventBus, EventHandler, HandlerError, OrderedConsumer, OrderedConsumerConfig,
};
use orderflow_infra::store::{CausationId, RecordedEvent};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::assignment::ASSIGNMENT_CHECK_AFTER;
use super::{Deadline, DeadlineCause, DeadlineError, DeadlineKind, DeadlineStore, Wakeup};
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

    /// Consumes the event log until `shutdown`, then saves its checkpoint and returns.
    pub async fn run(
        self,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        consumer: OrderedConsumerConfig,
        shutdown: CancellationToken,
    ) -> Result<(), DeadlineError> {
        let consumer = OrderedConsumer::new(bus, checkpoints, consumer).await?;
        consumer.run(self, shutdown).await?;
        Ok(())
    }

    /// Schedules or cancels what one event asks for; other events are ignored.
    #[instrument(skip_all, fields(stream = %event.stream, position = %event.position,
        event_type = %event.event_type))]
    pub async fn apply(&self, event: &RecordedEvent) -> Result<(), DeadlineError> {
        match event.stream.category() {
            "order" => {
                let order_no = OrderNo::parse(event.stream.id())
                    .map_err(|e| CommandError::Corrupt(format!("{}: {e}", event.stream)))?;
                self.on_order(event, order_no, decode::<Order>(event)?)
                    .await
            }
            "sku" => {
                let sku = SkuId::parse(event.stream.id())
                    .map_err(|e| CommandError::Corrupt(format!("{}: {e}", event.stream)))?;
                self.on_sku(event, sku, decode::<Sku>(event)?).await
            }
            // Riders report their location all the time: look at the type before decoding.
            "rider" if RIDER_TYPES.contains(&event.event_type.as_str()) => {
                let rider = RiderId::parse(event.stream.id())
                    .map_err(|e| CommandError::Corrupt(format!("{}: {e}", event.stream)))?;
                self.on_rider(event, rider, decode::<Rider>(event)?).await
            }
            _ => Ok(()),
        }
    }

    async fn on_rider(
        &self,
        event: &RecordedEvent,
        rider: RiderId,
        decoded: RiderEvent,
    ) -> Result<(), DeadlineError> {
        let check = |order_no: &OrderNo| DeadlineKind::AssignmentCheck {
            rider,
            order_no: order_no.clone(),
        };
        match &decoded {
            RiderEvent::OrderAssigned(e) => {
                self.schedule(event, check(&e.order_no), e.at.plus(ASSIGNMENT_CHECK_AFTER))
                    .await
            }
            RiderEvent::OrderUnassigned(e) => self.cancel(check(&e.order_no)).await,
            RiderEvent::OrderFinished(e) => self.cancel(check(&e.order_no)).await,
            RiderEvent::WentOnline(_)
            | RiderEvent::LocationReported(_)
            | RiderEvent::WentOffline(_) => Ok(()),
        }
    }

    async fn on_order(
        &self,
        event: &RecordedEvent,
        order_no: OrderNo,
        decoded: OrderEvent,
    ) -> Result<(), DeadlineError> {
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
            OrderEvent::Created(e) => self.schedule(event, payment(), e.payment_deadline).await,
            OrderEvent::Paid(_) | OrderEvent::Cancelled(_) => self.cancel(payment()).await,
            OrderEvent::RidersNotified(e) => {
                self.schedule(event, offer(&e.offer_id), e.expires_at).await
            }
            OrderEvent::OfferExpired(e) => self.cancel(offer(&e.offer_id)).await,
            OrderEvent::Grabbed(e) => {
                self.cancel(offer(&e.offer_id)).await?;
                self.schedule(event, delivery(), e.delivery_deadline).await
            }
            OrderEvent::DeliveryTimedOut(_) => self.cancel(delivery()).await,
            OrderEvent::Delivered(e) => {
                self.cancel(delivery()).await?;
                if e.late {
                    // A late order closes after ops compensate it (`Compensate`, `CloseOrder`).
                    Ok(())
                } else {
                    self.schedule(event, close(), e.at.plus(self.close_after))
                        .await
                }
            }
            OrderEvent::Closed(_) => self.cancel(close()).await,
            // Failed: only from CREATING, so there is no payment deadline to cancel.
            OrderEvent::Submitted(_)
            | OrderEvent::Failed(_)
            | OrderEvent::PaymentReceived(_)
            | OrderEvent::PaymentRefunded(_)
            | OrderEvent::PickedUp(_)
            | OrderEvent::Compensated(_) => Ok(()),
        }
    }

    async fn on_sku(
        &self,
        event: &RecordedEvent,
        sku: SkuId,
        decoded: SkuEvent,
    ) -> Result<(), DeadlineError> {
        let reservation = |order_no: &OrderNo| DeadlineKind::ReservationExpires {
            sku: sku.clone(),
            order_no: order_no.clone(),
        };
        match &decoded {
            SkuEvent::Reserved(e) => {
                self.schedule(event, reservation(&e.order_no), e.expires_at)
                    .await
            }
            SkuEvent::Deducted(e) => self.cancel(reservation(&e.order_no)).await,
            SkuEvent::Released(e) => self.cancel(reservation(&e.order_no)).await,
            SkuEvent::Listed(_) | SkuEvent::Delisted(_) | SkuEvent::StockAdded(_) => Ok(()),
        }
    }

    async fn schedule(
        &self,
        event: &RecordedEvent,
        kind: DeadlineKind,
        due_at: Timestamp,
    ) -> Result<(), DeadlineError> {
        let cause = DeadlineCause {
            correlation_id: event.metadata.correlation_id.clone(),
            causation_id: CausationId::parse(event.event_id.to_string()).ok(),
        };
        let deadline = Deadline::new(kind, due_at).caused_by(cause);
        let key = deadline.key.clone();
        if self.store.schedule(deadline).await? {
            tracing::debug!(%key, %due_at, "deadline scheduled");
            self.wakeup.scheduled(due_at);
        }
        Ok(())
    }

    async fn cancel(&self, kind: DeadlineKind) -> Result<(), DeadlineError> {
        let key = kind.key();
        if self.store.cancel(&key).await? {
            tracing::debug!(%key, "deadline cancelled: moot");
        }
        Ok(())
    }
}

#[async_trait]
impl EventHandler for DeadlineScheduler {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        let types = match category {
            "order" => ORDER_TYPES,
            "sku" => SKU_TYPES,
            "rider" => RIDER_TYPES,
            _ => return false,
        };
        types.contains(&event_type)
    }

    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.apply(event)
            .await
            .map_err(|e| Box::new(e) as HandlerError)
    }
}
