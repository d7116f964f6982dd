//! `buyer_order` / `seller_order` in PostgreSQL (migration 0004): tables partitioned by
//! `part` = owner id % 32; a list query names its partition, so it reads one.
//!
//! A batch is one transaction, as for `order_detail`: lock the checkpoint row, drop what it
//! covers, load the touched views, fold, upsert each changed one once, move the checkpoint.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures::future::try_join_all;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use super::columns::ListColumns;
use super::lists::{ListSide, OrderListReader};
use super::page::{Cursor, Owner, Page};
use super::{fold_orders, touched_orders, OrderView};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange};
use crate::pg::{from_doc, load_checkpoints, lock_checkpoint, save_checkpoint, to_doc};

#[derive(Clone)]
pub struct PgOrderList {
    side: ListSide,
    pool: Pool,
}

impl PgOrderList {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(side: ListSide, pool: Pool) -> Self {
        PgOrderList { side, pool }
    }

    fn table(&self) -> &'static str {
        // The projection's name is its table: a constant, never user input.
        self.side.name()
    }
}

#[async_trait]
impl ProjectionModel for PgOrderList {
    fn name(&self) -> &'static str {
        self.side.name()
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        load_checkpoints(&self.pool, self.name()).await
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        let name = self.name();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let saved = lock_checkpoint(&tx, name, shard).await?;
        let Some((fresh, last)) = crate::model::unapplied(events, saved) else {
            return Ok(BatchOutcome::default());
        };
        let touched = touched_orders(&fresh);
        let mut views: HashMap<String, OrderView> = HashMap::with_capacity(touched.len());
        if !touched.is_empty() {
            let load = format!(
                "SELECT order_no, doc FROM {} WHERE order_no = ANY($1)",
                self.table()
            );
            for row in tx.query(&load, &[&touched]).await? {
                views.insert(row.get(0), from_doc(name, row.get(1))?);
            }
        }
        let changed = fold_orders(&mut views, &fresh, name);
        let upsert = tx
            .prepare_cached(&format!(
                "INSERT INTO {} (part, owner_id, order_no, status, created_ms, version, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (part, owner_id, order_no) DO UPDATE SET
                    status = EXCLUDED.status, version = EXCLUDED.version, doc = EXCLUDED.doc",
                self.table()
            ))
            .await?;
        let mut rows = Vec::with_capacity(changed.len());
        let mut changes = Vec::with_capacity(changed.len());
        for (key, position) in changed {
            let view = &views[&key];
            let doc = to_doc(name, view)?;
            rows.push((ListColumns::of(self.side, view), doc.clone()));
            changes.push(RowChange {
                view: name,
                key,
                shard,
                position,
                row: Some(doc),
            });
        }
        let params: Vec<[&(dyn ToSql + Sync); 7]> = rows
            .iter()
            .map(|(c, doc)| -> [&(dyn ToSql + Sync); 7] {
                [
                    &c.part,
                    &c.owner_id,
                    &c.order_no,
                    &c.status,
                    &c.created_ms,
                    &c.version,
                    doc,
                ]
            })
            .collect();
        // Pipelined on the one connection: one round trip for the whole batch.
        try_join_all(params.iter().map(|p| tx.execute(&upsert, p))).await?;
        save_checkpoint(&tx, name, shard, last).await?;
        tx.commit().await?;
        Ok(BatchOutcome { changes })
    }
}

#[async_trait]
impl OrderListReader for PgOrderList {
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
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let (has_after, after_ms, after_no) = match after {
            Some(c) => (
                true,
                c.created_at.as_millis(),
                c.order_no.as_str().to_owned(),
            ),
            None => (false, 0, String::new()),
        };
        let query = format!(
            "SELECT doc FROM {}
             WHERE part = $1 AND owner_id = $2
               AND (cardinality($3::text[]) = 0 OR status = ANY($3))
               AND (NOT $4 OR (created_ms, order_no) < ($5, $6))
             ORDER BY created_ms DESC, order_no DESC
             LIMIT $7",
            self.table()
        );
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &query,
                &[
                    &owner.partition(),
                    &owner.id(),
                    &statuses,
                    &has_after,
                    &after_ms,
                    &after_no,
                    &((limit + 1) as i64),
                ],
            )
            .await?;
        let views = rows
            .into_iter()
            .map(|r| from_doc(self.name(), r.get(0)))
            .collect::<Result<Vec<OrderView>, _>>()?;
        Ok(Page::from_rows(views, limit))
    }
}
