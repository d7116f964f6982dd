//! The stock views (seed 001's 库存预占流水): `stock_ledger`, one projection holding two
//! tables fed by the `sku-{id}` streams —
//!
//! - the **ledger** row of each sku: its merchant, listing (name, price, listed) and unit
//!   totals `added`, `available`, `reserved`, `deducted`, `released`, with
//!   `added = available + reserved + deducted` in every row (a CHECK in PostgreSQL);
//! - the **reservation** rows: what each order holds of a sku, `RESERVED` → `DEDUCTED` or
//!   `RELEASED`, with its `expires_at`.
//!
//! Both come from one sku stream, so one projection (one checkpoint) moves them together: a
//! reader never sees a reservation the ledger does not count yet.
//!
//! - this module: the rows and their pure fold ([`fold_stock`]);
//! - [`ledger`]: the read port [`StockReader`] and its memory twin; [`ledger_pg`]: PostgreSQL.

pub mod ledger;
pub mod ledger_pg;

use std::collections::{HashMap, HashSet};

use orderflow_domain::sku::{ReservationState, SkuEvent};
use orderflow_domain::{DomainEvent, MerchantId, Money, Name, OrderNo, SkuId, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};
use serde::{Deserialize, Serialize};

pub use ledger::{MemoryStockLedger, ReservationCursor, ReservationPage, StockReader};
pub use ledger_pg::PgStockLedger;

/// The projection's name (its checkpoint and the `{view}` of its row changes, key: the sku).
pub const STOCK_LEDGER: &str = "stock_ledger";
/// The `{view}` of reservation row changes, key `{sku}.{order_no}`.
pub const STOCK_RESERVATION: &str = "stock_reservation";

/// The stream category of skus (`sku-{id}`).
const SKU_CATEGORY: &str = "sku";

/// One sku's listing and stock totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRow {
    pub sku: SkuId,
    pub merchant: MerchantId,
    pub name: Name,
    pub price: Money,
    pub listed: bool,
    pub added: i64,
    pub available: i64,
    pub reserved: i64,
    pub deducted: i64,
    /// Units ever released back (informational; already counted in `available`).
    pub released: i64,
    /// The last stream version folded in: an event at or below it changes nothing.
    pub version: u64,
}

impl StockRow {
    /// `added = available + reserved + deducted` and nothing negative.
    pub fn is_consistent(&self) -> bool {
        self.added == self.available + self.reserved + self.deducted
            && [
                self.added,
                self.available,
                self.reserved,
                self.deducted,
                self.released,
            ]
            .iter()
            .all(|n| *n >= 0)
    }
}

/// What one order holds of one sku.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRow {
    pub sku: SkuId,
    pub order_no: OrderNo,
    pub quantity: i64,
    pub state: ReservationState,
    pub expires_at: Timestamp,
    pub reserved_at: Timestamp,
}

impl ReservationRow {
    /// The key of its row changes: `{sku}.{order_no}`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.sku, self.order_no)
    }
}

/// The wire name of a reservation state (`RESERVED`, `DEDUCTED`, `RELEASED`).
pub fn state_name(state: ReservationState) -> &'static str {
    match state {
        ReservationState::Reserved => "RESERVED",
        ReservationState::Deducted => "DEDUCTED",
        ReservationState::Released => "RELEASED",
    }
}

/// Why an event of a sku stream was not folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockFoldError {
    #[error("cannot decode {event_type} of {stream}: {reason}")]
    Undecodable {
        stream: String,
        event_type: String,
        reason: String,
    },
    #[error("{stream} moves stock before it was listed")]
    Unlisted { stream: String },
    #[error("{stream} has an unreadable sku id")]
    BadSku { stream: String },
}

/// The rows a batch changed, each with the position of the last event that changed it, in
/// first-change order.
#[derive(Debug, Default, PartialEq)]
pub struct StockChanges {
    pub ledgers: Vec<(String, Position)>,
    pub reservations: Vec<((String, String), Position)>,
}

fn touch<K: PartialEq + Clone>(list: &mut Vec<(K, Position)>, key: &K, position: Position) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = position,
        None => list.push((key.clone(), position)),
    }
}

/// The sku ids and (sku, order) pairs a batch touches, to load their rows at once.
pub(crate) fn touched(events: &[&RecordedEvent]) -> (Vec<String>, Vec<(String, String)>) {
    let mut skus: Vec<String> = Vec::new();
    let mut pairs = Vec::new();
    // Sets beside the lists (which keep first-touch order): a flash sale's or a rebuild's
    // batch holds thousands of reservations of one sku.
    let (mut seen_skus, mut seen_pairs) = (HashSet::new(), HashSet::new());
    for e in events {
        if e.stream.category() != SKU_CATEGORY {
            continue;
        }
        let sku = e.stream.id().to_owned();
        if seen_skus.insert(sku.clone()) {
            skus.push(sku.clone());
        }
        if let Ok(Some(event)) = sku_event(e) {
            if let Some(order_no) = order_of(&event) {
                let pair = (sku, order_no.to_string());
                if seen_pairs.insert(pair.clone()) {
                    pairs.push(pair);
                }
            }
        }
    }
    (skus, pairs)
}

fn order_of(event: &SkuEvent) -> Option<&OrderNo> {
    match event {
        SkuEvent::Reserved(e) => Some(&e.order_no),
        SkuEvent::Deducted(e) => Some(&e.order_no),
        SkuEvent::Released(e) => Some(&e.order_no),
        _ => None,
    }
}

/// The sku event of a recorded event, `None` for other streams' events.
pub fn sku_event(event: &RecordedEvent) -> Result<Option<SkuEvent>, StockFoldError> {
    if event.stream.category() != SKU_CATEGORY {
        return Ok(None);
    }
    SkuEvent::decode(&event.event_type, event.event_version, &event.payload)
        .map(Some)
        .map_err(|e| StockFoldError::Undecodable {
            stream: event.stream.to_string(),
            event_type: event.event_type.clone(),
            reason: e.to_string(),
        })
}

/// The ledger row and reservation after one event (the `version`-th of the sku's stream).
/// `reservation` is the order's row before the event, for the events that name an order.
/// A repeat (version at or below the row's) changes nothing: `Ok(None)`.
pub fn apply(
    sku: &SkuId,
    row: Option<&StockRow>,
    reservation: Option<&ReservationRow>,
    event: &SkuEvent,
    version: u64,
) -> Result<Option<(StockRow, Option<ReservationRow>)>, StockFoldError> {
    if row.is_some_and(|r| version <= r.version) {
        return Ok(None);
    }
    let unlisted = || StockFoldError::Unlisted {
        stream: sku.stream_id().to_string(),
    };
    let mut next = match (row, event) {
        (_, SkuEvent::Listed(e)) => {
            let mut next = row.cloned().unwrap_or(StockRow {
                sku: sku.clone(),
                merchant: e.merchant,
                name: e.name.clone(),
                price: e.price,
                listed: true,
                added: 0,
                available: 0,
                reserved: 0,
                deducted: 0,
                released: 0,
                version,
            });
            next.name = e.name.clone();
            next.price = e.price;
            next.listed = true;
            next
        }
        (Some(row), _) => row.clone(),
        (None, _) => return Err(unlisted()),
    };
    next.version = version;
    let mut held = None;
    match event {
        SkuEvent::Listed(_) => {}
        SkuEvent::Delisted(_) => next.listed = false,
        SkuEvent::StockAdded(e) => {
            next.added += e.quantity.get();
            next.available += e.quantity.get();
        }
        SkuEvent::Reserved(e) => {
            next.available -= e.quantity.get();
            next.reserved += e.quantity.get();
            held = Some(ReservationRow {
                sku: sku.clone(),
                order_no: e.order_no.clone(),
                quantity: e.quantity.get(),
                state: ReservationState::Reserved,
                expires_at: e.expires_at,
                reserved_at: e.at,
            });
        }
        SkuEvent::Deducted(e) => {
            next.reserved -= e.quantity.get();
            next.deducted += e.quantity.get();
            held = moved(reservation, ReservationState::Deducted);
        }
        SkuEvent::Released(e) => {
            next.reserved -= e.quantity.get();
            next.available += e.quantity.get();
            next.released += e.quantity.get();
            held = moved(reservation, ReservationState::Released);
        }
    }
    Ok(Some((next, held)))
}

fn moved(before: Option<&ReservationRow>, state: ReservationState) -> Option<ReservationRow> {
    before.map(|r| ReservationRow { state, ..r.clone() })
}

/// Folds a batch's sku events into `ledgers` (by sku id) and `reservations` (by sku id and
/// order number), which hold the rows before the batch for what it touches. Unfoldable
/// events are logged and skipped (one bad event must not stop every stock query).
pub(crate) fn fold_stock(
    ledgers: &mut HashMap<String, StockRow>,
    reservations: &mut HashMap<(String, String), ReservationRow>,
    events: &[&RecordedEvent],
) -> StockChanges {
    let mut changes = StockChanges::default();
    for recorded in events {
        let event = match sku_event(recorded) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(projection = STOCK_LEDGER, error = %e, "skips an event");
                continue;
            }
        };
        let Ok(sku) = SkuId::parse(recorded.stream.id()) else {
            let e = StockFoldError::BadSku {
                stream: recorded.stream.to_string(),
            };
            tracing::error!(projection = STOCK_LEDGER, error = %e, "skips an event");
            continue;
        };
        let key = sku.as_str().to_owned();
        let pair = order_of(&event).map(|no| (key.clone(), no.to_string()));
        let before = pair.as_ref().and_then(|p| reservations.get(p));
        match apply(
            &sku,
            ledgers.get(&key),
            before,
            &event,
            recorded.stream_version,
        ) {
            Ok(None) => {}
            Ok(Some((row, held))) => {
                ledgers.insert(key.clone(), row);
                touch(&mut changes.ledgers, &key, recorded.position);
                if let (Some(pair), Some(held)) = (pair, held) {
                    reservations.insert(pair.clone(), held);
                    touch(&mut changes.reservations, &pair, recorded.position);
                }
            }
            Err(e) => tracing::error!(projection = STOCK_LEDGER, error = %e, "skips an event"),
        }
    }
    changes
}

#[cfg(test)]
mod tests;
