//! Bulk load of the order views into PostgreSQL with `COPY … FROM STDIN BINARY`: a million
//! orders in the time the projectors' upserts take for a few tens of thousands. For seeding
//! benchmarks (`orderflow bench query`) and tools loading a known history into empty views.
//!
//! The rows are the projectors' rows by construction:
//! - [`fold_new_orders`] folds events with the adapters' own fold (`fold_orders`, hence
//!   [`OrderView::apply`]);
//! - the columns beside the document come from [`DetailColumns`] / [`ListColumns`], which the
//!   adapters' upserts use too, and `order_detail.search` is `to_tsvector('simple', …)` of the
//!   same text, computed by PostgreSQL in both paths (through a temporary table, as COPY
//!   cannot call a function);
//! - checkpoints are the same `projection:{name}` rows, moved with the same `GREATEST`.
//!
//! What it does not do: merge into existing rows. It inserts, so an order already in a table
//! fails the load (unique violation) rather than being silently overwritten; and it skips
//! `order_detail_merchants` (merchant names come from merchant streams, which a load of order
//! streams does not carry: [`fold_new_orders`] refuses them).

use std::collections::HashMap;

use bytes::BytesMut;
use futures::pin_mut;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Transaction;

use super::columns::{DetailColumns, ListColumns};
use super::detail::ORDER_DETAIL;
use super::lists::ListSide;
use super::{fold_orders, touched_orders, OrderView};
use crate::error::ProjectionError;
use crate::pg::checkpoint_name;

/// One of the three order views' tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderTable {
    Detail,
    List(ListSide),
}

impl OrderTable {
    pub const ALL: [OrderTable; 3] = [
        OrderTable::Detail,
        OrderTable::List(ListSide::Buyer),
        OrderTable::List(ListSide::Seller),
    ];

    /// The projection's name (its table and its checkpoint name).
    pub fn name(self) -> &'static str {
        match self {
            OrderTable::Detail => ORDER_DETAIL,
            OrderTable::List(side) => side.name(),
        }
    }
}

/// The views of the orders whose whole history so far is in `events` (one shard's, in
/// position order), folded as the projectors fold them, in the order they first appear.
/// Refuses an order whose stream starts before `events` (its earlier events would be missing
/// from the view) and any event of another stream category.
pub fn fold_new_orders(events: &[RecordedEvent]) -> Result<Vec<OrderView>, ProjectionError> {
    let refs: Vec<&RecordedEvent> = events.iter().collect();
    let refused = |reason: String| ProjectionError::Corrupt {
        view: ORDER_DETAIL,
        reason,
    };
    if let Some(other) = refs
        .iter()
        .find(|e| e.stream.category() != orderflow_domain::stream::ORDER_CATEGORY)
    {
        return Err(refused(format!(
            "bulk load takes order streams only, got {}",
            other.stream
        )));
    }
    let mut views: HashMap<String, OrderView> = HashMap::new();
    fold_orders(&mut views, &refs, ORDER_DETAIL);
    let mut last_version: HashMap<&str, u64> = HashMap::new();
    for e in &refs {
        last_version.insert(e.stream.id(), e.stream_version);
    }
    touched_orders(&refs)
        .into_iter()
        .map(|no| match views.remove(&no) {
            Some(view) if view.version == last_version[no.as_str()] => Ok(view),
            _ => Err(refused(format!(
                "order {no}: its events do not start at its submission here, or one could \
                 not be folded"
            ))),
        })
        .collect()
}

/// A view and its JSON document, serialized once for the three tables' COPYs (the same
/// value the upserts store, spelt with the struct's field order where theirs sorts keys).
pub struct LoadRow {
    pub view: OrderView,
    doc: Vec<u8>,
}

impl LoadRow {
    pub fn new(view: OrderView) -> Result<Self, ProjectionError> {
        let doc = serde_json::to_vec(&view).map_err(|e| ProjectionError::Corrupt {
            view: ORDER_DETAIL,
            reason: e.to_string(),
        })?;
        Ok(LoadRow { view, doc })
    }
}

/// A serialized JSON document sent as `json` (binary format: the text itself).
#[derive(Debug)]
struct JsonText<'a>(&'a [u8]);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }

    to_sql_checked!();
}

/// Inserts `rows` (orders not in `table` yet) with one binary COPY inside `tx`.
pub async fn copy_views(
    tx: &Transaction<'_>,
    table: OrderTable,
    views: &[LoadRow],
) -> Result<u64, ProjectionError> {
    match table {
        OrderTable::Detail => copy_detail(tx, views).await,
        OrderTable::List(side) => copy_list(tx, side, views).await,
    }
}

async fn copy_detail(tx: &Transaction<'_>, views: &[LoadRow]) -> Result<u64, ProjectionError> {
    // COPY cannot compute `search`; a temporary table takes the text and the INSERT below
    // computes the tsvector as the upsert does. Dropped at commit.
    tx.batch_execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS order_detail_load (
            order_no text, buyer_id bigint, merchant_id bigint, status text, created_ms bigint,
            updated_ms bigint, version bigint, doc json, search_text text
         ) ON COMMIT DROP",
    )
    .await?;
    let sink = tx
        .copy_in(
            "COPY order_detail_load (order_no, buyer_id, merchant_id, status, created_ms,
                                     updated_ms, version, doc, search_text) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::JSON,
            Type::TEXT,
        ],
    );
    pin_mut!(writer);
    for row in views {
        let c = DetailColumns::of(&row.view);
        let doc = JsonText(&row.doc);
        let row: [&(dyn ToSql + Sync); 9] = [
            &c.order_no,
            &c.buyer_id,
            &c.merchant_id,
            &c.status,
            &c.created_ms,
            &c.updated_ms,
            &c.version,
            &doc,
            &c.search_text,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    let inserted = tx
        .execute(
            "INSERT INTO order_detail (order_no, buyer_id, merchant_id, status, created_ms,
                                       updated_ms, version, doc, search)
             SELECT order_no, buyer_id, merchant_id, status, created_ms, updated_ms, version, doc,
                    to_tsvector('simple', search_text)
             FROM order_detail_load",
            &[],
        )
        .await?;
    tx.batch_execute("TRUNCATE order_detail_load").await?;
    Ok(inserted)
}

async fn copy_list(
    tx: &Transaction<'_>,
    side: ListSide,
    views: &[LoadRow],
) -> Result<u64, ProjectionError> {
    // The table name is the side's constant, never input. COPY into the partitioned parent
    // routes each row to its `part`.
    let sink = tx
        .copy_in(&format!(
            "COPY {} (part, owner_id, order_no, status, created_ms, version, doc) FROM STDIN BINARY",
            side.name()
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT2,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::JSON,
        ],
    );
    pin_mut!(writer);
    for row in views {
        let c = ListColumns::of(side, &row.view);
        let doc = JsonText(&row.doc);
        let row: [&(dyn ToSql + Sync); 7] = [
            &c.part,
            &c.owner_id,
            &c.order_no,
            &c.status,
            &c.created_ms,
            &c.version,
            &doc,
        ];
        writer.as_mut().write(&row).await?;
    }
    Ok(writer.finish().await?)
}

/// Moves `table`'s checkpoint of each shard to at least the given position (as
/// `save_checkpoint` does: never backwards), creating the rows that do not exist.
pub async fn advance_checkpoints(
    tx: &Transaction<'_>,
    table: OrderTable,
    positions: &HashMap<Shard, Position>,
) -> Result<(), ProjectionError> {
    let name = checkpoint_name(table.name());
    for (shard, position) in positions {
        let position = i64::try_from(position.get()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO checkpoints (name, shard, position) VALUES ($1, $2, $3)
             ON CONFLICT (name, shard) DO UPDATE
             SET position = GREATEST(checkpoints.position, EXCLUDED.position), updated_at = now()",
            &[&name, &i16::from(shard.index()), &position],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::{
        created, late_delivery, merchant, opened, order_no, paid, submitted, Log,
    };

    fn two_orders() -> (Log, Shard) {
        let mut log = Log::new();
        let (a, b) = (order_no(0, 7), order_no(1, 39));
        log.order(&a, submitted(&a, 7, 1, "Latte", "1 Nanjing Road", 0));
        log.order(&b, submitted(&b, 39, 2, "Mocha", "2 Nanjing Road", 1));
        log.order(&a, created(5));
        late_delivery(&mut log, &b, 3);
        log.order(&a, paid(20));
        (log, a.shard())
    }

    #[test]
    fn new_orders_fold_as_the_projectors_fold_them() {
        let (log, shard) = two_orders();
        let events = log.shard(shard);
        let views = fold_new_orders(&events).unwrap();
        let mut expected = HashMap::new();
        let refs: Vec<&RecordedEvent> = events.iter().collect();
        fold_orders(&mut expected, &refs, ORDER_DETAIL);
        assert_eq!(views.len(), 2);
        for view in &views {
            assert_eq!(Some(view), expected.get(view.order_no.as_str()));
        }
        assert_eq!(views[0].order_no, order_no(0, 7), "first appearance first");
    }

    #[test]
    fn an_order_that_starts_before_the_events_is_refused() {
        let (log, shard) = two_orders();
        let events = log.shard(shard);
        // Both submissions cut off: the orders' later events alone cannot make their views.
        let err = fold_new_orders(&events[2..]).unwrap_err();
        assert!(matches!(err, ProjectionError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn other_streams_are_refused() {
        let mut log = Log::new();
        log.merchant(merchant(1), opened("Blue Bottle"));
        let shard = log.events[0].shard;
        let err = fold_new_orders(&log.shard(shard)).unwrap_err();
        assert!(err.to_string().contains("order streams only"), "{err}");
    }
}
