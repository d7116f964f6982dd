//! The stock views in PostgreSQL (migration 0005): `stock_ledger` and `stock_reservation`.
//!
//! A batch is one transaction, as for the order views: lock the checkpoint row, drop what it
//! covers, load the touched ledger and reservation rows, fold, upsert each changed row once,
//! move the checkpoint. The table's CHECK re-states the ledger identity, so a row breaking
//! it fails the batch (retried, logged) instead of being served.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use futures::future::try_join_all;
use orderflow_domain::sku::ReservationState;
use orderflow_domain::{MerchantId, Shard, SkuId};
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use super::ledger::{row_changes, ReservationCursor, ReservationPage, StockReader};
use super::{
    fold_stock, state_name, touched, ReservationRow, StockChanges, StockRow, STOCK_LEDGER,
};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange};
use crate::pg::{apply_alone, from_doc, load_checkpoints, to_doc, PgProjection, ShardEvents};

#[derive(Clone)]
pub struct PgStockLedger {
    pool: Pool,
}

impl PgStockLedger {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(pool: Pool) -> Self {
        PgStockLedger { pool }
    }
}

#[async_trait]
impl ProjectionModel for PgStockLedger {
    fn name(&self) -> &'static str {
        STOCK_LEDGER
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        load_checkpoints(&self.pool, STOCK_LEDGER).await
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        apply_alone(&self.pool, self, shard, events).await
    }
}

#[async_trait]
impl PgProjection for PgStockLedger {
    fn reads(&self) -> &'static [&'static str] {
        &["sku"]
    }

    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError> {
        let all: Vec<&RecordedEvent> = ShardEvents::all(batch).collect();
        let (skus, pairs) = touched(&all);
        let mut ledgers: HashMap<String, StockRow> = HashMap::with_capacity(skus.len());
        let mut reservations: HashMap<(String, String), ReservationRow> = HashMap::new();
        if !skus.is_empty() {
            let load = tx
                .prepare_cached("SELECT sku_id, doc FROM stock_ledger WHERE sku_id = ANY($1)")
                .await?;
            let rows = tx.query(&load, &[&skus]).await?;
            for row in rows {
                ledgers.insert(row.get(0), from_doc(STOCK_LEDGER, row.get(1))?);
            }
        }
        if !pairs.is_empty() {
            let (pair_skus, orders): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
            let load = tx
                .prepare_cached(
                    "SELECT r.sku_id, r.order_no, r.doc FROM stock_reservation r
                     JOIN unnest($1::text[], $2::text[]) AS t(sku_id, order_no)
                       ON r.sku_id = t.sku_id AND r.order_no = t.order_no",
                )
                .await?;
            let rows = tx.query(&load, &[&pair_skus, &orders]).await?;
            for row in rows {
                reservations.insert(
                    (row.get(0), row.get(1)),
                    from_doc(STOCK_LEDGER, row.get(2))?,
                );
            }
        }
        // Shard by shard, as their transactions would have; a sku's events are all in its
        // own shard, so each row is written once.
        let mut changes = StockChanges::default();
        let mut row_changed = Vec::new();
        for part in batch {
            let folded = fold_stock(&mut ledgers, &mut reservations, &part.events);
            row_changed.extend(row_changes(part.shard, &ledgers, &reservations, &folded));
            changes.ledgers.extend(folded.ledgers);
            changes.reservations.extend(folded.reservations);
        }
        let upsert_ledger = tx
            .prepare_cached(
                "INSERT INTO stock_ledger (sku_id, merchant_id, listed, added, available,
                    reserved, deducted, released, version, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (sku_id) DO UPDATE SET
                    merchant_id = EXCLUDED.merchant_id, listed = EXCLUDED.listed,
                    added = EXCLUDED.added, available = EXCLUDED.available,
                    reserved = EXCLUDED.reserved, deducted = EXCLUDED.deducted,
                    released = EXCLUDED.released, version = EXCLUDED.version,
                    doc = EXCLUDED.doc",
            )
            .await?;
        let mut ledger_rows = Vec::with_capacity(changes.ledgers.len());
        for (key, _) in &changes.ledgers {
            let r = &ledgers[key];
            ledger_rows.push((
                r.sku.as_str(),
                r.merchant.get(),
                r.listed,
                r.added,
                r.available,
                r.reserved,
                r.deducted,
                r.released,
                i64::try_from(r.version).unwrap_or(i64::MAX),
                to_doc(STOCK_LEDGER, r)?,
            ));
        }
        let n = changes.reservations.len();
        let (mut r_sku, mut r_order, mut r_quantity) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut r_state, mut r_expires, mut r_doc) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (pair, _) in &changes.reservations {
            let r = &reservations[pair];
            r_sku.push(r.sku.as_str());
            r_order.push(r.order_no.as_str());
            r_quantity.push(r.quantity);
            r_state.push(state_name(r.state));
            r_expires.push(r.expires_at.as_millis());
            r_doc.push(to_doc(STOCK_LEDGER, r)?);
        }
        let ledger_params: Vec<[&(dyn ToSql + Sync); 10]> = ledger_rows
            .iter()
            .map(|r| -> [&(dyn ToSql + Sync); 10] {
                [&r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &r.7, &r.8, &r.9]
            })
            .collect();
        // Pipelined on the one connection: one round trip for the ledgers of the batch.
        try_join_all(ledger_params.iter().map(|p| tx.execute(&upsert_ledger, p))).await?;
        if !r_sku.is_empty() {
            // A flash sale's batch is hundreds of reservations of one sku: one statement
            // (columns as arrays, unnested server-side) instead of one per row.
            let upsert_reservations = tx
                .prepare_cached(
                    "INSERT INTO stock_reservation (sku_id, order_no, quantity, state, expires_ms, doc)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
                                          $5::bigint[], $6::jsonb[])
                     ON CONFLICT (sku_id, order_no) DO UPDATE SET
                        quantity = EXCLUDED.quantity, state = EXCLUDED.state,
                        expires_ms = EXCLUDED.expires_ms, doc = EXCLUDED.doc",
                )
                .await?;
            tx.execute(
                &upsert_reservations,
                &[&r_sku, &r_order, &r_quantity, &r_state, &r_expires, &r_doc],
            )
            .await?;
        }
        Ok(row_changed)
    }
}

#[async_trait]
impl StockReader for PgStockLedger {
    async fn stock(&self, sku: &SkuId) -> Result<Option<StockRow>, ProjectionError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT doc FROM stock_ledger WHERE sku_id = $1",
                &[&sku.as_str()],
            )
            .await?;
        row.map(|r| from_doc(STOCK_LEDGER, r.get(0))).transpose()
    }

    async fn merchant_stock(&self, merchant: MerchantId) -> Result<Vec<StockRow>, ProjectionError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT doc FROM stock_ledger WHERE merchant_id = $1 ORDER BY sku_id",
                &[&merchant.get()],
            )
            .await?;
        rows.into_iter()
            .map(|r| from_doc(STOCK_LEDGER, r.get(0)))
            .collect()
    }

    async fn reservations(
        &self,
        sku: &SkuId,
        state: Option<ReservationState>,
        after: Option<&ReservationCursor>,
        limit: usize,
    ) -> Result<ReservationPage, ProjectionError> {
        let client = self.pool.get().await?;
        let state = state.map(state_name);
        let after = after.map(|c| c.order_no.to_string());
        let rows = client
            .query(
                "SELECT doc FROM stock_reservation
                 WHERE sku_id = $1
                   AND ($2::text IS NULL OR state = $2)
                   AND ($3::text IS NULL OR order_no > $3)
                 ORDER BY order_no
                 LIMIT $4",
                &[&sku.as_str(), &state, &after, &((limit + 1) as i64)],
            )
            .await?;
        let rows = rows
            .into_iter()
            .map(|r| from_doc(STOCK_LEDGER, r.get(0)))
            .collect::<Result<Vec<ReservationRow>, _>>()?;
        Ok(ReservationPage::from_rows(rows, limit))
    }
}
