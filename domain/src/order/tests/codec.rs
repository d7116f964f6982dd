//! Every order event survives encode → decode under its type name and version.

use super::*;
use crate::event::{DecodeError, DomainEvent};

fn every_event() -> Vec<OrderEvent> {
    vec![
        submitted(),
        created(),
        failed(),
        super::refused::refused("latte", crate::FailureReason::OutOfStock),
        paid(),
        PaymentReceived {
            txn: txn("t"),
            amount: cny(1),
            at: t(1),
        }
        .into(),
        PaymentRefunded {
            txn: txn("t"),
            amount: cny(1),
            reason: RefundReason::AlreadyPaid,
            at: t(1),
        }
        .into(),
        cancelled(),
        notified(1),
        offer_expired(1),
        grabbed(),
        picked_up(),
        timed_out(),
        delivered(true),
        compensated(),
        closed(),
    ]
}

#[test]
fn every_order_event_round_trips_through_its_stored_form() {
    let events = every_event();
    let types: std::collections::BTreeSet<_> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types.len(),
        OrderEvent::EVENT_TYPES.len(),
        "one of each type"
    );
    for event in events {
        let payload = event.encode().unwrap();
        let fields: serde_json::Value = serde_json::from_str(payload.get()).unwrap();
        assert!(
            fields.get("type").is_none(),
            "the type is not in the payload"
        );
        let back = OrderEvent::decode(event.event_type(), event.event_version(), &payload).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn a_payload_reads_as_documented() {
    let payload: serde_json::Value = serde_json::from_str(paid().encode().unwrap().get()).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({
            "txn": "txn-1",
            "amount": {"currency_code": "CNY", "minor_units": TOTAL},
            "at": 3_000,
        })
    );
    let cancel: serde_json::Value =
        serde_json::from_str(cancelled().encode().unwrap().get()).unwrap();
    assert_eq!(cancel["cause"]["by"], "buyer");
}

#[test]
fn unknown_types_and_versions_are_typed_errors() {
    let payload = closed().encode().unwrap();
    assert!(matches!(
        OrderEvent::decode("OrderTeleported", 1, &payload),
        Err(DecodeError::UnknownType(t)) if t == "OrderTeleported"
    ));
    assert!(matches!(
        OrderEvent::decode("OrderClosed", 2, &payload),
        Err(DecodeError::UnknownVersion { version: 2, .. })
    ));
}

#[test]
fn an_invalid_payload_is_a_typed_error_not_a_bad_value() {
    // A stored order number with an impossible shard must not come back as a value.
    let mut payload: serde_json::Value =
        serde_json::from_str(submitted().encode().unwrap().get()).unwrap();
    payload["order_no"] = serde_json::json!("2026112207171234500004299");
    let payload = serde_json::value::to_raw_value(&payload).unwrap();
    let error = OrderEvent::decode("OrderSubmitted", 1, &payload).unwrap_err();
    assert!(matches!(error, DecodeError::Payload { .. }), "{error}");
}
