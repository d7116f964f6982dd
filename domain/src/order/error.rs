//! Why an order refuses a command.

use super::status::OrderStatus;
use crate::ids::{BuyerId, OfferId, PaymentTxnId, RiderId, SkuId};
use crate::money::{Currency, Money, MoneyError};
use crate::order_no::OrderNo;
use crate::refusal::{Refusal, RefusalKind};
use crate::shard::Shard;
use crate::time::Timestamp;

/// Most lines one order may have.
pub const MAX_LINES: usize = 50;
/// Widest radius one offer round may reach (the contract's `radius_m` bound).
pub const MAX_RADIUS_M: u32 = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order does not exist")]
    NotFound,
    #[error("order {0} already exists")]
    AlreadyExists(OrderNo),
    #[error("cannot {command} an order in status {status}")]
    InvalidTransition {
        command: &'static str,
        status: OrderStatus,
    },

    // Submit
    #[error("lines must be 1..={MAX_LINES}, got {0}")]
    LineCount(usize),
    #[error("sku {0} appears in more than one line")]
    DuplicateSku(SkuId),
    #[error("unit_price must be > 0 (line {line})")]
    NonPositivePrice { line: usize },
    #[error("lines must share one currency: line {line} is {got}, line 1 is {expected}")]
    MixedCurrencies {
        line: usize,
        expected: Currency,
        got: Currency,
    },
    #[error("order_no {order_no} does not end with buyer {buyer}'s shard {expected}")]
    ShardMismatch {
        order_no: OrderNo,
        buyer: BuyerId,
        expected: Shard,
    },
    #[error("the refusing sku {0} is not a line of the order")]
    RefusedSkuNotALine(SkuId),
    #[error("{field} must be after {at}, got {deadline}")]
    DeadlineNotAfter {
        field: &'static str,
        deadline: Timestamp,
        at: Timestamp,
    },

    // Payment
    #[error("payment amount must equal the order total {expected}, got {got}")]
    AmountMismatch { expected: Money, got: Money },
    #[error("payment {txn} was recorded with amount {first}, got {got}")]
    TxnAmountConflict {
        txn: PaymentTxnId,
        first: Money,
        got: Money,
    },
    #[error("payment deadline {deadline} has not passed at {now}")]
    PaymentDeadlineNotPassed { deadline: Timestamp, now: Timestamp },

    // Offers and grabs
    #[error("offer round must be {expected}, got {got}")]
    OfferRoundNotNext { expected: u32, got: u32 },
    #[error("offer_id {0} was already used for this order")]
    OfferIdReused(OfferId),
    #[error("rider {0} appears twice in one offer")]
    DuplicateRider(RiderId),
    #[error("radius_m must be 1..={MAX_RADIUS_M}, got {0}")]
    RadiusOutOfRange(u32),
    #[error("offer {offer_id} is open until {expires_at}, not expired at {now}")]
    OfferNotExpired {
        offer_id: OfferId,
        expires_at: Timestamp,
        now: Timestamp,
    },
    #[error("offer {0} is not the current offer of this order")]
    StaleOffer(OfferId),
    #[error("rider {0} was not offered this order in this round")]
    RiderNotOffered(RiderId),
    #[error("offer {offer_id} expired at {expires_at}")]
    OfferExpired {
        offer_id: OfferId,
        expires_at: Timestamp,
    },
    #[error("order was already grabbed by rider {0}")]
    AlreadyGrabbed(RiderId),

    // Delivery
    #[error("rider {0} does not carry this order")]
    NotAssignedRider(RiderId),
    #[error("order has not been picked up")]
    NotPickedUp,
    #[error("order was already picked up")]
    AlreadyPickedUp,
    #[error("delivery deadline {deadline} has not passed at {now}")]
    DeliveryDeadlineNotPassed { deadline: Timestamp, now: Timestamp },

    // After delivery
    #[error("only a late order is compensated")]
    NotLate,
    #[error("compensation must be > 0 and at most the total {total}, got {got}")]
    CompensationOutOfRange { total: Money, got: Money },
    #[error("a late order must be compensated before it closes")]
    LateOrderNotCompensated,

    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl Refusal for OrderError {
    fn kind(&self) -> RefusalKind {
        use OrderError::*;
        match self {
            NotFound => RefusalKind::NotFound,
            LineCount(_)
            | DuplicateSku(_)
            | NonPositivePrice { .. }
            | MixedCurrencies { .. }
            | ShardMismatch { .. }
            | RefusedSkuNotALine(_)
            | DeadlineNotAfter { .. }
            | DuplicateRider(_)
            | RadiusOutOfRange(_)
            | OfferIdReused(_)
            | CompensationOutOfRange { .. }
            | Money(_) => RefusalKind::InvalidArgument,
            AlreadyExists(_)
            | InvalidTransition { .. }
            | AmountMismatch { .. }
            | TxnAmountConflict { .. }
            | PaymentDeadlineNotPassed { .. }
            | OfferNotExpired { .. }
            | NotPickedUp
            | AlreadyPickedUp
            | DeliveryDeadlineNotPassed { .. }
            | NotLate
            | LateOrderNotCompensated => RefusalKind::FailedPrecondition,
            // Lost races: another round, another rider or the offer window got there first.
            OfferRoundNotNext { .. }
            | StaleOffer(_)
            | RiderNotOffered(_)
            | OfferExpired { .. }
            | AlreadyGrabbed(_) => RefusalKind::Aborted,
            NotAssignedRider(_) => RefusalKind::PermissionDenied,
        }
    }
}
