//! `buyer_order` and `seller_order`: every order under its owner (the buyer, or the merchant
//! who sells it), listed newest first with a status filter and stable paging.
//!
//! One implementation serves both, told apart by [`ListSide`]: the side decides the
//! projection's name, table and whose id keys a row. The read port is [`OrderListReader`];
//! [`MemoryOrderList`] is its in-memory twin and [`super::PgOrderList`] the PostgreSQL
//! adapter (partitioned by owner id % 32). Both run `crate::testing::order_list_suite`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::{OrderNo, Shard, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};

use super::page::{Cursor, Owner, Page};
use super::{fold_orders, OrderView};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};

pub const BUYER_ORDER: &str = "buyer_order";
pub const SELLER_ORDER: &str = "seller_order";

/// Whose list: the buyer's orders, or the merchant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListSide {
    Buyer,
    Seller,
}

impl ListSide {
    /// The projection's name, which is also its table.
    pub fn name(self) -> &'static str {
        match self {
            ListSide::Buyer => BUYER_ORDER,
            ListSide::Seller => SELLER_ORDER,
        }
    }

    /// The owner of an order on this side.
    pub fn owner(self, view: &OrderView) -> Owner {
        match self {
            ListSide::Buyer => Owner::Buyer(view.buyer),
            ListSide::Seller => Owner::Merchant(view.merchant),
        }
    }

    /// Whether `owner` is of this side (a buyer's list holds no merchant).
    pub fn holds(self, owner: Owner) -> bool {
        matches!(
            (self, owner),
            (ListSide::Buyer, Owner::Buyer(_)) | (ListSide::Seller, Owner::Merchant(_))
        )
    }
}

/// Reads of one order list.
#[async_trait]
pub trait OrderListReader: Send + Sync + 'static {
    fn side(&self) -> ListSide;

    /// `owner`'s orders, newest first, below `after`, with a status in `statuses` (empty:
    /// any). An owner of the other side has no orders here.
    async fn list(
        &self,
        owner: Owner,
        statuses: &[OrderStatus],
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, ProjectionError>;
}

#[derive(Default)]
struct ListState {
    checkpoints: HashMap<Shard, Position>,
    views: HashMap<String, OrderView>,
    /// Per owner, its orders by (created_at, order_no): newest-first is a reverse walk.
    by_owner: HashMap<Owner, BTreeSet<(Timestamp, OrderNo)>>,
}

/// An order list in memory: the embedded mode and tests.
pub struct MemoryOrderList {
    side: ListSide,
    /// A std Mutex: one critical section per batch, no await inside (rows and checkpoint
    /// move together).
    state: Mutex<ListState>,
}

impl MemoryOrderList {
    pub fn new(side: ListSide) -> Self {
        MemoryOrderList {
            side,
            state: Mutex::new(ListState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ListState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ProjectionModel for MemoryOrderList {
    fn name(&self) -> &'static str {
        self.side.name()
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
        let mut changes = Vec::new();
        for (key, position) in fold_orders(&mut state.views, &fresh, self.side.name()) {
            let view = &state.views[&key];
            // The owner and creation time never change, so inserting again is a no-op.
            state
                .by_owner
                .entry(self.side.owner(view))
                .or_default()
                .insert((view.created_at, view.order_no.clone()));
            changes.push(RowChange {
                view: self.side.name(),
                row: RowJson::encode(view).ok(),
                key,
                shard,
                position,
            });
        }
        state.checkpoints.insert(shard, last);
        Ok(BatchOutcome { changes })
    }
}

#[async_trait]
impl OrderListReader for MemoryOrderList {
    fn side(&self) -> ListSide {
        self.side
    }

    async fn list(
        &self,
        owner: Owner,
        statuses: &[OrderStatus],
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, ProjectionError> {
        if !self.side.holds(owner) {
            return Ok(Page::default());
        }
        let state = self.lock();
        let Some(keys) = state.by_owner.get(&owner) else {
            return Ok(Page::default());
        };
        let rows: Vec<OrderView> = keys
            .iter()
            .rev()
            .filter(|(at, no)| after.is_none_or(|c| (*at, no) < (c.created_at, &c.order_no)))
            .filter_map(|(_, no)| state.views.get(no.as_str()))
            .filter(|v| statuses.is_empty() || statuses.contains(&v.status))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_rows(rows, limit))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{ListSide, MemoryOrderList};

    crate::order_list_suite!(|side: ListSide| async move { Arc::new(MemoryOrderList::new(side)) });
}
