//! `order_detail` in PostgreSQL (tables of migration 0004).
//!
//! A batch (one or more shards' events) is one transaction: lock the shards' checkpoint
//! rows, drop the events at or below them, load the views the rest touch in one query, fold
//! them in memory, write each changed view once (one multi-row upsert; the search vector of
//! new orders only), upsert merchant names, move the checkpoints, commit.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use orderflow_domain::{OrderNo, Shard};
use orderflow_infra::store::{Position, RecordedEvent};
use serde_json::value::RawValue;
use tokio_postgres::types::{Json, ToSql};

use super::columns::DetailColumns;
use super::detail::{merchant_change, merchant_name, OrderDetailReader, ORDER_DETAIL};
use super::page::{Cursor, Page};
use super::{fold_orders, stored_orders, OrderView};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange};
use crate::pg::{
    apply_alone, doc_of, load_checkpoints, pool_query_opt, to_row_json, PgProjection, ShardEvents,
    SharedReads,
};

/// `GetOrder`'s lookup (also `IsCreated`'s and `WatchOrder`'s).
const GET: &str = "SELECT doc FROM order_detail WHERE order_no = $1";

#[derive(Clone)]
pub struct PgOrderDetail {
    pool: Pool,
    /// Where [`OrderDetailReader::get`] runs, when not on `pool`. Search stays on `pool`: a
    /// full-text query can take milliseconds, and on a shared connection every lookup
    /// queued behind it would wait that long.
    shared: Option<SharedReads>,
}

impl PgOrderDetail {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(pool: Pool) -> Self {
        PgOrderDetail { pool, shared: None }
    }

    /// Lookups by order number on `shared` (same database) instead of the pool.
    pub fn with_shared_reads(mut self, shared: SharedReads) -> Self {
        self.shared = Some(shared);
        self
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
        apply_alone(&self.pool, self, shard, events).await
    }
}

#[async_trait]
impl PgProjection for PgOrderDetail {
    fn reads(&self) -> &'static [&'static str] {
        &["order", "merchant"]
    }

    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError> {
        let touched: Vec<String> = batch
            .iter()
            .flat_map(|part| stored_orders(&part.events))
            .collect();
        let mut views: HashMap<String, OrderView> = HashMap::with_capacity(touched.len());
        if !touched.is_empty() {
            let load = tx
                .prepare_cached("SELECT order_no, doc FROM order_detail WHERE order_no = ANY($1)")
                .await?;
            for row in tx.query(&load, &[&touched]).await? {
                views.insert(row.get(0), doc_of(ORDER_DETAIL, &row, 1)?);
            }
        }
        // The rows that exist before the batch: their search text cannot have changed.
        let stored: HashSet<String> = views.keys().cloned().collect();
        // An order's events are all in its own shard: each order is folded (and written) once.
        let mut changed = Vec::new();
        for part in batch {
            let folded = fold_orders(&mut views, &part.events, ORDER_DETAIL);
            changed.extend(folded.into_iter().map(|(key, p)| (key, part.shard, p)));
        }
        let mut changes = Vec::with_capacity(changed.len());
        let mut rows = DetailRows::with_capacity(changed.len());
        for (key, shard, position) in changed {
            let view = &views[&key];
            rows.push(DetailColumns::of(view), !stored.contains(&key));
            changes.push(RowChange {
                view: ORDER_DETAIL,
                key,
                shard,
                position,
                row: Some(to_row_json(ORDER_DETAIL, view)?),
            });
        }
        if !rows.order_no.is_empty() {
            // The change messages' documents, borrowed: sent as they are, not copied.
            let docs: Vec<Json<&RawValue>> = changes
                .iter()
                .filter_map(|c| c.row.as_ref().map(|row| Json(row.raw())))
                .collect();
            // One statement for the whole batch (columns as arrays, unnested server-side):
            // PostgreSQL binds, plans and runs one INSERT instead of one per row.
            //
            // The search text (number, dishes, skus, address) comes with `OrderSubmitted`
            // alone, so a stored row keeps its vector: the batch sends no text for it (NULL:
            // `to_tsvector` is strict, so nothing is computed; the empty vector only passes
            // the NOT NULL check, which PostgreSQL makes before it finds the conflict) and the
            // update leaves `search` alone. Only new orders pay for `to_tsvector`. A row that
            // was loaded is still there at the upsert: the shard's transactions take turns on
            // its checkpoint rows.
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO order_detail (order_no, buyer_id, merchant_id, status, created_ms,
                                               updated_ms, version, doc, search)
                     SELECT o, b, m, s, c, u, v, d,
                            coalesce(to_tsvector('simple', t), ''::tsvector)
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                                 $5::bigint[], $6::bigint[], $7::bigint[], $8::json[],
                                 $9::text[]) AS r(o, b, m, s, c, u, v, d, t)
                     ON CONFLICT (order_no) DO UPDATE SET
                        status = EXCLUDED.status, updated_ms = EXCLUDED.updated_ms,
                        version = EXCLUDED.version, doc = EXCLUDED.doc",
                )
                .await?;
            tx.execute(
                &upsert,
                &[
                    &rows.order_no,
                    &rows.buyer,
                    &rows.merchant,
                    &rows.status,
                    &rows.created,
                    &rows.updated,
                    &rows.version,
                    &docs,
                    &rows.search,
                ],
            )
            .await?;
        }

        // Merchant names: the last name of each merchant in the batch, in one statement (an
        // upsert may not touch one row twice); every rename is still a change.
        let mut names: Vec<(i64, String)> = Vec::new();
        for event in ShardEvents::all(batch) {
            if let Some((merchant, name)) = merchant_name(event) {
                changes.push(merchant_change(
                    event.shard,
                    event.position,
                    merchant,
                    &name,
                ));
                match names.iter_mut().find(|(m, _)| *m == merchant.get()) {
                    Some(entry) => entry.1 = name,
                    None => names.push((merchant.get(), name)),
                }
            }
        }
        if !names.is_empty() {
            let (ids, names): (Vec<i64>, Vec<String>) = names.into_iter().unzip();
            tx.execute(
                "INSERT INTO order_detail_merchants (merchant_id, name, search)
                 SELECT m, n, to_tsvector('simple', n) FROM unnest($1::bigint[], $2::text[]) AS r(m, n)
                 ON CONFLICT (merchant_id) DO UPDATE SET name = EXCLUDED.name, search = EXCLUDED.search",
                &[&ids, &names],
            )
            .await?;
        }
        Ok(changes)
    }
}

/// A batch's changed `order_detail` rows, column by column (the upsert's arrays).
struct DetailRows {
    order_no: Vec<String>,
    buyer: Vec<i64>,
    merchant: Vec<i64>,
    status: Vec<&'static str>,
    created: Vec<i64>,
    updated: Vec<i64>,
    version: Vec<i64>,
    /// `None` for a row already stored: its vector stays.
    search: Vec<Option<String>>,
}

impl DetailRows {
    fn push(&mut self, columns: DetailColumns, new: bool) {
        self.order_no.push(columns.order_no);
        self.buyer.push(columns.buyer_id);
        self.merchant.push(columns.merchant_id);
        self.status.push(columns.status);
        self.created.push(columns.created_ms);
        self.updated.push(columns.updated_ms);
        self.version.push(columns.version);
        self.search.push(new.then_some(columns.search_text));
    }

    fn with_capacity(n: usize) -> Self {
        DetailRows {
            order_no: Vec::with_capacity(n),
            buyer: Vec::with_capacity(n),
            merchant: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            updated: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            search: Vec::with_capacity(n),
        }
    }
}

#[async_trait]
impl OrderDetailReader for PgOrderDetail {
    async fn get(&self, order_no: &OrderNo) -> Result<Option<OrderView>, ProjectionError> {
        // Prepared once per connection: one round trip per read, no parse.
        let params: [&(dyn ToSql + Sync); 1] = [&order_no.as_str()];
        let row = match &self.shared {
            Some(shared) => shared.query_opt(GET, &params).await?,
            None => pool_query_opt(&self.pool, GET, &params).await?,
        };
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
