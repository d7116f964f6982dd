//! `buyer_order` / `seller_order` in PostgreSQL (migration 0004): tables partitioned by
//! `part` = owner id % 32; a list query names its partition, so it reads one.
//!
//! A batch is one transaction, as for `order_detail`: lock the checkpoint row, drop what it
//! covers, load the touched views, fold, upsert the changed ones in one statement, move the
//! checkpoint.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};

use super::lists::{ListSide, OrderListReader};
use super::page::{Cursor, Owner, Page};
use super::{fold_orders, touched_orders, OrderView};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange};
use crate::pg::{
    from_doc, load_checkpoints, lock_checkpoint, save_checkpoint, skip_batch, to_doc, touches,
};

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
        // A batch of streams this projection does not read: only the checkpoint moves.
        if !touches(events, &["order"]) {
            skip_batch(&self.pool, name, shard, events).await?;
            return Ok(BatchOutcome::default());
        }
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
            let load = tx.prepare_cached(&load).await?;
            for row in tx.query(&load, &[&touched]).await? {
                views.insert(row.get(0), from_doc(name, row.get(1))?);
            }
        }
        let changed = fold_orders(&mut views, &fresh, name);
        let n = changed.len();
        let (mut part, mut owner_id, mut order_no) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut status, mut created, mut version, mut docs) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut changes = Vec::with_capacity(n);
        for (key, position) in changed {
            let view = &views[&key];
            let owner = self.side.owner(view);
            let doc = to_doc(name, view)?;
            part.push(owner.partition());
            owner_id.push(owner.id());
            order_no.push(key.clone());
            status.push(view.status.as_str());
            created.push(view.created_at.as_millis());
            version.push(i64::try_from(view.version).unwrap_or(i64::MAX));
            docs.push(doc.clone());
            changes.push(RowChange {
                view: name,
                key,
                shard,
                position,
                row: Some(doc),
            });
        }
        if !order_no.is_empty() {
            // One statement for the whole batch (columns as arrays, unnested server-side).
            let upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {} (part, owner_id, order_no, status, created_ms, version, doc)
                     SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::bigint[], $6::bigint[], $7::jsonb[])
                     ON CONFLICT (part, owner_id, order_no) DO UPDATE SET
                        status = EXCLUDED.status, version = EXCLUDED.version, doc = EXCLUDED.doc",
                    self.table()
                ))
                .await?;
            tx.execute(
                &upsert,
                &[
                    &part, &owner_id, &order_no, &status, &created, &version, &docs,
                ],
            )
            .await?;
        }
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
