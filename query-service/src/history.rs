//! Audit: an order's history, event by event, and the order as of a time.
//!
//! Both read the event store, not a read model: the log is the record, and an auditor must
//! see exactly what was stored (who, which command, caused by what, under which correlation,
//! when decided and when committed). `GetOrderAsOf` folds the `order_detail` projection's own
//! pure [`OrderView::apply`] over the events decided up to the time, so "as of now" is what
//! `GetOrder` shows once the projection has caught up.
//!
//! Public so the CLI (`orderflow audit`) prints the same thing the RPCs answer.

use orderflow_domain::{OrderNo, Timestamp};
use orderflow_infra::store::{EventStore, RecordedEvent};
use orderflow_projections::orders::{order_event, OrderView};
use orderflow_proto::convert::to_proto::timestamp;
use orderflow_proto::v1 as pb;

use crate::auth::OrderParties;
use crate::convert;
use crate::error::QueryError;

/// Events read from the store per round trip.
const PAGE: usize = 1_000;

/// Every event of the order's stream, oldest first. An order that was never submitted is
/// NOT_FOUND.
pub async fn order_events(
    store: &dyn EventStore,
    order_no: &OrderNo,
) -> Result<Vec<RecordedEvent>, QueryError> {
    let stream = order_no.stream_id();
    let mut events = Vec::new();
    loop {
        let from = events.len() as u64 + 1;
        let page = store.read_stream(&stream, from, PAGE).await?;
        let full = page.len() == PAGE;
        events.extend(page);
        if !full {
            break;
        }
    }
    if events.is_empty() {
        return Err(QueryError::NotFound(format!(
            "order {order_no} does not exist"
        )));
    }
    Ok(events)
}

/// One stored event as the contract shows it, with its payload as JSON text.
pub fn history_event(event: &RecordedEvent) -> pb::HistoryEvent {
    let m = &event.metadata;
    pb::HistoryEvent {
        shard: u32::from(event.shard.index()),
        position: event.position.get(),
        stream_version: event.stream_version,
        event_type: event.event_type.clone(),
        event_version: u32::from(event.event_version),
        occurred_at: Some(timestamp(m.occurred_at)),
        recorded_at: Some(timestamp(event.recorded_at)),
        actor: Some((&m.actor).into()),
        command_id: m.command_id.to_string(),
        causation_id: m
            .causation_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        correlation_id: m.correlation_id.to_string(),
        payload_json: event.payload.to_string(),
    }
}

/// The whole history of an order, as `GetOrderHistory` answers it.
pub fn order_history(order_no: &OrderNo, events: &[RecordedEvent]) -> pb::OrderHistory {
    pb::OrderHistory {
        order_no: order_no.to_string(),
        events: events.iter().map(history_event).collect(),
    }
}

/// The order as the events decided at or before `as_of` left it (`None`: not yet submitted
/// then). Undecodable events are skipped, as the projection skips them.
pub fn order_as_of(events: &[RecordedEvent], as_of: Timestamp) -> Option<OrderView> {
    events
        .iter()
        .take_while(|e| e.metadata.occurred_at <= as_of)
        .fold(None, |view, e| match order_event(e) {
            Ok(Some(event)) => OrderView::apply(view, &event, e.stream_version),
            _ => view,
        })
}

/// Who the order concerns, as its whole history says (for authorization).
pub fn parties(events: &[RecordedEvent]) -> Option<OrderParties> {
    order_as_of(events, Timestamp::from_millis(i64::MAX)).map(|v| convert::parties(&v))
}

#[cfg(test)]
mod tests {
    use orderflow_domain::order::{OrderPaid, OrderStatus};
    use orderflow_domain::PaymentTxnId;
    use orderflow_projections::testing::fixtures::{at, cny, created, order_no, submitted, Log};

    use super::*;

    /// An order submitted, created and paid, each event decided at its own time.
    fn history() -> (OrderNo, Vec<RecordedEvent>) {
        let mut log = Log::new();
        let no = order_no(0, 42);
        let stamp = |log: &mut Log, offset| {
            if let Some(e) = log.events.last_mut() {
                e.metadata.occurred_at = at(offset);
            }
        };
        log.order(&no, submitted(&no, 42, 7, "Tea", "1 Road", 0));
        stamp(&mut log, 0);
        log.order(&no, created(10));
        stamp(&mut log, 10);
        log.order(
            &no,
            OrderPaid {
                txn: PaymentTxnId::parse("txn-1").unwrap(),
                amount: cny(5600),
                at: at(20),
            },
        );
        stamp(&mut log, 20);
        (no, log.events)
    }

    #[test]
    fn as_of_folds_the_events_decided_by_then() {
        let (_, events) = history();
        assert!(order_as_of(&events, at(-1)).is_none(), "not yet submitted");
        let created = order_as_of(&events, at(15)).unwrap();
        assert_eq!(created.status, OrderStatus::Created);
        assert_eq!(created.timeline.len(), 2);
        assert_eq!(
            order_as_of(&events, at(20)).unwrap().status,
            OrderStatus::Paid
        );
    }

    #[test]
    fn history_shows_every_event_with_its_metadata() {
        let (no, events) = history();
        let h = order_history(&no, &events);
        assert_eq!(h.order_no, no.to_string());
        let types: Vec<_> = h.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["OrderSubmitted", "OrderCreated", "OrderPaid"]);
        let paid = &h.events[2];
        assert_eq!((paid.stream_version, paid.event_version), (3, 1));
        assert!(paid.payload_json.contains("txn-1"));
        assert!(!paid.command_id.is_empty() && !paid.correlation_id.is_empty());
        assert_eq!(paid.actor.as_ref().unwrap().subject, "orderflow:suite");
        assert_eq!(
            parties(&events).unwrap().buyer,
            orderflow_domain::BuyerId::new(42).unwrap()
        );
    }
}
