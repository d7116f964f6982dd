//! `order_detail` in PostgreSQL (tables of migration 0004).
//!
//! A batch is one transaction: lock the shard's checkpoint row, drop the events at or below
//! it, load the views the rest touch in one query, fold them in memory, write each changed
//! view once (pipelined upserts), upsert merchant names, move the checkpoint, commit.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures::future::try_join_all;
use orderflow_domain::{OrderNo, Shard};
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use super::columns::DetailColumns;
use super::detail::{merchant_change, merchant_name, OrderDetailReader, ORDER_DETAIL};
use super::page::{Cursor, Page};
use super::{fold_orders, touched_orders, OrderView};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange};
use crate::pg::{doc_of, from_doc, load_checkpoints, lock_checkpoint, save_checkpoint, to_doc};

#[derive(Clone)]
pub struct PgOrderDetail {
    pool: Pool,
}

impl PgOrderDetail {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(pool: Pool) -> Self {
        PgOrderDetail { pool }
    }
}

#[async_trait]
impl ProjectionModel for PgOrderDetail {
    fn name(&self) -> &'static str {
        ORDER_DETAIL
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        load_checkpoints(&self.pool, ORDER_DETAIL).await
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let saved = lock_checkpoint(&tx, ORDER_DETAIL, shard).await?;
        let Some((fresh, last)) = crate::model::unapplied(events, saved) else {
            return Ok(BatchOutcome::default());
        };

        let touched = touched_orders(&fresh);
        let mut views: HashMap<String, OrderView> = HashMap::with_capacity(touched.len());
        if !touched.is_empty() {
            for row in tx
                .query(
                    "SELECT order_no, doc FROM order_detail WHERE order_no = ANY($1)",
                    &[&touched],
                )
                .await?
            {
                views.insert(row.get(0), from_doc(ORDER_DETAIL, row.get(1))?);
            }
        }
        let changed = fold_orders(&mut views, &fresh, ORDER_DETAIL);
        let upsert = tx
            .prepare_cached(
                "INSERT INTO order_detail (order_no, buyer_id, merchant_id, status, created_ms,
                                           updated_ms, version, doc, search)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_tsvector('simple', $9))
                 ON CONFLICT (order_no) DO UPDATE SET
                    status = EXCLUDED.status, updated_ms = EXCLUDED.updated_ms,
                    version = EXCLUDED.version, doc = EXCLUDED.doc, search = EXCLUDED.search",
            )
            .await?;
        let mut changes = Vec::with_capacity(changed.len());
        let mut rows = Vec::with_capacity(changed.len());
        for (key, position) in changed {
            let view = &views[&key];
            let doc = to_doc(ORDER_DETAIL, view)?;
            rows.push((DetailColumns::of(view), doc.clone()));
            changes.push(RowChange {
                view: ORDER_DETAIL,
                key,
                shard,
                position,
                row: Some(doc),
            });
        }
        let params: Vec<[&(dyn ToSql + Sync); 9]> = rows
            .iter()
            .map(|(c, doc)| -> [&(dyn ToSql + Sync); 9] {
                [
                    &c.order_no,
                    &c.buyer_id,
                    &c.merchant_id,
                    &c.status,
                    &c.created_ms,
                    &c.updated_ms,
                    &c.version,
                    doc,
                    &c.search_text,
                ]
            })
            .collect();
        // Pipelined on the one connection: one round trip for the whole batch.
        try_join_all(params.iter().map(|p| tx.execute(&upsert, p))).await?;

        for event in &fresh {
            if let Some((merchant, name)) = merchant_name(event) {
                tx.execute(
                    "INSERT INTO order_detail_merchants (merchant_id, name, search)
                     VALUES ($1, $2, to_tsvector('simple', $2))
                     ON CONFLICT (merchant_id) DO UPDATE SET name = $2, search = EXCLUDED.search",
                    &[&merchant.get(), &name],
                )
                .await?;
                changes.push(merchant_change(shard, event.position, merchant, &name));
            }
        }
        save_checkpoint(&tx, ORDER_DETAIL, shard, last).await?;
        tx.commit().await?;
        Ok(BatchOutcome { changes })
    }
}

#[async_trait]
impl OrderDetailReader for PgOrderDetail {
    async fn get(&self, order_no: &OrderNo) -> Result<Option<OrderView>, ProjectionError> {
        let client = self.pool.get().await?;
        // Prepared once per connection: one round trip per read, no parse.
        let statement = client
            .prepare_cached("SELECT doc FROM order_detail WHERE order_no = $1")
            .await?;
        let row = client.query_opt(&statement, &[&order_no.as_str()]).await?;
        row.map(|r| doc_of(ORDER_DETAIL, &r, 0)).transpose()
    }

    async fn search(
        &self,
        text: &str,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, ProjectionError> {
        // Every word must match, in the order's own text or its merchant's current name (the
        // memory twin's rule). The OR of the words finds candidates through the GIN indexes;
        // the AND over the order's and merchant's vectors together keeps the exact ones.
        let (has_after, after_ms, after_no) = match after {
            Some(c) => (
                true,
                c.created_at.as_millis(),
                c.order_no.as_str().to_owned(),
            ),
            None => (false, 0, String::new()),
        };
        if super::detail::words(text).next().is_none() {
            return Ok(Page::default());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH q AS (
                    SELECT plainto_tsquery('simple', $1) AS every_word,
                           array_to_string(ARRAY(
                               SELECT quote_literal(w)
                               FROM unnest(tsvector_to_array(to_tsvector('simple', $1))) AS w
                           ), ' | ')::tsquery AS any_word
                 )
                 SELECT d.doc
                 FROM q, order_detail d
                 LEFT JOIN order_detail_merchants m ON m.merchant_id = d.merchant_id
                 WHERE numnode(q.every_word) > 0
                   AND (d.search @@ q.any_word
                        OR d.merchant_id IN (SELECT merchant_id FROM order_detail_merchants
                                             WHERE search @@ q.any_word))
                   AND (d.search || coalesce(m.search, ''::tsvector)) @@ q.every_word
                   AND (NOT $2 OR (d.created_ms, d.order_no) < ($3, $4))
                 ORDER BY d.created_ms DESC, d.order_no DESC
                 LIMIT $5",
                &[
                    &text,
                    &has_after,
                    &after_ms,
                    &after_no,
                    &((limit + 1) as i64),
                ],
            )
            .await?;
        let views = rows
            .iter()
            .map(|r| doc_of(ORDER_DETAIL, r, 0))
            .collect::<Result<Vec<OrderView>, _>>()?;
        Ok(Page::from_rows(views, limit))
    }
}
