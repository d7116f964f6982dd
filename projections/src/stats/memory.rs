//! The hourly statistics in memory: the embedded mode and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use orderflow_domain::{MerchantId, Shard, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};

use super::{fold_stats, touched_orders, HourlyStats, StatsReader, MERCHANT_HOURLY};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};

#[derive(Default)]
struct StatsState {
    checkpoints: HashMap<Shard, Position>,
    merchants: HashMap<String, MerchantId>,
    /// Each shard's partial, by (merchant id, hour ms, shard), as the PostgreSQL table keeps
    /// them: a merchant's hours are one ordered range, an hour's partials adjacent.
    hours: BTreeMap<(i64, i64, u8), HourlyStats>,
}

#[derive(Default)]
pub struct MemoryMerchantHourly {
    /// A std Mutex: one critical section per batch, no await inside.
    state: Mutex<StatsState>,
}

impl MemoryMerchantHourly {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ProjectionModel for MemoryMerchantHourly {
    fn name(&self) -> &'static str {
        MERCHANT_HOURLY
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
        let mut merchants: HashMap<String, MerchantId> = touched_orders(&fresh)
            .into_iter()
            .filter_map(|no| state.merchants.get(&no).map(|m| (no, *m)))
            .collect();
        let deltas = fold_stats(&mut merchants, &fresh);
        for (no, merchant) in deltas.new_orders {
            state.merchants.insert(no, merchant);
        }
        let mut changes = Vec::with_capacity(deltas.hours.len());
        for (delta, position) in deltas.hours {
            let key = (delta.merchant.get(), delta.hour.as_millis(), shard.index());
            let row = state
                .hours
                .entry(key)
                .or_insert_with(|| HourlyStats::empty(delta.merchant, delta.hour));
            row.add(&delta);
            changes.push(RowChange {
                view: MERCHANT_HOURLY,
                key: row.partial_key(shard),
                shard,
                position,
                row: RowJson::encode(row).ok(),
            });
        }
        state.checkpoints.insert(shard, last);
        Ok(BatchOutcome { changes })
    }
}

#[async_trait]
impl StatsReader for MemoryMerchantHourly {
    async fn hours(
        &self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyStats>, ProjectionError> {
        let id = merchant.get();
        let state = self.lock();
        let mut sums: Vec<HourlyStats> = Vec::new();
        for partial in state
            .hours
            .range((id, from.as_millis(), 0)..(id, to.as_millis(), 0))
            .map(|(_, h)| h)
        {
            match sums.last_mut() {
                Some(sum) if sum.hour == partial.hour => sum.add(partial),
                _ => sums.push(*partial),
            }
        }
        Ok(sums)
    }
}

#[cfg(test)]
mod suite {
    use std::sync::Arc;

    use super::MemoryMerchantHourly;

    crate::merchant_hourly_suite!(async { Arc::new(MemoryMerchantHourly::new()) });
}
