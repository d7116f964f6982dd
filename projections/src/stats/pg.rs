//! The hourly statistics in PostgreSQL (migrations 0005, 0006): `merchant_hourly` (one
//! partial row per merchant, hour and shard; readers sum an hour's partials) and
//! `merchant_hourly_orders` (each order's merchant). A batch is one transaction: lock the
//! checkpoint, load the touched orders' merchants, fold into deltas, record the new orders,
//! add each delta to the shard's partial with an increment (`RETURNING` the partial for its
//! change message), move the checkpoint.
//!
//! Why partials: a merchant's orders live on every shard, and with one row per hour every
//! shard's transaction upserted that row and waited on its lock until the transaction ahead
//! committed (a flash sale: one merchant, one hour, 32 shards in a queue, and every other
//! view of the group waiting with them). A partial is written by its own shard's
//! transactions only, which already take turns on the shard's checkpoint rows.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use futures::future::try_join_all;
use orderflow_domain::{MerchantId, Shard, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{fold_stats, HourlyStats, StatsReader, MERCHANT_HOURLY};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};
use crate::order_cache::OrderCache;
use crate::orders::stored_orders;
use crate::pg::{apply_alone, load_checkpoints, PgProjection, ShardEvents};

const COLUMNS: &str =
    "merchant_id, hour_ms, orders, gmv_minor, cancellations, late_deliveries, compensation_minor";

/// The sums of an hour's partials, in [`COLUMNS`]' order.
const SUMS: &str = "merchant_id, hour_ms, sum(orders)::bigint, sum(gmv_minor)::bigint,
    sum(cancellations)::bigint, sum(late_deliveries)::bigint, sum(compensation_minor)::bigint";

#[derive(Clone)]
pub struct PgMerchantHourly {
    pool: Pool,
    /// Each recent order's merchant, learnt from the batches it folds: a later event of the
    /// order finds it here rather than in `merchant_hourly_orders` (which a miss, or a
    /// restart, still reads).
    merchants: Arc<OrderCache<MerchantId>>,
}

impl PgMerchantHourly {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(pool: Pool) -> Self {
        PgMerchantHourly {
            pool,
            merchants: Arc::new(OrderCache::new()),
        }
    }
}

fn stats(row: &Row) -> Result<HourlyStats, ProjectionError> {
    let merchant = MerchantId::new(row.get(0)).map_err(|e| ProjectionError::Corrupt {
        view: MERCHANT_HOURLY,
        reason: e.to_string(),
    })?;
    Ok(HourlyStats {
        merchant,
        hour: Timestamp::from_millis(row.get(1)),
        orders: row.get(2),
        gmv: row.get(3),
        cancellations: row.get(4),
        late_deliveries: row.get(5),
        compensation: row.get(6),
    })
}

#[async_trait]
impl ProjectionModel for PgMerchantHourly {
    fn name(&self) -> &'static str {
        MERCHANT_HOURLY
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        load_checkpoints(&self.pool, MERCHANT_HOURLY).await
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
impl PgProjection for PgMerchantHourly {
    fn reads(&self) -> &'static [&'static str] {
        &["order"]
    }

    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError> {
        // Orders submitted in the batch have no row yet (their merchant comes with them).
        // Each shard's stored orders are looked up in its own cache, the misses of all in one
        // query.
        let mut merchants: HashMap<String, MerchantId> = HashMap::new();
        let mut missed = Vec::new();
        let stored: Vec<Vec<String>> = batch.iter().map(|p| stored_orders(&p.events)).collect();
        for (part, stored) in batch.iter().zip(&stored) {
            for (no, merchant) in self.merchants.get_all(part.shard, stored) {
                match merchant {
                    Some(m) => {
                        merchants.insert(no.clone(), m);
                    }
                    None => missed.push(no.clone()),
                }
            }
        }
        if !missed.is_empty() {
            let load = tx
                .prepare_cached(
                    "SELECT order_no, merchant_id FROM merchant_hourly_orders
                     WHERE order_no = ANY($1)",
                )
                .await?;
            for row in tx.query(&load, &[&missed]).await? {
                if let Ok(m) = MerchantId::new(row.get(1)) {
                    merchants.insert(row.get(0), m);
                }
            }
        }
        // Shard by shard: each shard adds to its own partials.
        let mut new_orders: Vec<(String, MerchantId)> = Vec::new();
        let mut hours = Vec::new();
        for (part, stored) in batch.iter().zip(&stored) {
            let deltas = fold_stats(&mut merchants, &part.events);
            hours.extend(deltas.hours.into_iter().map(|(d, p)| (part.shard, d, p)));
            // An order's merchant never changes: true whether or not this transaction
            // commits.
            let known = stored
                .iter()
                .filter_map(|no| merchants.get(no).map(|m| (no.as_str(), *m)));
            let new = deltas.new_orders.iter().map(|(no, m)| (no.as_str(), *m));
            self.merchants.put_all(part.shard, known.chain(new));
            new_orders.extend(deltas.new_orders);
        }
        if !new_orders.is_empty() {
            let (nos, ids): (Vec<String>, Vec<i64>) = new_orders
                .iter()
                .map(|(no, m)| (no.clone(), m.get()))
                .unzip();
            let record = tx
                .prepare_cached(
                    "INSERT INTO merchant_hourly_orders (order_no, merchant_id)
                     SELECT * FROM unnest($1::text[], $2::bigint[])
                     ON CONFLICT (order_no) DO NOTHING",
                )
                .await?;
            tx.execute(&record, &[&nos, &ids]).await?;
        }
        let add = tx
            .prepare_cached(&format!(
                "INSERT INTO merchant_hourly (shard, {COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (merchant_id, hour_ms, shard) DO UPDATE SET
                    orders = merchant_hourly.orders + EXCLUDED.orders,
                    gmv_minor = merchant_hourly.gmv_minor + EXCLUDED.gmv_minor,
                    cancellations = merchant_hourly.cancellations + EXCLUDED.cancellations,
                    late_deliveries = merchant_hourly.late_deliveries + EXCLUDED.late_deliveries,
                    compensation_minor = merchant_hourly.compensation_minor
                        + EXCLUDED.compensation_minor
                 RETURNING {COLUMNS}"
            ))
            .await?;
        let values: Vec<(i16, i64, i64, HourlyStats, Shard, Position)> = hours
            .iter()
            .map(|(shard, d, p)| {
                let shard_no = i16::from(shard.index());
                (
                    shard_no,
                    d.merchant.get(),
                    d.hour.as_millis(),
                    *d,
                    *shard,
                    *p,
                )
            })
            .collect();
        let params: Vec<[&(dyn ToSql + Sync); 8]> = values
            .iter()
            .map(|(shard_no, m, h, d, _, _)| -> [&(dyn ToSql + Sync); 8] {
                [
                    shard_no,
                    m,
                    h,
                    &d.orders,
                    &d.gmv,
                    &d.cancellations,
                    &d.late_deliveries,
                    &d.compensation,
                ]
            })
            .collect();
        // Pipelined on the one connection: one round trip for the whole batch. The partials
        // are the shard's own rows, so no order between shards is needed (docs/read-side.md,
        // "Lock order").
        let rows = try_join_all(params.iter().map(|p| tx.query_one(&add, p))).await?;
        let mut changes = Vec::with_capacity(rows.len());
        for (row, (_, _, _, _, shard, position)) in rows.iter().zip(&values) {
            let after = stats(row)?;
            changes.push(RowChange {
                view: MERCHANT_HOURLY,
                key: after.partial_key(*shard),
                shard: *shard,
                position: *position,
                row: RowJson::encode(&after).ok(),
            });
        }
        Ok(changes)
    }
}

#[async_trait]
impl StatsReader for PgMerchantHourly {
    async fn hours(
        &self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyStats>, ProjectionError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SUMS} FROM merchant_hourly
                     WHERE merchant_id = $1 AND hour_ms >= $2 AND hour_ms < $3
                     GROUP BY merchant_id, hour_ms
                     ORDER BY hour_ms"
                ),
                &[&merchant.get(), &from.as_millis(), &to.as_millis()],
            )
            .await?;
        rows.iter().map(stats).collect()
    }
}
