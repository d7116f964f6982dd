//! The rider views in memory: the embedded mode and tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use orderflow_domain::{GeoPoint, RiderId, Shard, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};

use super::{
    fold_riders, nearest_riders, touched, NearbyRider, OfferRow, RiderChanges, RiderReader,
    RiderRow, RIDER_GEO, RIDER_OFFER,
};
use crate::error::ProjectionError;
use crate::merchants::search_box;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};

#[derive(Default)]
struct RiderState {
    checkpoints: HashMap<Shard, Position>,
    riders: HashMap<i64, RiderRow>,
    /// Open offers by order number.
    offers: HashMap<String, Vec<OfferRow>>,
}

#[derive(Default)]
pub struct MemoryRiderGeo {
    /// A std Mutex: one critical section per batch, no await inside.
    state: Mutex<RiderState>,
}

impl MemoryRiderGeo {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RiderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The row changes of a batch: rider rows, then each changed order's open offers.
pub(crate) fn row_changes(
    shard: Shard,
    riders: &HashMap<i64, RiderRow>,
    offers: &HashMap<String, Vec<OfferRow>>,
    changes: &RiderChanges,
) -> Vec<RowChange> {
    let rider_rows = changes.riders.iter().map(|(id, position)| RowChange {
        view: RIDER_GEO,
        key: id.to_string(),
        shard,
        position: *position,
        row: RowJson::encode(&riders[id]).ok(),
    });
    let offer_rows = changes.orders.iter().map(|(no, position)| RowChange {
        view: RIDER_OFFER,
        key: no.clone(),
        shard,
        position: *position,
        row: RowJson::encode(&offers[no]).ok(),
    });
    rider_rows.chain(offer_rows).collect()
}

#[async_trait]
impl ProjectionModel for MemoryRiderGeo {
    fn name(&self) -> &'static str {
        RIDER_GEO
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        Ok(self.lock().checkpoints.clone())
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let saved = state.checkpoints.get(&shard).copied().unwrap_or_default();
        let Some((fresh, last)) = crate::model::unapplied(events, saved) else {
            return Ok(BatchOutcome::default());
        };
        let (rider_ids, order_nos) = touched(&fresh);
        let mut riders: HashMap<i64, RiderRow> = rider_ids
            .iter()
            .filter_map(|id| state.riders.get(id).map(|r| (*id, r.clone())))
            .collect();
        let mut offers: HashMap<String, Vec<OfferRow>> = order_nos
            .iter()
            .filter_map(|no| state.offers.get(no).map(|o| (no.clone(), o.clone())))
            .collect();
        let changes = fold_riders(&mut riders, &mut offers, &fresh);
        let out = row_changes(shard, &riders, &offers, &changes);
        for (id, _) in changes.riders {
            state.riders.insert(id, riders[&id].clone());
        }
        for (no, _) in changes.orders {
            let open = offers.remove(&no).unwrap_or_default();
            if open.is_empty() {
                state.offers.remove(&no);
            } else {
                state.offers.insert(no, open);
            }
        }
        state.checkpoints.insert(shard, last);
        Ok(BatchOutcome { changes: out })
    }
}

#[async_trait]
impl RiderReader for MemoryRiderGeo {
    async fn nearby(
        &self,
        center: GeoPoint,
        radius_m: u32,
        limit: usize,
    ) -> Result<Vec<NearbyRider>, ProjectionError> {
        let (lat_min, lat_max, lng_min, lng_max) = search_box(center, radius_m);
        let candidates: Vec<RiderRow> = self
            .lock()
            .riders
            .values()
            .filter(|r| {
                let (lat, lng) = (r.location.lat(), r.location.lng());
                (lat_min..=lat_max).contains(&lat) && (lng_min..=lng_max).contains(&lng)
            })
            .cloned()
            .collect();
        Ok(nearest_riders(candidates, center, radius_m, limit))
    }

    async fn offers(
        &self,
        rider: RiderId,
        now: Timestamp,
    ) -> Result<Vec<OfferRow>, ProjectionError> {
        let mut open: Vec<OfferRow> = self
            .lock()
            .offers
            .values()
            .flatten()
            .filter(|o| o.rider == rider && o.expires_at > now)
            .cloned()
            .collect();
        open.sort_by(|a, b| (a.offered_at, &a.offer_id).cmp(&(b.offered_at, &b.offer_id)));
        Ok(open)
    }
}

#[cfg(test)]
mod suite {
    use std::sync::Arc;

    use super::MemoryRiderGeo;

    crate::rider_geo_suite!(async { Arc::new(MemoryRiderGeo::new()) });
}
