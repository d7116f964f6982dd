//! A sku as its events leave it: the listing and the stock ledger (seed 001's 库存预占流水).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::SkuEvent;
use crate::ids::MerchantId;
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::quantity::Quantity;
use crate::text::Name;
use crate::time::Timestamp;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkuState {
    listing: Option<Listing>,
    stock: StockLevel,
    reservations: BTreeMap<OrderNo, Reservation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub merchant: MerchantId,
    pub name: Name,
    pub price: Money,
    pub listed: bool,
}

/// Unit totals. Always `added = available + reserved + deducted` and `available >= 0`;
/// `released` counts units ever given back, for information.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockLevel {
    pub added: i64,
    pub available: i64,
    pub reserved: i64,
    pub deducted: i64,
    pub released: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationState {
    Reserved,
    Deducted,
    Released,
}

/// One row of the ledger: what an order holds of this sku.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub quantity: Quantity,
    pub state: ReservationState,
    pub expires_at: Timestamp,
    pub reserved_at: Timestamp,
}

impl SkuState {
    /// `None` until the sku is first listed.
    pub fn listing(&self) -> Option<&Listing> {
        self.listing.as_ref()
    }

    pub fn is_listed(&self) -> bool {
        self.listing.as_ref().is_some_and(|l| l.listed)
    }

    pub fn stock(&self) -> StockLevel {
        self.stock
    }

    pub fn reservation(&self, order_no: &OrderNo) -> Option<&Reservation> {
        self.reservations.get(order_no)
    }

    /// Every reservation, by order number (so oldest order first).
    pub fn reservations(&self) -> impl Iterator<Item = (&OrderNo, &Reservation)> {
        self.reservations.iter()
    }

    /// Reservations still held at `at` although they expired: what the reaper releases.
    pub fn expired_reservations(
        &self,
        at: Timestamp,
    ) -> impl Iterator<Item = (&OrderNo, &Reservation)> {
        self.reservations
            .iter()
            .filter(move |(_, r)| r.state == ReservationState::Reserved && r.expires_at <= at)
    }
}

/// Applies an event. The arithmetic cannot go wrong on a history `decide` produced: every
/// quantity moved was first checked against the ledger.
pub(super) fn evolve(mut state: SkuState, event: &SkuEvent) -> SkuState {
    let stock = &mut state.stock;
    match event {
        SkuEvent::Listed(e) => {
            state.listing = Some(Listing {
                merchant: e.merchant,
                name: e.name.clone(),
                price: e.price,
                listed: true,
            });
        }
        SkuEvent::Delisted(_) => {
            if let Some(listing) = &mut state.listing {
                listing.listed = false;
            }
        }
        SkuEvent::StockAdded(e) => {
            stock.added += e.quantity.get();
            stock.available += e.quantity.get();
        }
        SkuEvent::Reserved(e) => {
            stock.available -= e.quantity.get();
            stock.reserved += e.quantity.get();
            state.reservations.insert(
                e.order_no.clone(),
                Reservation {
                    quantity: e.quantity,
                    state: ReservationState::Reserved,
                    expires_at: e.expires_at,
                    reserved_at: e.at,
                },
            );
        }
        SkuEvent::Deducted(e) => {
            stock.reserved -= e.quantity.get();
            stock.deducted += e.quantity.get();
            if let Some(r) = state.reservations.get_mut(&e.order_no) {
                r.state = ReservationState::Deducted;
            }
        }
        SkuEvent::Released(e) => {
            stock.reserved -= e.quantity.get();
            stock.available += e.quantity.get();
            stock.released += e.quantity.get();
            if let Some(r) = state.reservations.get_mut(&e.order_no) {
                r.state = ReservationState::Released;
            }
        }
    }
    state
}
