//! The read port of the stock views, [`StockReader`], and its in-memory twin
//! [`MemoryStockLedger`] (the embedded mode and tests). [`super::PgStockLedger`] is the
//! PostgreSQL adapter; both run `crate::testing::stock_ledger_suite`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use orderflow_domain::sku::ReservationState;
use orderflow_domain::{MerchantId, OrderNo, Shard, SkuId};
use orderflow_infra::store::{Position, RecordedEvent};

use super::{fold_stock, ReservationRow, StockRow, STOCK_LEDGER, STOCK_RESERVATION};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};
use crate::orders::InvalidPageToken;

/// Where the next page of reservations starts: strictly after this order number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationCursor {
    pub order_no: OrderNo,
}

impl ReservationCursor {
    /// The empty string (proto3's default) is the first page; otherwise `r1.{order_no}`.
    pub fn parse_token(token: &str) -> Result<Option<Self>, InvalidPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        let no = token.strip_prefix("r1.").ok_or(InvalidPageToken)?;
        let order_no = OrderNo::parse(no).map_err(|_| InvalidPageToken)?;
        Ok(Some(ReservationCursor { order_no }))
    }

    pub fn token(&self) -> String {
        format!("r1.{}", self.order_no)
    }
}

/// One page of a sku's reservations, by order number (oldest order first: order numbers
/// start with their creation time), and where the next one starts (`None`: last page).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReservationPage {
    pub reservations: Vec<ReservationRow>,
    pub next: Option<ReservationCursor>,
}

impl ReservationPage {
    /// A page from up to `limit + 1` rows in order: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<ReservationRow>, limit: usize) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last())
            .flatten()
            .map(|r| ReservationCursor {
                order_no: r.order_no.clone(),
            });
        ReservationPage {
            reservations: rows,
            next,
        }
    }
}

/// Reads of the stock views.
#[async_trait]
pub trait StockReader: Send + Sync + 'static {
    /// One sku's ledger row (`None`: never listed).
    async fn stock(&self, sku: &SkuId) -> Result<Option<StockRow>, ProjectionError>;

    /// Every sku of `merchant`, by sku id (a menu).
    async fn merchant_stock(&self, merchant: MerchantId) -> Result<Vec<StockRow>, ProjectionError>;

    /// `sku`'s reservations in `state` (`None`: any), by order number, after `after`.
    async fn reservations(
        &self,
        sku: &SkuId,
        state: Option<ReservationState>,
        after: Option<&ReservationCursor>,
        limit: usize,
    ) -> Result<ReservationPage, ProjectionError>;
}

#[derive(Default)]
struct StockState {
    checkpoints: HashMap<Shard, Position>,
    ledgers: HashMap<String, StockRow>,
    /// By (sku, order_no): a sku's reservations are one ordered range.
    reservations: BTreeMap<(String, String), ReservationRow>,
}

/// The stock views in memory.
#[derive(Default)]
pub struct MemoryStockLedger {
    /// A std Mutex: one critical section per batch, no await inside (rows and checkpoint
    /// move together).
    state: Mutex<StockState>,
}

impl MemoryStockLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The row changes of a batch, ledger rows first.
pub(crate) fn row_changes(
    shard: Shard,
    ledgers: &HashMap<String, StockRow>,
    reservations: &HashMap<(String, String), ReservationRow>,
    changes: &super::StockChanges,
) -> Vec<RowChange> {
    let ledger_rows = changes.ledgers.iter().map(|(key, position)| RowChange {
        view: STOCK_LEDGER,
        key: key.clone(),
        shard,
        position: *position,
        row: RowJson::encode(&ledgers[key]).ok(),
    });
    let reservation_rows = changes.reservations.iter().map(|(pair, position)| {
        let row = &reservations[pair];
        RowChange {
            view: STOCK_RESERVATION,
            key: row.key(),
            shard,
            position: *position,
            row: RowJson::encode(row).ok(),
        }
    });
    ledger_rows.chain(reservation_rows).collect()
}

#[async_trait]
impl ProjectionModel for MemoryStockLedger {
    fn name(&self) -> &'static str {
        STOCK_LEDGER
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
        // The fold works on maps of what the batch touches, as in PostgreSQL.
        let (skus, pairs) = super::touched(&fresh);
        let mut ledgers: HashMap<String, StockRow> = skus
            .iter()
            .filter_map(|s| state.ledgers.get(s).map(|r| (s.clone(), r.clone())))
            .collect();
        let mut reservations: HashMap<(String, String), ReservationRow> = pairs
            .iter()
            .filter_map(|p| state.reservations.get(p).map(|r| (p.clone(), r.clone())))
            .collect();
        let changes = fold_stock(&mut ledgers, &mut reservations, &fresh);
        let out = row_changes(shard, &ledgers, &reservations, &changes);
        for (key, _) in changes.ledgers {
            state.ledgers.insert(key.clone(), ledgers[&key].clone());
        }
        for (pair, _) in changes.reservations {
            let row = reservations[&pair].clone();
            state.reservations.insert(pair, row);
        }
        state.checkpoints.insert(shard, last);
        Ok(BatchOutcome { changes: out })
    }
}

#[async_trait]
impl StockReader for MemoryStockLedger {
    async fn stock(&self, sku: &SkuId) -> Result<Option<StockRow>, ProjectionError> {
        Ok(self.lock().ledgers.get(sku.as_str()).cloned())
    }

    async fn merchant_stock(&self, merchant: MerchantId) -> Result<Vec<StockRow>, ProjectionError> {
        let mut rows: Vec<StockRow> = self
            .lock()
            .ledgers
            .values()
            .filter(|r| r.merchant == merchant)
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.sku.as_str().cmp(b.sku.as_str()));
        Ok(rows)
    }

    async fn reservations(
        &self,
        sku: &SkuId,
        state: Option<ReservationState>,
        after: Option<&ReservationCursor>,
        limit: usize,
    ) -> Result<ReservationPage, ProjectionError> {
        let guard = self.lock();
        let from = (
            sku.as_str().to_owned(),
            after.map(|c| c.order_no.to_string()).unwrap_or_default(),
        );
        let rows: Vec<ReservationRow> = guard
            .reservations
            .range(from..)
            .take_while(|((s, _), _)| s == sku.as_str())
            .filter(|((_, no), _)| after.is_none_or(|c| no.as_str() > c.order_no.as_str()))
            .map(|(_, r)| r)
            .filter(|r| state.is_none_or(|s| r.state == s))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(ReservationPage::from_rows(rows, limit))
    }
}

#[cfg(test)]
mod suite {
    use std::sync::Arc;

    use super::MemoryStockLedger;

    crate::stock_ledger_suite!(async { Arc::new(MemoryStockLedger::new()) });
}
