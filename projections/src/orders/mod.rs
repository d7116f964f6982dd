//! The order views: `order_detail` (one row per order, with its timeline, and full-text
//! search), `buyer_order` and `seller_order` (one row per order under its buyer or merchant,
//! newest first, partitioned by owner id % 32).
//!
//! All three store the same [`OrderView`], folded by the same pure [`OrderView::apply`]; they
//! are separate projections (own checkpoints, own tables) so each can lag, be rebuilt or be
//! moved to another database alone — seed 001 wants the buyer side as fresh as possible and
//! lets the seller side be eventually consistent.
//!
//! - [`view`]: the view and its fold;
//! - [`page`]: newest-first paging (cursor, page token, the owner of a list);
//! - [`detail`]: the `order_detail` read port and its memory twin; [`detail_pg`] its
//!   PostgreSQL adapter;
//! - [`lists`]: the `buyer_order` / `seller_order` read port and memory twin; [`lists_pg`];
//! - [`columns`]: a row's columns beside its document, shared by the upserts and
//!   [`bulk_pg`], the COPY loader of known histories into empty views.

pub mod bulk_pg;
mod columns;
pub mod detail;
pub mod detail_pg;
pub mod lists;
pub mod lists_pg;
pub mod page;
pub mod view;

use std::collections::{HashMap, HashSet};

use orderflow_domain::OrderNo;
use orderflow_infra::store::{Position, RecordedEvent};

pub use bulk_pg::{advance_checkpoints, copy_views, fold_new_orders, LoadRow, OrderTable};
pub use detail::{MemoryOrderDetail, OrderDetailReader, ORDER_DETAIL};
pub use detail_pg::PgOrderDetail;
pub use lists::{ListSide, MemoryOrderList, OrderListReader, BUYER_ORDER, SELLER_ORDER};
pub use lists_pg::PgOrderList;
pub use page::{Cursor, InvalidPageToken, Owner, Page};
pub use view::{order_event, OrderView, StatusChange, ViewError};

/// The order numbers of the order streams a batch touches (to load their views at once), in
/// first-touch order. A set beside the list: a rebuild's batch holds thousands of orders.
pub(crate) fn touched_orders(events: &[&RecordedEvent]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut touched = Vec::new();
    for e in events {
        if e.stream.category() == orderflow_domain::stream::ORDER_CATEGORY
            && seen.insert(e.stream.id())
        {
            touched.push(e.stream.id().to_owned());
        }
    }
    touched
}

/// The touched orders whose rows may exist before the batch: all but those submitted in it.
/// An order whose first event (`OrderSubmitted`, stream version 1) is past the checkpoint has
/// no row yet, since rows and checkpoints move together; its view is folded from that event,
/// so nothing needs loading. Under load most orders are submitted and created in one batch.
pub(crate) fn stored_orders(events: &[&RecordedEvent]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut stored = Vec::new();
    for e in events {
        if e.stream.category() == orderflow_domain::stream::ORDER_CATEGORY
            && seen.insert(e.stream.id())
            && e.stream_version > 1
        {
            stored.push(e.stream.id().to_owned());
        }
    }
    stored
}

/// Folds a batch's order events into `views` (the views before the batch, by order number).
/// Returns the order numbers whose view changed, in first-change order, each with the
/// position of the last event that changed it. Undecodable events are logged and skipped.
pub(crate) fn fold_orders(
    views: &mut HashMap<String, OrderView>,
    events: &[&RecordedEvent],
    projection: &'static str,
) -> Vec<(String, Position)> {
    let mut changed: Vec<(String, Position)> = Vec::new();
    // Where each changed order sits in `changed`.
    let mut index: HashMap<String, usize> = HashMap::new();
    for event in events {
        let order_event = match order_event(event) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(projection, error = %e, "order view skips an undecodable event");
                continue;
            }
        };
        let key = event.stream.id().to_owned();
        let before = views.remove(&key);
        // `apply` leaves a view as it was exactly when the event is a repeat (at or below its
        // version); any other event moves its version, so the view changed. Decided here
        // rather than by comparing with a copy: a clone of the view per event was a large
        // part of a rebuild's CPU.
        let repeat = before
            .as_ref()
            .is_some_and(|v| event.stream_version <= v.version);
        let Some(after) = OrderView::apply(before, &order_event, event.stream_version) else {
            tracing::error!(projection, stream = %event.stream, event_type = %event.event_type,
                "order event without a submitted order; skipped");
            continue;
        };
        if !repeat {
            match index.get(&key) {
                Some(&i) => changed[i].1 = event.position,
                None => {
                    index.insert(key.clone(), changed.len());
                    changed.push((key.clone(), event.position));
                }
            }
        }
        views.insert(key, after);
    }
    changed
}

/// The order number a view is stored under (its stream id).
pub(crate) fn key_of(no: &OrderNo) -> String {
    no.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::{created, order_no, paid, submitted, Log};

    #[test]
    fn orders_submitted_in_the_batch_have_no_stored_row() {
        // Given a batch with a's creation and payment, b's submission and creation
        let mut log = Log::new();
        let (a, b) = (order_no(0, 42), order_no(1, 42));
        log.order(&a, submitted(&a, 42, 7, "Tea", "1 Road", 0));
        log.order(&a, created(5));
        log.order(&b, submitted(&b, 42, 7, "Tea", "1 Road", 1));
        log.order(&a, paid(10));
        log.order(&b, created(11));
        let batch: Vec<&RecordedEvent> = log.events[1..].iter().collect();
        // Then only a may have a row to load; both are touched
        assert_eq!(stored_orders(&batch), vec![a.as_str().to_owned()]);
        assert_eq!(touched_orders(&batch).len(), 2);
    }
}
