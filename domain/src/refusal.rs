//! How a refusal is classified, so one place at the edge can map it to a gRPC status.

use serde::{Deserialize, Serialize};

/// The class of a refusal; the command service maps it 1:1 onto a `tonic::Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The command itself is malformed: retrying the same command can never succeed.
    InvalidArgument,
    /// Not allowed in the current state of the aggregate.
    FailedPrecondition,
    /// Lost a race (a grab after another rider won, a stale offer): the caller should re-read.
    Aborted,
    /// The aggregate does not exist (yet).
    NotFound,
    /// The thing belongs to someone else (another merchant's sku, another rider's order).
    PermissionDenied,
}

/// Every error of the domain can say what kind of refusal it is.
pub trait Refusal {
    fn kind(&self) -> RefusalKind;

    /// The machine-readable reason clients see, for the refusals the contract names.
    fn failure_reason(&self) -> Option<FailureReason> {
        None
    }
}

/// Why an order could not be created; the contract's `FailureReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    OutOfStock,
    DishDelisted,
    MerchantClosed,
    PriceChanged,
    UnknownSku,
}

impl FailureReason {
    /// The contract's name without its `FAILURE_REASON_` prefix, also used as
    /// `google.rpc.ErrorInfo.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::OutOfStock => "OUT_OF_STOCK",
            FailureReason::DishDelisted => "DISH_DELISTED",
            FailureReason::MerchantClosed => "MERCHANT_CLOSED",
            FailureReason::PriceChanged => "PRICE_CHANGED",
            FailureReason::UnknownSku => "UNKNOWN_SKU",
        }
    }

    /// The number of the value in `orderflow.v1.FailureReason`.
    pub fn proto_number(self) -> i32 {
        match self {
            FailureReason::OutOfStock => 1,
            FailureReason::DishDelisted => 2,
            FailureReason::MerchantClosed => 3,
            FailureReason::PriceChanged => 4,
            FailureReason::UnknownSku => 5,
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
