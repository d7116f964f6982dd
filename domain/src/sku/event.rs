//! What happened to a sku. Stored under the type names below, all at version 1.

use serde::{Deserialize, Serialize};

use super::command::ReleaseReason;
use crate::event::domain_events;
use crate::ids::MerchantId;
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::quantity::{Quantity, RestockQuantity};
use crate::text::Name;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DishListed {
    pub merchant: MerchantId,
    pub name: Name,
    pub price: Money,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DishDelisted {
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdded {
    pub quantity: RestockQuantity,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    pub order_no: OrderNo,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub expires_at: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDeducted {
    pub order_no: OrderNo,
    pub quantity: Quantity,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleased {
    pub order_no: OrderNo,
    pub quantity: Quantity,
    pub reason: ReleaseReason,
    pub at: Timestamp,
}

domain_events! {
    /// Every event of a `sku-{sku_id}` stream.
    pub enum SkuEvent {
        Listed(DishListed) = "DishListed" v 1,
        Delisted(DishDelisted) = "DishDelisted" v 1,
        StockAdded(StockAdded) = "StockAdded" v 1,
        Reserved(StockReserved) = "StockReserved" v 1,
        Deducted(StockDeducted) = "StockDeducted" v 1,
        Released(StockReleased) = "StockReleased" v 1,
    }
}
