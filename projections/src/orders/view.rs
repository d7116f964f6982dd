//! The order as the read side shows it, and the pure fold that builds it from events.
//!
//! [`OrderView::apply`] is the whole logic of the order projections (`order_detail`,
//! `buyer_order`, `seller_order` store the same view under different keys) and of
//! `GetOrderAsOf`, which folds it over a stream's events up to a time. It mirrors the domain's
//! `evolve` field for field and adds what only a reader wants: the timeline of status changes.
//!
//! Idempotent by construction: the view remembers the stream version it has applied, and an
//! event at or below it changes nothing.

use orderflow_domain::order::{OrderEvent, OrderFailed, OrderLine, OrderStatus, OrderSubmitted};
use orderflow_domain::{
    Address, BuyerId, DomainEvent, FailureReason, MerchantId, Money, OrderNo, RiderId, Timestamp,
};
use orderflow_infra::store::RecordedEvent;
use serde::{Deserialize, Serialize};

/// One status change, with the time of the event that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: Timestamp,
    /// The type of the event that made the change (`OrderPaid`), for `WatchOrder`.
    pub event_type: String,
}

/// An order, as every order view stores it (a JSON document in PostgreSQL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_no: OrderNo,
    pub buyer: BuyerId,
    pub merchant: MerchantId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub address: Address,
    pub rider: Option<RiderId>,
    pub failure: Option<FailureReason>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub payment_deadline: Option<Timestamp>,
    pub delivery_deadline: Option<Timestamp>,
    /// Was ever TIMED_OUT, or delivered late.
    pub late: bool,
    pub compensation: Option<Money>,
    /// Payments refunded (a payment after a cancel, for instance).
    pub refunded: Money,
    pub timeline: Vec<StatusChange>,
    /// The last stream version applied: the idempotency guard of [`OrderView::apply`].
    pub version: u64,
}

/// Why an event could not be applied to a view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot decode {event_type} at version {version} of {stream}: {reason}")]
    Undecodable {
        stream: String,
        version: u64,
        event_type: String,
        reason: String,
    },
}

/// The order event of a recorded event, `None` for other streams' events.
pub fn order_event(event: &RecordedEvent) -> Result<Option<OrderEvent>, ViewError> {
    if event.stream.category() != orderflow_domain::stream::ORDER_CATEGORY {
        return Ok(None);
    }
    OrderEvent::decode(&event.event_type, event.event_version, &event.payload)
        .map(Some)
        .map_err(|e| ViewError::Undecodable {
            stream: event.stream.to_string(),
            version: event.stream_version,
            event_type: event.event_type.clone(),
            reason: e.to_string(),
        })
}

impl OrderView {
    /// The view after `event` (the `stream_version`-th event of the order's stream).
    ///
    /// - no view and `OrderSubmitted`: the order appears, CREATING;
    /// - no view and `OrderRefused`: the order appears, FAILED;
    /// - no view and anything else: still no view (a history that starts mid-way is corrupt;
    ///   inventing an order would be worse);
    /// - `stream_version` ≤ the view's version: unchanged (a repeat).
    pub fn apply(view: Option<OrderView>, event: &OrderEvent, stream_version: u64) -> Option<Self> {
        let mut view = match (view, event) {
            (None, OrderEvent::Submitted(e)) => {
                return Some(OrderView::submitted(e, event, stream_version))
            }
            // Refused as it was submitted: the order appears already FAILED, with both status
            // changes in its timeline, as `OrderSubmitted` + `OrderFailed` would leave it.
            (None, OrderEvent::Refused(e)) => {
                let mut view = OrderView::submitted(&e.submitted, event, stream_version);
                view.fail(&e.failed(), event);
                return Some(view);
            }
            (None, _) => return None,
            (Some(view), _) if stream_version <= view.version => return Some(view),
            (Some(view), _) => view,
        };
        view.version = stream_version;
        let (status, at) = match event {
            OrderEvent::Submitted(_) | OrderEvent::Refused(_) => (None, None),
            OrderEvent::Created(e) => {
                view.payment_deadline = Some(e.payment_deadline);
                (Some(OrderStatus::Created), Some(e.at))
            }
            OrderEvent::Failed(e) => {
                view.fail(e, event);
                (None, None)
            }
            OrderEvent::Paid(e) => (Some(OrderStatus::Paid), Some(e.at)),
            OrderEvent::PaymentReceived(_) => (None, None),
            OrderEvent::PaymentRefunded(e) => {
                // Refunds are in the order's currency; keep the old sum if not.
                view.refunded = view.refunded.checked_add(e.amount).unwrap_or(view.refunded);
                (None, None)
            }
            OrderEvent::Cancelled(e) => (Some(OrderStatus::Cancelled), Some(e.at)),
            OrderEvent::RidersNotified(e) => (Some(OrderStatus::Notified), Some(e.at)),
            OrderEvent::OfferExpired(e) => (Some(OrderStatus::Paid), Some(e.at)),
            OrderEvent::Grabbed(e) => {
                view.rider = Some(e.rider);
                view.delivery_deadline = Some(e.delivery_deadline);
                (Some(OrderStatus::Delivering), Some(e.at))
            }
            OrderEvent::PickedUp(e) => (None, Some(e.at)),
            OrderEvent::DeliveryTimedOut(e) => {
                view.late = true;
                (Some(OrderStatus::TimedOut), Some(e.at))
            }
            OrderEvent::Delivered(e) => {
                view.late |= e.late;
                (Some(OrderStatus::Received), Some(e.at))
            }
            OrderEvent::Compensated(e) => {
                view.compensation = Some(e.amount);
                (Some(OrderStatus::Compensated), Some(e.at))
            }
            OrderEvent::Closed(e) => (Some(OrderStatus::Closed), Some(e.at)),
        };
        if let Some(at) = at {
            view.updated_at = at;
        }
        if let (Some(status), Some(at)) = (status, at) {
            view.status = status;
            view.timeline.push(StatusChange {
                status,
                at,
                event_type: event.event_type().to_owned(),
            });
        }
        Some(view)
    }

    /// The view an order's first event leaves: CREATING.
    fn submitted(e: &OrderSubmitted, event: &OrderEvent, stream_version: u64) -> Self {
        OrderView {
            order_no: e.order_no.clone(),
            buyer: e.buyer,
            merchant: e.merchant,
            status: OrderStatus::Creating,
            lines: e.lines.clone(),
            total: e.total,
            address: e.address.clone(),
            rider: None,
            failure: None,
            created_at: e.at,
            updated_at: e.at,
            payment_deadline: None,
            delivery_deadline: None,
            late: false,
            compensation: None,
            refunded: Money::zero(e.total.currency()),
            timeline: vec![StatusChange {
                status: OrderStatus::Creating,
                at: e.at,
                event_type: event.event_type().to_owned(),
            }],
            version: stream_version,
        }
    }

    /// Moves the view to FAILED, recording the status change.
    fn fail(&mut self, e: &OrderFailed, event: &OrderEvent) {
        self.failure = Some(e.reason);
        self.status = OrderStatus::Failed;
        self.updated_at = e.at;
        self.timeline.push(StatusChange {
            status: OrderStatus::Failed,
            at: e.at,
            event_type: event.event_type().to_owned(),
        });
    }

    /// Words a search should find this order by (its number, dish names, address); the
    /// merchant's name is joined in by the search itself, since it can change.
    ///
    /// Everything here comes with `OrderSubmitted` and never changes: `order_detail` in
    /// PostgreSQL computes the search vector once, when the order's row is inserted, and
    /// keeps it on every later update. Text from a later event would need that changed.
    pub fn search_text(&self) -> String {
        let mut text = String::from(self.order_no.as_str());
        for line in &self.lines {
            text.push(' ');
            text.push_str(line.name.as_str());
            text.push(' ');
            text.push_str(line.sku.as_str());
        }
        text.push(' ');
        text.push_str(self.address.text().as_str());
        text
    }
}
