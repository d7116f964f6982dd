//! The merchant catalog in PostgreSQL (`merchant_catalog`, migration 0005): one row per
//! merchant with its point as two indexed columns, so a nearby search is a range scan of
//! the search box; the exact distance and the order come from [`super::nearest_page`].

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use futures::future::try_join_all;
use orderflow_domain::{GeoPoint, MerchantId, Shard};
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use super::{
    fold_merchants, nearest_page, search_box, touched_merchants, MerchantReader, MerchantRow,
    NearbyCursor, NearbyPage, MERCHANT_CATALOG,
};
use crate::error::ProjectionError;
use crate::model::{BatchOutcome, ProjectionModel, RowChange, RowJson};
use crate::pg::{apply_alone, from_doc, load_checkpoints, to_doc, PgProjection, ShardEvents};

#[derive(Clone)]
pub struct PgMerchantCatalog {
    pool: Pool,
}

impl PgMerchantCatalog {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(pool: Pool) -> Self {
        PgMerchantCatalog { pool }
    }
}

#[async_trait]
impl ProjectionModel for PgMerchantCatalog {
    fn name(&self) -> &'static str {
        MERCHANT_CATALOG
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        load_checkpoints(&self.pool, MERCHANT_CATALOG).await
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
impl PgProjection for PgMerchantCatalog {
    fn reads(&self) -> &'static [&'static str] {
        &["merchant"]
    }

    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError> {
        let all: Vec<&RecordedEvent> = ShardEvents::all(batch).collect();
        let touched = touched_merchants(&all);
        let mut rows: HashMap<i64, MerchantRow> = HashMap::with_capacity(touched.len());
        if !touched.is_empty() {
            let loaded = tx
                .query(
                    "SELECT merchant_id, doc FROM merchant_catalog WHERE merchant_id = ANY($1)",
                    &[&touched],
                )
                .await?;
            for row in loaded {
                rows.insert(row.get(0), from_doc(MERCHANT_CATALOG, row.get(1))?);
            }
        }
        // A merchant's events are all in its own shard: each row is folded and written once.
        let mut changed = Vec::new();
        for part in batch {
            let folded = fold_merchants(&mut rows, &part.events);
            changed.extend(folded.into_iter().map(|(id, p)| (id, part.shard, p)));
        }
        let upsert = tx
            .prepare_cached(
                "INSERT INTO merchant_catalog (merchant_id, lat, lng, open, version, doc)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (merchant_id) DO UPDATE SET
                    lat = EXCLUDED.lat, lng = EXCLUDED.lng, open = EXCLUDED.open,
                    version = EXCLUDED.version, doc = EXCLUDED.doc",
            )
            .await?;
        let mut stored = Vec::with_capacity(changed.len());
        let mut changes = Vec::with_capacity(changed.len());
        for (id, shard, position) in changed {
            let row = &rows[&id];
            let doc = to_doc(MERCHANT_CATALOG, row)?;
            stored.push((
                id,
                row.location.lat(),
                row.location.lng(),
                row.open,
                i64::try_from(row.version).unwrap_or(i64::MAX),
                doc.clone(),
            ));
            changes.push(RowChange {
                view: MERCHANT_CATALOG,
                key: id.to_string(),
                shard,
                position,
                row: RowJson::encode(&doc).ok(),
            });
        }
        let params: Vec<[&(dyn ToSql + Sync); 6]> = stored
            .iter()
            .map(|r| -> [&(dyn ToSql + Sync); 6] { [&r.0, &r.1, &r.2, &r.3, &r.4, &r.5] })
            .collect();
        // Pipelined on the one connection: one round trip for the whole batch.
        try_join_all(params.iter().map(|p| tx.execute(&upsert, p))).await?;
        Ok(changes)
    }
}

#[async_trait]
impl MerchantReader for PgMerchantCatalog {
    async fn get(&self, merchant: MerchantId) -> Result<Option<MerchantRow>, ProjectionError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT doc FROM merchant_catalog WHERE merchant_id = $1",
                &[&merchant.get()],
            )
            .await?;
        row.map(|r| from_doc(MERCHANT_CATALOG, r.get(0)))
            .transpose()
    }

    async fn nearby(
        &self,
        center: GeoPoint,
        radius_m: u32,
        after: Option<NearbyCursor>,
        limit: usize,
    ) -> Result<NearbyPage, ProjectionError> {
        let (lat_min, lat_max, lng_min, lng_max) = search_box(center, radius_m);
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT doc FROM merchant_catalog
                 WHERE lat BETWEEN $1 AND $2 AND lng BETWEEN $3 AND $4",
                &[&lat_min, &lat_max, &lng_min, &lng_max],
            )
            .await?;
        let candidates = rows
            .into_iter()
            .map(|r| from_doc(MERCHANT_CATALOG, r.get(0)))
            .collect::<Result<Vec<MerchantRow>, _>>()?;
        Ok(nearest_page(candidates, center, radius_m, after, limit))
    }
}
