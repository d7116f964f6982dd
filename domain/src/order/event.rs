//! What happened to an order. Stored under the type names below, all at version 1.

use serde::{Deserialize, Serialize};

use super::command::{CancelCause, OrderLine};
use crate::event::domain_events;
use crate::geo::Address;
use crate::ids::{BuyerId, MerchantId, OfferId, PaymentTxnId, RiderId, SkuId};
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::refusal::FailureReason;
use crate::text::Reason;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSubmitted {
    pub order_no: OrderNo,
    pub buyer: BuyerId,
    pub merchant: MerchantId,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub address: Address,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub payment_deadline: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFailed {
    pub reason: FailureReason,
    pub sku: Option<SkuId>,
    pub at: Timestamp,
}

/// An order refused as it was submitted: one of its lines' SKU was already sold out (or
/// delisted, or repriced) as its last durable state showed, so the order never went to the
/// reservation saga and reserved nothing. The order's only event, standing for its
/// `OrderSubmitted` and an `OrderFailed` at the same instant: a flash sale's late buyers cost
/// one event each instead of two and a saga round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRefused {
    pub submitted: OrderSubmitted,
    pub reason: FailureReason,
    pub sku: SkuId,
}

impl OrderRefused {
    /// The failure this refusal stands for, at the submission's time.
    pub fn failed(&self) -> OrderFailed {
        OrderFailed {
            reason: self.reason,
            sku: Some(self.sku.clone()),
            at: self.submitted.at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub txn: PaymentTxnId,
    pub amount: Money,
    pub at: Timestamp,
}

/// A payment the order cannot take (it is cancelled, failed, or already paid by another
/// transaction). Recorded so the money is accounted for, always followed by its refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceived {
    pub txn: PaymentTxnId,
    pub amount: Money,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    OrderCancelled,
    OrderFailed,
    AlreadyPaid,
}

/// The refund the payment process manager must carry out with the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub txn: PaymentTxnId,
    pub amount: Money,
    pub reason: RefundReason,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub cause: CancelCause,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RidersNotified {
    pub offer_id: OfferId,
    pub round: u32,
    pub riders: Vec<RiderId>,
    pub radius_m: u32,
    pub expires_at: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferExpired {
    pub offer_id: OfferId,
    pub round: u32,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderGrabbed {
    pub rider: RiderId,
    pub offer_id: OfferId,
    pub delivery_deadline: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPickedUp {
    pub rider: RiderId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTimedOut {
    pub delivery_deadline: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDelivered {
    pub rider: RiderId,
    /// Delivered at or after the deadline, whether or not the timer had fired yet.
    pub late: bool,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompensated {
    pub amount: Money,
    pub reason: Reason,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderClosed {
    pub at: Timestamp,
}

domain_events! {
    /// Every event of an `order-{order_no}` stream.
    pub enum OrderEvent {
        Submitted(OrderSubmitted) = "OrderSubmitted" v 1,
        Created(OrderCreated) = "OrderCreated" v 1,
        Failed(OrderFailed) = "OrderFailed" v 1,
        Refused(OrderRefused) = "OrderRefused" v 1,
        Paid(OrderPaid) = "OrderPaid" v 1,
        PaymentReceived(PaymentReceived) = "PaymentReceived" v 1,
        PaymentRefunded(PaymentRefunded) = "PaymentRefunded" v 1,
        Cancelled(OrderCancelled) = "OrderCancelled" v 1,
        RidersNotified(RidersNotified) = "RidersNotified" v 1,
        OfferExpired(OfferExpired) = "OfferExpired" v 1,
        Grabbed(OrderGrabbed) = "OrderGrabbed" v 1,
        PickedUp(OrderPickedUp) = "OrderPickedUp" v 1,
        DeliveryTimedOut(DeliveryTimedOut) = "DeliveryTimedOut" v 1,
        Delivered(OrderDelivered) = "OrderDelivered" v 1,
        Compensated(OrderCompensated) = "OrderCompensated" v 1,
        Closed(OrderClosed) = "OrderClosed" v 1,
    }
}
