//! The rider views in PostgreSQL (migration 0005): `rider_geo` (one row per rider, its point
//! in two indexed columns) and `rider_offer` (one row per open offer to one rider). A batch
//! is one transaction: lock the checkpoint, load the touched rows, fold, upsert the riders,
//! replace each changed order's offers (delete, insert), move the checkpoint.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use futures::future::try_join_all;
use orderflow_domain::{GeoPoint, RiderId, Shard, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::types::ToSql;

use super::memory::row_changes;
use super::{
    fold_riders, nearest_riders, touched, NearbyRider, OfferRow, RiderChanges, RiderReader,
    RiderRow, RIDER_GEO,
};
use crate::error::ProjectionError;
use crate::merchants::search_box;
use crate::model::{BatchOutcome, ProjectionModel, RowChange};
use crate::pg::{apply_alone, from_doc, load_checkpoints, to_doc, PgProjection, ShardEvents};

#[derive(Clone)]
pub struct PgRiderGeo {
    pool: Pool,
}

impl PgRiderGeo {
    /// The pool must point at a database migrated by `orderflow_infra::migrate`.
    pub fn new(pool: Pool) -> Self {
        PgRiderGeo { pool }
    }
}

#[async_trait]
impl ProjectionModel for PgRiderGeo {
    fn name(&self) -> &'static str {
        RIDER_GEO
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        load_checkpoints(&self.pool, RIDER_GEO).await
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
impl PgProjection for PgRiderGeo {
    fn reads(&self) -> &'static [&'static str] {
        &["rider", "order"]
    }

    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError> {
        let all: Vec<&RecordedEvent> = ShardEvents::all(batch).collect();
        let (rider_ids, order_nos) = touched(&all);
        let mut riders: HashMap<i64, RiderRow> = HashMap::new();
        let mut offers: HashMap<String, Vec<OfferRow>> = HashMap::new();
        if !rider_ids.is_empty() {
            let rows = tx
                .query(
                    "SELECT rider_id, doc FROM rider_geo WHERE rider_id = ANY($1)",
                    &[&rider_ids],
                )
                .await?;
            for row in rows {
                riders.insert(row.get(0), from_doc(RIDER_GEO, row.get(1))?);
            }
        }
        if !order_nos.is_empty() {
            let rows = tx
                .query(
                    "SELECT order_no, doc FROM rider_offer WHERE order_no = ANY($1)",
                    &[&order_nos],
                )
                .await?;
            for row in rows {
                let offer: OfferRow = from_doc(RIDER_GEO, row.get(1))?;
                offers.entry(row.get(0)).or_default().push(offer);
            }
        }
        // Shard by shard, as their transactions would have. An order's offers change with
        // its own events and its riders' (another shard's): each row is written once, in
        // its state after the whole batch; each shard's changes are published as it left them.
        let mut changes = RiderChanges::default();
        let mut row_changed = Vec::new();
        for part in batch {
            let folded = fold_riders(&mut riders, &mut offers, &part.events);
            row_changed.extend(row_changes(part.shard, &riders, &offers, &folded));
            changes.riders.extend(folded.riders);
            changes.orders.extend(folded.orders);
        }
        let mut seen = HashSet::new();
        changes.riders.retain(|(id, _)| seen.insert(*id));
        let mut seen = HashSet::new();
        changes.orders.retain(|(no, _)| seen.insert(no.clone()));
        let upsert = tx
            .prepare_cached(
                "INSERT INTO rider_geo (rider_id, online, lat, lng, version, doc)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (rider_id) DO UPDATE SET
                    online = EXCLUDED.online, lat = EXCLUDED.lat, lng = EXCLUDED.lng,
                    version = EXCLUDED.version, doc = EXCLUDED.doc",
            )
            .await?;
        let mut rider_rows = Vec::with_capacity(changes.riders.len());
        for (id, _) in &changes.riders {
            let row = &riders[id];
            rider_rows.push((
                *id,
                row.online,
                row.location.lat(),
                row.location.lng(),
                i64::try_from(row.version).unwrap_or(i64::MAX),
                to_doc(RIDER_GEO, row)?,
            ));
        }
        let params: Vec<[&(dyn ToSql + Sync); 6]> = rider_rows
            .iter()
            .map(|r| -> [&(dyn ToSql + Sync); 6] { [&r.0, &r.1, &r.2, &r.3, &r.4, &r.5] })
            .collect();
        try_join_all(params.iter().map(|p| tx.execute(&upsert, p))).await?;
        let changed_orders: Vec<String> = changes.orders.iter().map(|(no, _)| no.clone()).collect();
        if !changed_orders.is_empty() {
            tx.execute(
                "DELETE FROM rider_offer WHERE order_no = ANY($1)",
                &[&changed_orders],
            )
            .await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO rider_offer (order_no, rider_id, offer_id, expires_ms, offered_ms, doc)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            let mut offer_rows = Vec::new();
            for no in &changed_orders {
                for o in &offers[no] {
                    offer_rows.push((
                        no.clone(),
                        o.rider.get(),
                        o.offer_id.as_str().to_owned(),
                        o.expires_at.as_millis(),
                        o.offered_at.as_millis(),
                        to_doc(RIDER_GEO, o)?,
                    ));
                }
            }
            let params: Vec<[&(dyn ToSql + Sync); 6]> = offer_rows
                .iter()
                .map(|r| -> [&(dyn ToSql + Sync); 6] { [&r.0, &r.1, &r.2, &r.3, &r.4, &r.5] })
                .collect();
            try_join_all(params.iter().map(|p| tx.execute(&insert, p))).await?;
        }
        Ok(row_changed)
    }
}

#[async_trait]
impl RiderReader for PgRiderGeo {
    async fn nearby(
        &self,
        center: GeoPoint,
        radius_m: u32,
        limit: usize,
    ) -> Result<Vec<NearbyRider>, ProjectionError> {
        let (lat_min, lat_max, lng_min, lng_max) = search_box(center, radius_m);
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT doc FROM rider_geo
                 WHERE online AND lat BETWEEN $1 AND $2 AND lng BETWEEN $3 AND $4",
                &[&lat_min, &lat_max, &lng_min, &lng_max],
            )
            .await?;
        let candidates = rows
            .into_iter()
            .map(|r| from_doc(RIDER_GEO, r.get(0)))
            .collect::<Result<Vec<RiderRow>, _>>()?;
        Ok(nearest_riders(candidates, center, radius_m, limit))
    }

    async fn offers(
        &self,
        rider: RiderId,
        now: Timestamp,
    ) -> Result<Vec<OfferRow>, ProjectionError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT doc FROM rider_offer WHERE rider_id = $1 AND expires_ms > $2
                 ORDER BY offered_ms, offer_id",
                &[&rider.get(), &now.as_millis()],
            )
            .await?;
        rows.into_iter()
            .map(|r| from_doc(RIDER_GEO, r.get(0)))
            .collect()
    }
}
