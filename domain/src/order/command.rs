//! What can be asked of an order. Every field is already a validated value; the rules that
//! depend on the order's state (or on several fields together) are checked by `decide`.

use serde::{Deserialize, Serialize};

use crate::geo::Address;
use crate::ids::{BuyerId, MerchantId, OfferId, PaymentTxnId, RiderId, SkuId};
use crate::money::{Money, MoneyError};
use crate::order_no::OrderNo;
use crate::quantity::Quantity;
use crate::refusal::FailureReason;
use crate::text::{Name, Reason};
use crate::time::Timestamp;

/// One dish of an order, at the price the buyer saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: SkuId,
    pub name: Name,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn line_total(&self) -> Result<Money, MoneyError> {
        self.unit_price.checked_mul(self.quantity.get())
    }
}

/// Why a line of a submitted order cannot be reserved, and which SKU refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRefusal {
    pub reason: FailureReason,
    pub sku: SkuId,
}

/// Why an order in CREATED is cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum CancelCause {
    /// The buyer changed their mind.
    Buyer { reason: Reason },
    /// Nobody paid before the payment deadline; only accepted once it has really passed.
    PaymentDeadlinePassed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    /// A buyer's order: 1..=50 lines, no sku twice, one currency. The number must carry the
    /// buyer's shard.
    Submit {
        order_no: OrderNo,
        buyer: BuyerId,
        merchant: MerchantId,
        lines: Vec<OrderLine>,
        address: Address,
        at: Timestamp,
        /// A line whose SKU, as its last durable state showed it to the submitter, would refuse
        /// the reservation (sold out, delisted, repriced): the order is refused at once, with
        /// no stock asked for. `None` sends the order to the reservation saga.
        refused: Option<LineRefusal>,
    },
    /// Every line's stock is reserved: the buyer may pay until `payment_deadline`.
    Create {
        payment_deadline: Timestamp,
        at: Timestamp,
    },
    /// Stock could not be reserved; `sku` names the line that failed, when there is one.
    Reject {
        reason: FailureReason,
        sku: Option<SkuId>,
        at: Timestamp,
    },
    /// The payment provider's callback.
    ConfirmPayment {
        txn: PaymentTxnId,
        amount: Money,
        at: Timestamp,
    },
    Cancel {
        cause: CancelCause,
        now: Timestamp,
    },
    /// One round of offers to the riders near the merchant. Rounds count from 1.
    NotifyRiders {
        offer_id: OfferId,
        round: u32,
        riders: Vec<RiderId>,
        radius_m: u32,
        expires_at: Timestamp,
        at: Timestamp,
    },
    /// The offer window timer fired.
    ExpireOffer {
        offer_id: OfferId,
        now: Timestamp,
    },
    /// A rider takes the order with the offer it received; the deliverer must arrive by
    /// `delivery_deadline` (the handler computes it from the SLA).
    Grab {
        rider: RiderId,
        offer_id: OfferId,
        delivery_deadline: Timestamp,
        now: Timestamp,
    },
    PickUp {
        rider: RiderId,
        at: Timestamp,
    },
    /// The delivery deadline timer fired.
    DeliveryDeadlinePassed {
        now: Timestamp,
    },
    ConfirmDelivery {
        rider: RiderId,
        at: Timestamp,
    },
    /// Ops compensate a late delivery.
    Compensate {
        amount: Money,
        reason: Reason,
        at: Timestamp,
    },
    Close {
        at: Timestamp,
    },
}

impl OrderCommand {
    /// The verb used in refusals: "cannot grab an order in status PAID".
    pub fn name(&self) -> &'static str {
        match self {
            OrderCommand::Submit { .. } => "submit",
            OrderCommand::Create { .. } => "create",
            OrderCommand::Reject { .. } => "reject",
            OrderCommand::ConfirmPayment { .. } => "confirm payment of",
            OrderCommand::Cancel { .. } => "cancel",
            OrderCommand::NotifyRiders { .. } => "notify riders of",
            OrderCommand::ExpireOffer { .. } => "expire an offer of",
            OrderCommand::Grab { .. } => "grab",
            OrderCommand::PickUp { .. } => "pick up",
            OrderCommand::DeliveryDeadlinePassed { .. } => "time out",
            OrderCommand::ConfirmDelivery { .. } => "confirm delivery of",
            OrderCommand::Compensate { .. } => "compensate",
            OrderCommand::Close { .. } => "close",
        }
    }
}
