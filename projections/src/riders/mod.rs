//! `rider_geo`: the command side's rider index served as a read model — one projection,
//! two tables:
//!
//! - **riders** (from `rider-{id}` streams): online flag, last location, capacity and the
//!   orders each carries, for `NearbyRiders` (nearest first, within a radius);
//! - **open offers** (from `order-{no}` streams): one row per rider offered the order's
//!   current round, for `ListOffers` / `WatchOffers`. A round replaces the previous one;
//!   `OfferExpired` closes its round; a grab, cancellation, failure or close closes them all.
//!   Expiry by the clock is applied by the reader (`expires_at` ≤ now is not open), so an
//!   offer disappears on time even before the deadline firer records `OfferExpired`.
//!
//! Why not reuse `command-service/src/riders` (the H3 index): the read side must not depend
//! on the command service, and a shared crate would pull H3 into both for a search a bounding
//! box does as well here (see [`crate::merchants`]): riders are searched with the same
//! box-then-haversine code ([`crate::merchants::search_box`]) and the domain's distance.
//!
//! Idempotency: the shard checkpoint skips a redelivered batch; rider rows also keep their
//! stream version. Offer rows carry none: a repeated round or close is a no-op anyway.

pub mod memory;
pub mod pg;

use std::collections::HashMap;

use async_trait::async_trait;
use orderflow_domain::order::OrderEvent;
use orderflow_domain::rider::RiderEvent;
use orderflow_domain::{DomainEvent, GeoPoint, OfferId, OrderNo, RiderId, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::error::ProjectionError;

pub use memory::MemoryRiderGeo;
pub use pg::PgRiderGeo;

/// The projection's name and the `{view}` of rider row changes (key: the rider id).
pub const RIDER_GEO: &str = "rider_geo";
/// The `{view}` of offer changes (key: the order number; the row: the order's open offers
/// after the change).
pub const RIDER_OFFER: &str = "rider_offer";

const RIDER_CATEGORY: &str = "rider";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiderRow {
    pub rider: RiderId,
    pub online: bool,
    pub location: GeoPoint,
    pub capacity: i64,
    /// The orders the rider carries (assigned, not finished).
    pub active: Vec<OrderNo>,
    pub version: u64,
}

impl RiderRow {
    /// `rider`'s row after the `version`-th event of its stream; `None` before it first went
    /// online (a history starting mid-way is corrupt; inventing a rider would be worse).
    pub fn apply(
        rider: RiderId,
        row: Option<&RiderRow>,
        event: &RiderEvent,
        version: u64,
    ) -> Option<Self> {
        if let Some(row) = row {
            if version <= row.version {
                return Some(row.clone());
            }
        }
        let mut next = match (row, event) {
            (None, RiderEvent::WentOnline(e)) => RiderRow {
                rider,
                online: true,
                location: e.location,
                capacity: e.capacity.get(),
                active: Vec::new(),
                version,
            },
            (Some(row), _) => row.clone(),
            (None, _) => return None,
        };
        next.version = version;
        match event {
            RiderEvent::WentOnline(e) => {
                next.online = true;
                next.location = e.location;
                next.capacity = e.capacity.get();
            }
            RiderEvent::LocationReported(e) => next.location = e.location,
            RiderEvent::WentOffline(_) => next.online = false,
            RiderEvent::OrderAssigned(e) => {
                if !next.active.contains(&e.order_no) {
                    next.active.push(e.order_no.clone());
                }
            }
            RiderEvent::OrderUnassigned(e) => next.active.retain(|o| *o != e.order_no),
            RiderEvent::OrderFinished(e) => next.active.retain(|o| *o != e.order_no),
        }
        Some(next)
    }
}

/// One open offer to one rider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRow {
    pub rider: RiderId,
    pub offer_id: OfferId,
    pub order_no: OrderNo,
    pub expires_at: Timestamp,
    /// When the round was made: offers list oldest first.
    pub offered_at: Timestamp,
}

/// An order's open offers after `event`.
pub fn apply_offers(order_no: &OrderNo, open: &[OfferRow], event: &OrderEvent) -> Vec<OfferRow> {
    match event {
        OrderEvent::RidersNotified(e) => e
            .riders
            .iter()
            .map(|rider| OfferRow {
                rider: *rider,
                offer_id: e.offer_id.clone(),
                order_no: order_no.clone(),
                expires_at: e.expires_at,
                offered_at: e.at,
            })
            .collect(),
        OrderEvent::OfferExpired(e) => open
            .iter()
            .filter(|o| o.offer_id != e.offer_id)
            .cloned()
            .collect(),
        OrderEvent::Grabbed(_)
        | OrderEvent::Cancelled(_)
        | OrderEvent::Failed(_)
        | OrderEvent::Refused(_)
        | OrderEvent::Closed(_) => Vec::new(),
        _ => open.to_vec(),
    }
}

/// A rider in a nearby search.
#[derive(Debug, Clone, PartialEq)]
pub struct NearbyRider {
    pub row: RiderRow,
    pub distance_m: u32,
}

/// Online riders among `candidates` within `radius_m` of `center`, nearest first (rider id
/// breaking ties), at most `limit`.
pub fn nearest_riders(
    candidates: impl IntoIterator<Item = RiderRow>,
    center: GeoPoint,
    radius_m: u32,
    limit: usize,
) -> Vec<NearbyRider> {
    let mut found: Vec<NearbyRider> = candidates
        .into_iter()
        .filter(|r| r.online)
        .filter_map(|row| {
            let d = center.distance_m(&row.location);
            // Within 50 km by the filter, so the rounded metres fit a u32.
            (d <= f64::from(radius_m)).then(|| NearbyRider {
                distance_m: d.round() as u32,
                row,
            })
        })
        .collect();
    found.sort_by_key(|r| (r.distance_m, r.row.rider));
    found.truncate(limit);
    found
}

/// Reads of the rider views.
#[async_trait]
pub trait RiderReader: Send + Sync + 'static {
    /// Online riders within `radius_m` of `center`, nearest first, at most `limit`.
    async fn nearby(
        &self,
        center: GeoPoint,
        radius_m: u32,
        limit: usize,
    ) -> Result<Vec<NearbyRider>, ProjectionError>;

    /// `rider`'s offers still open at `now`, oldest first.
    async fn offers(
        &self,
        rider: RiderId,
        now: Timestamp,
    ) -> Result<Vec<OfferRow>, ProjectionError>;
}

/// The rows a batch changed, each with the position of its last change.
#[derive(Debug, Default, PartialEq)]
pub struct RiderChanges {
    pub riders: Vec<(i64, Position)>,
    pub orders: Vec<(String, Position)>,
}

fn touch<K: PartialEq + Clone>(list: &mut Vec<(K, Position)>, key: &K, position: Position) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = position,
        None => list.push((key.clone(), position)),
    }
}

/// The rider ids and order numbers a batch touches, to load their rows at once.
pub(crate) fn touched(events: &[&RecordedEvent]) -> (Vec<i64>, Vec<String>) {
    let (mut riders, mut orders) = (Vec::new(), Vec::new());
    for e in events {
        let category = e.stream.category();
        if category == RIDER_CATEGORY {
            if let Ok(id) = RiderId::parse(e.stream.id()) {
                if !riders.contains(&id.get()) {
                    riders.push(id.get());
                }
            }
        } else if category == orderflow_domain::stream::ORDER_CATEGORY {
            let no = e.stream.id().to_owned();
            if !orders.contains(&no) {
                orders.push(no);
            }
        }
    }
    (riders, orders)
}

/// Folds a batch into `riders` (by id) and `offers` (the open offers by order number), which
/// hold the rows before the batch for what it touches. Unreadable events are logged, skipped.
pub(crate) fn fold_riders(
    riders: &mut HashMap<i64, RiderRow>,
    offers: &mut HashMap<String, Vec<OfferRow>>,
    events: &[&RecordedEvent],
) -> RiderChanges {
    let mut changes = RiderChanges::default();
    for recorded in events {
        let category = recorded.stream.category();
        let skip = |reason: &dyn std::fmt::Display| {
            tracing::error!(projection = RIDER_GEO, stream = %recorded.stream, %reason,
                "skips an event");
        };
        if category == RIDER_CATEGORY {
            let Ok(id) = RiderId::parse(recorded.stream.id()) else {
                skip(&"unreadable rider id");
                continue;
            };
            let event = match RiderEvent::decode(
                &recorded.event_type,
                recorded.event_version,
                &recorded.payload,
            ) {
                Ok(e) => e,
                Err(e) => {
                    skip(&e);
                    continue;
                }
            };
            let before = riders.get(&id.get());
            let Some(row) = RiderRow::apply(id, before, &event, recorded.stream_version) else {
                skip(&"rider event before RiderWentOnline");
                continue;
            };
            if before != Some(&row) {
                riders.insert(id.get(), row);
                touch(&mut changes.riders, &id.get(), recorded.position);
            }
        } else if category == orderflow_domain::stream::ORDER_CATEGORY {
            let Ok(order_no) = OrderNo::parse(recorded.stream.id()) else {
                skip(&"unreadable order number");
                continue;
            };
            let event = match OrderEvent::decode(
                &recorded.event_type,
                recorded.event_version,
                &recorded.payload,
            ) {
                Ok(e) => e,
                Err(e) => {
                    skip(&e);
                    continue;
                }
            };
            let key = order_no.as_str().to_owned();
            let before = offers.get(&key).map(Vec::as_slice).unwrap_or_default();
            let after = apply_offers(&order_no, before, &event);
            if after != before {
                offers.insert(key.clone(), after);
                touch(&mut changes.orders, &key, recorded.position);
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests;
