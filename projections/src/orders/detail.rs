//! `order_detail`: one row per order (the whole [`OrderView`] with its timeline), looked up
//! by order number, and searched in full text over dish names, merchant name, address and
//! order number. Merchant names come from merchant events (`MerchantOpened`,
//! `MerchantRenamed`): the projection keeps them in a small table of its own and the search
//! joins it, so a rename is one row written, not one per order.
//!
//! The read port [`OrderDetailReader`] and its in-memory twin [`MemoryOrderDetail`] (simple
//! token matching in place of PostgreSQL's full text); [`super::PgOrderDetail`] is the
//! PostgreSQL adapter. Both run `crate::testing::order_detail_suite`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use orderflow_domain::merchant::MerchantEvent;
use orderflow_domain::{DomainEvent, MerchantId, OrderNo, Shard};
use orderflow_infra::store::{Position, RecordedEvent};

use super::page::{Cursor, Page};
use super::{fold_orders, key_of, OrderView};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};

/// The projection's name: checkpoint, table and the `{view}` of its row changes (key: the
/// order number).
pub const ORDER_DETAIL: &str = "order_detail";
/// The view name of the merchant-name rows it publishes.
pub const ORDER_DETAIL_MERCHANTS: &str = "order_detail_merchants";

/// Reads of `order_detail`.
#[async_trait]
pub trait OrderDetailReader: Send + Sync + 'static {
    async fn get(&self, order_no: &OrderNo) -> Result<Option<OrderView>, ProjectionError>;

    /// Orders matching every word of `text`, newest first, below `after`.
    async fn search(
        &self,
        text: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, ProjectionError>;
}

/// A merchant event that names a merchant: `(merchant, name)`.
pub(crate) fn merchant_name(event: &RecordedEvent) -> Option<(MerchantId, String)> {
    if event.stream.category() != "merchant" {
        return None;
    }
    let merchant = MerchantId::parse(event.stream.id()).ok()?;
    match MerchantEvent::decode(&event.event_type, event.event_version, &event.payload) {
        Ok(MerchantEvent::Opened(e)) => Some((merchant, e.name.as_str().to_owned())),
        Ok(MerchantEvent::Renamed(e)) => Some((merchant, e.name.as_str().to_owned())),
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, stream = %event.stream, "order_detail skips an undecodable merchant event");
            None
        }
    }
}

/// Lower-case words of a text: what the memory twin matches on.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

#[derive(Default)]
struct DetailState {
    checkpoints: HashMap<Shard, Position>,
    orders: HashMap<String, OrderView>,
    merchants: HashMap<MerchantId, String>,
}

/// `order_detail` in memory: the embedded mode and tests.
#[derive(Default)]
pub struct MemoryOrderDetail {
    /// A std Mutex: a batch is applied in one critical section with no await inside, which
    /// is what makes rows and checkpoint move together.
    state: Mutex<DetailState>,
}

impl MemoryOrderDetail {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DetailState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ProjectionModel for MemoryOrderDetail {
    fn name(&self) -> &'static str {
        ORDER_DETAIL
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        Ok(self.lock().checkpoints.clone())
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        let mut state = self.lock();
        let saved = state.checkpoints.get(&shard).copied().unwrap_or_default();
        let Some((fresh, last)) = crate::model::unapplied(events, saved) else {
            return Ok(BatchOutcome::default());
        };
        let mut changes = Vec::new();
        for (key, position) in fold_orders(&mut state.orders, &fresh, ORDER_DETAIL) {
            changes.push(RowChange {
                view: ORDER_DETAIL,
                row: RowJson::encode(&state.orders[&key]).ok(),
                key,
                shard,
                position,
            });
        }
        for event in &fresh {
            if let Some((merchant, name)) = merchant_name(event) {
                changes.push(merchant_change(shard, event.position, merchant, &name));
                state.merchants.insert(merchant, name);
            }
        }
        state.checkpoints.insert(shard, last);
        Ok(BatchOutcome { changes })
    }
}

pub(crate) fn merchant_change(
    shard: Shard,
    position: Position,
    merchant: MerchantId,
    name: &str,
) -> RowChange {
    RowChange {
        view: ORDER_DETAIL_MERCHANTS,
        key: merchant.get().to_string(),
        shard,
        position,
        row: RowJson::encode(&serde_json::json!({ "merchant_id": merchant.get(), "name": name }))
            .ok(),
    }
}

#[async_trait]
impl OrderDetailReader for MemoryOrderDetail {
    async fn get(&self, order_no: &OrderNo) -> Result<Option<OrderView>, ProjectionError> {
        Ok(self.lock().orders.get(&key_of(order_no)).cloned())
    }

    async fn search(
        &self,
        text: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, ProjectionError> {
        let wanted: Vec<String> = words(text).collect();
        if wanted.is_empty() {
            return Ok(Page::default());
        }
        let state = self.lock();
        let mut hits: Vec<&OrderView> = state
            .orders
            .values()
            .filter(|v| after.is_none_or(|c| c.is_before(v)))
            .filter(|v| {
                let mut have: Vec<String> = words(&v.search_text()).collect();
                if let Some(name) = state.merchants.get(&v.merchant) {
                    have.extend(words(name));
                }
                wanted.iter().all(|w| have.contains(w))
            })
            .collect();
        hits.sort_by(|a, b| (b.created_at, &b.order_no).cmp(&(a.created_at, &a.order_no)));
        hits.truncate(limit + 1);
        Ok(Page::from_rows(hits.into_iter().cloned().collect(), limit))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryOrderDetail;

    crate::order_detail_suite!(async { Arc::new(MemoryOrderDetail::new()) });
}
