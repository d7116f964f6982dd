//! An order as its events leave it, and `evolve`, which only applies them.

use super::command::{CancelCause, OrderLine};
use super::event::{OrderEvent, OrderFailed, OrderSubmitted};
use super::status::OrderStatus;
use crate::geo::Address;
use crate::ids::{BuyerId, MerchantId, OfferId, PaymentTxnId, RiderId};
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::refusal::FailureReason;
use crate::time::Timestamp;

/// The state of an `order-{order_no}` stream: nothing yet, or a placed order.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum OrderState {
    #[default]
    Empty,
    Placed(Box<PlacedOrder>),
}

impl OrderState {
    pub fn order(&self) -> Option<&PlacedOrder> {
        match self {
            OrderState::Empty => None,
            OrderState::Placed(order) => Some(order),
        }
    }

    pub fn status(&self) -> Option<OrderStatus> {
        self.order().map(|o| o.status)
    }
}

/// Everything `decide` needs to know about an order, readable by command handlers.
/// Only `evolve` builds it, from events.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedOrder {
    pub order_no: OrderNo,
    pub buyer: BuyerId,
    pub merchant: MerchantId,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub address: Address,
    pub status: OrderStatus,
    pub submitted_at: Timestamp,
    pub updated_at: Timestamp,
    pub failure: Option<FailureReason>,
    pub payment_deadline: Option<Timestamp>,
    pub cancel_cause: Option<CancelCause>,
    /// The payment that paid the order.
    pub paid_by: Option<PaymentTxnId>,
    /// Every payment transaction ever seen, paid or refunded, for idempotency.
    pub payments: Vec<PaymentRecord>,
    pub refunded: Money,
    /// The latest offer round; kept after it expires so the next round can be numbered.
    pub offer: Option<Offer>,
    pub past_offer_ids: Vec<OfferId>,
    pub rider: Option<RiderId>,
    pub delivery_deadline: Option<Timestamp>,
    pub picked_up_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    /// Ever timed out or delivered at or after the deadline.
    pub late: bool,
    pub compensation: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub txn: PaymentTxnId,
    pub amount: Money,
    pub refunded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub offer_id: OfferId,
    pub round: u32,
    pub riders: Vec<RiderId>,
    pub radius_m: u32,
    pub expires_at: Timestamp,
}

impl PlacedOrder {
    /// The order as its submission leaves it: CREATING.
    fn submitted(e: &OrderSubmitted) -> Self {
        PlacedOrder {
            order_no: e.order_no.clone(),
            buyer: e.buyer,
            merchant: e.merchant,
            lines: e.lines.clone(),
            total: e.total,
            address: e.address.clone(),
            status: OrderStatus::Creating,
            submitted_at: e.at,
            updated_at: e.at,
            failure: None,
            payment_deadline: None,
            cancel_cause: None,
            paid_by: None,
            payments: Vec::new(),
            refunded: Money::zero(e.total.currency()),
            offer: None,
            past_offer_ids: Vec::new(),
            rider: None,
            delivery_deadline: None,
            picked_up_at: None,
            delivered_at: None,
            late: false,
            compensation: None,
        }
    }

    fn fail(&mut self, e: &OrderFailed) {
        self.status = OrderStatus::Failed;
        self.failure = Some(e.reason);
        self.updated_at = e.at;
    }

    pub fn payment(&self, txn: &PaymentTxnId) -> Option<&PaymentRecord> {
        self.payments.iter().find(|p| &p.txn == txn)
    }
}

pub(super) fn evolve(state: OrderState, event: &OrderEvent) -> OrderState {
    let mut order = match (state, event) {
        (OrderState::Empty, OrderEvent::Submitted(e)) => {
            return OrderState::Placed(Box::new(PlacedOrder::submitted(e)))
        }
        (OrderState::Empty, OrderEvent::Refused(e)) => {
            let mut order = PlacedOrder::submitted(&e.submitted);
            order.fail(&e.failed());
            return OrderState::Placed(Box::new(order));
        }
        // An event that cannot apply to an empty stream is a corrupt history; keep the state
        // as it was rather than invent an order.
        (OrderState::Empty, _) => return OrderState::Empty,
        (OrderState::Placed(order), _) => order,
    };
    match event {
        // A second submission of a placed order is never decided; ignore it like the above.
        OrderEvent::Submitted(_) | OrderEvent::Refused(_) => {}
        OrderEvent::Created(e) => {
            order.status = OrderStatus::Created;
            order.payment_deadline = Some(e.payment_deadline);
            order.updated_at = e.at;
        }
        OrderEvent::Failed(e) => order.fail(e),
        OrderEvent::Paid(e) => {
            order.status = OrderStatus::Paid;
            order.paid_by = Some(e.txn.clone());
            order.payments.push(PaymentRecord {
                txn: e.txn.clone(),
                amount: e.amount,
                refunded: false,
            });
            order.updated_at = e.at;
        }
        OrderEvent::PaymentReceived(e) => {
            order.payments.push(PaymentRecord {
                txn: e.txn.clone(),
                amount: e.amount,
                refunded: false,
            });
        }
        OrderEvent::PaymentRefunded(e) => {
            if let Some(p) = order.payments.iter_mut().find(|p| p.txn == e.txn) {
                p.refunded = true;
            }
            // Refunds are decided in the order's currency, so this cannot fail.
            order.refunded = order
                .refunded
                .checked_add(e.amount)
                .unwrap_or(order.refunded);
        }
        OrderEvent::Cancelled(e) => {
            order.status = OrderStatus::Cancelled;
            order.cancel_cause = Some(e.cause.clone());
            order.updated_at = e.at;
        }
        OrderEvent::RidersNotified(e) => {
            order.status = OrderStatus::Notified;
            order.past_offer_ids.push(e.offer_id.clone());
            order.offer = Some(Offer {
                offer_id: e.offer_id.clone(),
                round: e.round,
                riders: e.riders.clone(),
                radius_m: e.radius_m,
                expires_at: e.expires_at,
            });
            order.updated_at = e.at;
        }
        OrderEvent::OfferExpired(e) => {
            order.status = OrderStatus::Paid;
            order.updated_at = e.at;
        }
        OrderEvent::Grabbed(e) => {
            order.status = OrderStatus::Delivering;
            order.rider = Some(e.rider);
            order.delivery_deadline = Some(e.delivery_deadline);
            order.updated_at = e.at;
        }
        OrderEvent::PickedUp(e) => {
            order.picked_up_at = Some(e.at);
            order.updated_at = e.at;
        }
        OrderEvent::DeliveryTimedOut(e) => {
            order.status = OrderStatus::TimedOut;
            order.late = true;
            order.updated_at = e.at;
        }
        OrderEvent::Delivered(e) => {
            order.status = OrderStatus::Received;
            order.late |= e.late;
            order.delivered_at = Some(e.at);
            order.updated_at = e.at;
        }
        OrderEvent::Compensated(e) => {
            order.status = OrderStatus::Compensated;
            order.compensation = Some(e.amount);
            order.updated_at = e.at;
        }
        OrderEvent::Closed(e) => {
            order.status = OrderStatus::Closed;
            order.updated_at = e.at;
        }
    }
    OrderState::Placed(order)
}
