//! Why a sku refuses a command.

use crate::ids::MerchantId;
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::refusal::{FailureReason, Refusal, RefusalKind};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    /// Never listed, or (for a reservation) listed by another merchant than the order's.
    #[error("unknown sku")]
    UnknownSku,
    #[error("sku belongs to merchant {owner}")]
    OtherMerchant { owner: MerchantId },
    #[error("price must be > 0, got {0}")]
    NonPositivePrice(Money),
    #[error("dish is delisted")]
    DishDelisted,
    #[error("price changed: the buyer saw {seen}, it is now {current}")]
    PriceChanged { seen: Money, current: Money },
    #[error("out of stock: {requested} requested, {available} available")]
    OutOfStock { requested: i64, available: i64 },
    #[error("stock would overflow: {added} added, {more} more")]
    StockOverflow { added: i64, more: i64 },
    #[error("expires_at must be after {at}, got {expires_at}")]
    ExpiryNotAfter {
        expires_at: Timestamp,
        at: Timestamp,
    },
    #[error("order {order_no} already reserved {reserved}, asked for {requested}")]
    ReservationConflict {
        order_no: OrderNo,
        reserved: i64,
        requested: i64,
    },
    #[error("no reservation for order {0}")]
    ReservationNotFound(OrderNo),
    #[error("the reservation of order {0} was released")]
    ReservationReleased(OrderNo),
    #[error("the reservation of order {0} was deducted")]
    ReservationDeducted(OrderNo),
    #[error("the reservation of order {order_no} expires at {expires_at}, not at {at}")]
    ReservationNotExpired {
        order_no: OrderNo,
        expires_at: Timestamp,
        at: Timestamp,
    },
}

impl Refusal for SkuError {
    fn kind(&self) -> RefusalKind {
        use SkuError::*;
        match self {
            UnknownSku | ReservationNotFound(_) => RefusalKind::NotFound,
            OtherMerchant { .. } => RefusalKind::PermissionDenied,
            NonPositivePrice(_) | ExpiryNotAfter { .. } => RefusalKind::InvalidArgument,
            DishDelisted
            | PriceChanged { .. }
            | OutOfStock { .. }
            | StockOverflow { .. }
            | ReservationConflict { .. }
            | ReservationReleased(_)
            | ReservationDeducted(_)
            | ReservationNotExpired { .. } => RefusalKind::FailedPrecondition,
        }
    }

    fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            SkuError::UnknownSku => Some(FailureReason::UnknownSku),
            SkuError::DishDelisted => Some(FailureReason::DishDelisted),
            SkuError::PriceChanged { .. } => Some(FailureReason::PriceChanged),
            SkuError::OutOfStock { .. } => Some(FailureReason::OutOfStock),
            _ => None,
        }
    }
}
