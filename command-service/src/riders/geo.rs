//! The rider-geo index: which online riders are near a point, and whether they have room.
//!
//! Seed 000 keeps a "merchant → riders" table in Redis, refreshed from location reports; here it
//! is an in-memory index built from the event log, so it needs no second store and can always
//! be rebuilt (see `docs/riders.md`):
//! - every online rider with a location sits in one H3 cell at [`CELL_RESOLUTION`] (about
//!   1.4 km edges), riders move between cells as they report;
//! - [`RiderGeoIndex::nearest`] collects the cells of an H3 disk wide enough to cover the
//!   radius, then keeps riders by exact haversine distance (the cells are only a prefilter),
//!   nearest first;
//! - merchants' locations ride along, so the notifier finds a pickup point without a read.
//!
//! The index applies rider and merchant events; it is fed by
//! [`run_index_updater`](super::run_index_updater), which replays the store from position 0
//! on start and then follows it live.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use h3o::{CellIndex, LatLng, Resolution};
use orderflow_domain::merchant::MerchantEvent;
use orderflow_domain::rider::{Rider, RiderEvent, RiderState};
use orderflow_domain::{Decider, DomainEvent, GeoPoint, MerchantId, RiderId};
use orderflow_infra::store::RecordedEvent;
use tokio::sync::watch;

use super::RidersError;

/// H3 resolution of the index cells: about 1.4 km edges (5 km² cells). A first-round radius of
/// 3 km touches a disk of a few dozen cells, the widest re-offer (50 km) under three thousand;
/// finer cells would make wide searches walk tens of thousands of mostly empty cells.
pub const CELL_RESOLUTION: Resolution = Resolution::Seven;

/// Extra room on the disk size: H3 cells are not all the same size (they shrink away from the
/// icosahedron face centres), so the spacing measured at the origin is trusted to 15%.
const SPACING_SAFETY: f64 = 1.15;

/// Which riders a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiderFilter {
    /// Every online rider.
    Online,
    /// Online riders that can take one more order (the notifier's filter).
    HasRoom,
}

/// One rider found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct NearbyRider {
    pub rider: RiderId,
    pub location: GeoPoint,
    /// Great-circle distance from the search centre, metres.
    pub distance_m: f64,
    pub active_orders: usize,
    /// 0 if the rider never said (cannot happen for an online rider).
    pub capacity: i64,
}

/// A comparable copy of everything the index holds, for tests and rebuild checks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexSnapshot {
    pub riders: BTreeMap<RiderId, RiderState>,
    /// Online riders by H3 cell (as its `u64`).
    pub cells: BTreeMap<u64, BTreeSet<RiderId>>,
    pub merchants: BTreeMap<MerchantId, GeoPoint>,
}

/// The index. Shared as `Arc<RiderGeoIndex>` by the updater (the only writer), the notifier
/// and, later, the query side.
pub struct RiderGeoIndex {
    /// A std `RwLock`, not a tokio one: nothing awaits while holding it; writers hold it for a
    /// few map operations per event, readers for one bounded search. Searches run in parallel.
    inner: RwLock<Inner>,
    /// True once the updater has replayed the log up to the heads it saw at start.
    ready: watch::Sender<bool>,
}

#[derive(Default)]
struct Inner {
    riders: HashMap<RiderId, Tracked>,
    /// Online riders with a location, by cell. Offline riders still finishing a delivery keep
    /// reporting but are never offered anything, so they are not in a cell.
    cells: HashMap<CellIndex, BTreeSet<RiderId>>,
    merchants: HashMap<MerchantId, GeoPoint>,
}

#[derive(Default)]
struct Tracked {
    /// The rider aggregate's own state, evolved by the domain's `evolve`: the index can never
    /// disagree with the rider stream about capacity or who is online.
    state: RiderState,
    cell: Option<CellIndex>,
}

impl Default for RiderGeoIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl RiderGeoIndex {
    pub fn new() -> Self {
        RiderGeoIndex {
            inner: RwLock::new(Inner::default()),
            ready: watch::channel(false).0,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic under the lock leaves at worst one rider half-moved; serving that beats
        // losing the index, so poisoning is ignored.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one stored event if it is a rider's or a merchant's; other events are ignored.
    /// Returns whether the event was one the index keeps.
    pub fn apply_recorded(&self, event: &RecordedEvent) -> Result<bool, RidersError> {
        match event.stream.category() {
            "rider" => {
                let rider = RiderId::parse(event.stream.id())
                    .map_err(|e| RidersError::corrupt(event, e.to_string()))?;
                let decoded =
                    RiderEvent::decode(&event.event_type, event.event_version, &event.payload)
                        .map_err(|e| RidersError::corrupt(event, e.to_string()))?;
                self.apply_rider(rider, &decoded);
                Ok(true)
            }
            "merchant" => {
                let merchant = MerchantId::parse(event.stream.id())
                    .map_err(|e| RidersError::corrupt(event, e.to_string()))?;
                let decoded =
                    MerchantEvent::decode(&event.event_type, event.event_version, &event.payload)
                        .map_err(|e| RidersError::corrupt(event, e.to_string()))?;
                self.apply_merchant(merchant, &decoded);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Applies one rider event, in stream order.
    pub fn apply_rider(&self, rider: RiderId, event: &RiderEvent) {
        let mut inner = self.write();
        let tracked = inner.riders.entry(rider).or_default();
        tracked.state = Rider::evolve(std::mem::take(&mut tracked.state), event);
        let old = tracked.cell;
        let new = if tracked.state.online {
            tracked.state.location.and_then(cell_of)
        } else {
            None
        };
        tracked.cell = new;
        if old == new {
            return;
        }
        if let Some(old) = old {
            if let Some(set) = inner.cells.get_mut(&old) {
                set.remove(&rider);
                if set.is_empty() {
                    inner.cells.remove(&old);
                }
            }
        }
        if let Some(new) = new {
            inner.cells.entry(new).or_default().insert(rider);
        }
    }

    /// Applies one merchant event: only where the shop is matters here.
    pub fn apply_merchant(&self, merchant: MerchantId, event: &MerchantEvent) {
        let location = match event {
            MerchantEvent::Opened(e) => e.location,
            MerchantEvent::Moved(e) => e.location,
            _ => return,
        };
        self.write().merchants.insert(merchant, location);
    }

    pub fn merchant_location(&self, merchant: MerchantId) -> Option<GeoPoint> {
        self.read().merchants.get(&merchant).copied()
    }

    /// The rider's state as the index knows it.
    pub fn rider(&self, rider: RiderId) -> Option<RiderState> {
        self.read().riders.get(&rider).map(|t| t.state.clone())
    }

    /// How many riders are online with a location.
    pub fn online_count(&self) -> usize {
        self.read().cells.values().map(BTreeSet::len).sum()
    }

    /// Up to `limit` riders within `radius_m` of `center` (inclusive), nearest first (ties by
    /// rider id, so the answer is deterministic).
    pub fn nearest(
        &self,
        center: GeoPoint,
        radius_m: u32,
        limit: usize,
        filter: RiderFilter,
    ) -> Vec<NearbyRider> {
        if limit == 0 {
            return Vec::new();
        }
        let radius = f64::from(radius_m);
        let Some(origin) = cell_of(center) else {
            return Vec::new();
        };
        let k = disk_k(origin, radius);
        let inner = self.read();
        let mut found = Vec::new();
        let mut consider = |riders: &BTreeSet<RiderId>| {
            for id in riders {
                let Some(tracked) = inner.riders.get(id) else {
                    continue;
                };
                let state = &tracked.state;
                if filter == RiderFilter::HasRoom && !state.has_room() {
                    continue;
                }
                let Some(location) = state.location else {
                    continue;
                };
                let distance_m = center.distance_m(&location);
                if distance_m <= radius {
                    found.push(NearbyRider {
                        rider: *id,
                        location,
                        distance_m,
                        active_orders: state.active_orders.len(),
                        capacity: state.capacity.map_or(0, |c| c.get()),
                    });
                }
            }
        };
        // The disk only narrows the search: when it has more cells than are occupied, walking
        // the occupied ones is cheaper and gives the same answer (distance decides).
        if disk_size(k) >= inner.cells.len() {
            for riders in inner.cells.values() {
                consider(riders);
            }
        } else {
            for cell in origin.grid_disk::<Vec<_>>(k) {
                if let Some(riders) = inner.cells.get(&cell) {
                    consider(riders);
                }
            }
        }
        found.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.rider.cmp(&b.rider))
        });
        found.truncate(limit);
        found
    }

    /// Everything the index holds, in a comparable form.
    pub fn snapshot(&self) -> IndexSnapshot {
        let inner = self.read();
        IndexSnapshot {
            riders: inner
                .riders
                .iter()
                .map(|(id, t)| (*id, t.state.clone()))
                .collect(),
            cells: inner
                .cells
                .iter()
                .map(|(cell, riders)| (u64::from(*cell), riders.clone()))
                .collect(),
            merchants: inner.merchants.iter().map(|(id, p)| (*id, *p)).collect(),
        }
    }

    /// Marks the replay at start as done: searches now see every rider that was online.
    pub fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the index has replayed the log it found at start.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // `wait_for` fails only when the sender is dropped, which `self` prevents.
        let _ = ready.wait_for(|r| *r).await;
    }
}

/// The H3 cell of a point. `LatLng` refuses only non-finite numbers, which a `GeoPoint` never
/// holds, so `None` does not happen in practice.
fn cell_of(p: GeoPoint) -> Option<CellIndex> {
    LatLng::new(p.lat(), p.lng())
        .ok()
        .map(|ll| ll.to_cell(CELL_RESOLUTION))
}

fn point_of(cell: CellIndex) -> Option<GeoPoint> {
    let ll = LatLng::from(cell);
    GeoPoint::new(ll.lat(), ll.lng()).ok()
}

/// How many rings around `origin` cover every cell that can hold a point within `radius` of a
/// point in `origin`.
///
/// With `s` the distance between neighbouring cell centres, a cell's points lie within
/// `s/√3` of its centre, and the centres of ring `k` are at least `k·s·√3/2` from the origin's
/// centre. So a point within `radius` lies in a cell whose centre is within `radius + 2s/√3`
/// of the origin's centre, hence in ring `k ≤ (radius + 2s/√3) / (s·√3/2)`. `s` is measured at
/// the origin (cells vary in size across the globe), with [`SPACING_SAFETY`] and one ring spare.
fn disk_k(origin: CellIndex, radius: f64) -> u32 {
    let spacing = origin_spacing(origin);
    let sqrt3 = 3f64.sqrt();
    let rings = (radius + 2.0 * spacing / sqrt3) / (spacing * sqrt3 / 2.0) * SPACING_SAFETY;
    // Bounded: radius ≤ 50 km and the spacing at resolution 7 is over 1 km, so rings < 100.
    (rings.ceil() as u32).saturating_add(1)
}

/// The smallest distance from `origin`'s centre to a neighbour's centre, metres.
fn origin_spacing(origin: CellIndex) -> f64 {
    let fallback = CELL_RESOLUTION.edge_length_m() * 3f64.sqrt();
    let Some(center) = point_of(origin) else {
        return fallback;
    };
    origin
        .grid_disk::<Vec<_>>(1)
        .into_iter()
        .filter(|c| *c != origin)
        .filter_map(point_of)
        .map(|p| center.distance_m(&p))
        .filter(|d| *d > 0.0)
        .fold(None, |min: Option<f64>, d| {
            Some(min.map_or(d, |m| m.min(d)))
        })
        .unwrap_or(fallback)
}

/// Cells in a disk of `k` rings: 3k(k+1) + 1.
fn disk_size(k: u32) -> usize {
    let k = k as usize;
    3 * k * (k + 1) + 1
}

#[cfg(test)]
mod tests;
