//! What can be asked of a sku: the merchant's listing and restocks, the orders' reservations.

use serde::{Deserialize, Serialize};

use crate::ids::MerchantId;
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::quantity::{Quantity, RestockQuantity};
use crate::text::Name;
use crate::time::Timestamp;

/// Why reserved stock goes back on the shelf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// Another line of the order could not be reserved.
    OrderFailed,
    /// Cancelled by the buyer or the payment deadline.
    OrderCancelled,
    /// The reservation outlived its `expires_at` (the reaper); refused before then.
    Expired,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SkuCommand {
    /// Lists the dish, or changes its name and price. A sku belongs to its first merchant.
    List {
        merchant: MerchantId,
        name: Name,
        price: Money,
        at: Timestamp,
    },
    Delist {
        merchant: MerchantId,
        at: Timestamp,
    },
    /// Adds stock; there is no command that sets a quantity.
    Restock {
        merchant: MerchantId,
        quantity: RestockQuantity,
        at: Timestamp,
    },
    /// Holds stock for one order line, at the price the buyer saw.
    Reserve {
        order_no: OrderNo,
        merchant: MerchantId,
        quantity: Quantity,
        unit_price: Money,
        expires_at: Timestamp,
        at: Timestamp,
    },
    /// The order was paid: the reserved units are sold.
    Deduct {
        order_no: OrderNo,
        at: Timestamp,
    },
    Release {
        order_no: OrderNo,
        reason: ReleaseReason,
        at: Timestamp,
    },
}
