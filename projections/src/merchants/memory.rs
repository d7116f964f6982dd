//! The merchant catalog in memory: the embedded mode and tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use orderflow_domain::{GeoPoint, MerchantId, Shard};
use orderflow_infra::store::{Position, RecordedEvent};

use super::{
    fold_merchants, nearest_page, search_box, touched_merchants, MerchantReader, MerchantRow,
    NearbyCursor, NearbyPage, MERCHANT_CATALOG,
};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};

#[derive(Default)]
struct CatalogState {
    checkpoints: HashMap<Shard, Position>,
    rows: HashMap<i64, MerchantRow>,
}

#[derive(Default)]
pub struct MemoryMerchantCatalog {
    /// A std Mutex: one critical section per batch, no await inside.
    state: Mutex<CatalogState>,
}

impl MemoryMerchantCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CatalogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ProjectionModel for MemoryMerchantCatalog {
    fn name(&self) -> &'static str {
        MERCHANT_CATALOG
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
        let mut rows: HashMap<i64, MerchantRow> = touched_merchants(&fresh)
            .into_iter()
            .filter_map(|id| state.rows.get(&id).map(|r| (id, r.clone())))
            .collect();
        let mut changes = Vec::new();
        for (id, position) in fold_merchants(&mut rows, &fresh) {
            let row = rows[&id].clone();
            changes.push(RowChange {
                view: MERCHANT_CATALOG,
                key: id.to_string(),
                shard,
                position,
                row: RowJson::encode(&row).ok(),
            });
            state.rows.insert(id, row);
        }
        state.checkpoints.insert(shard, last);
        Ok(BatchOutcome { changes })
    }
}

#[async_trait]
impl MerchantReader for MemoryMerchantCatalog {
    async fn get(&self, merchant: MerchantId) -> Result<Option<MerchantRow>, ProjectionError> {
        Ok(self.lock().rows.get(&merchant.get()).cloned())
    }

    async fn nearby(
        &self,
        center: GeoPoint,
        radius_m: u32,
        after: Option<NearbyCursor>,
        limit: usize,
    ) -> Result<NearbyPage, ProjectionError> {
        let (lat_min, lat_max, lng_min, lng_max) = search_box(center, radius_m);
        let candidates: Vec<MerchantRow> = self
            .lock()
            .rows
            .values()
            .filter(|r| {
                let (lat, lng) = (r.location.lat(), r.location.lng());
                (lat_min..=lat_max).contains(&lat) && (lng_min..=lng_max).contains(&lng)
            })
            .cloned()
            .collect();
        Ok(nearest_page(candidates, center, radius_m, after, limit))
    }
}

#[cfg(test)]
mod suite {
    use std::sync::Arc;

    use super::MemoryMerchantCatalog;

    crate::merchant_catalog_suite!(async { Arc::new(MemoryMerchantCatalog::new()) });
}
