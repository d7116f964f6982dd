//! The event envelope on the bus: a JSON body with the whole recorded event and a few headers
//! for routing without parsing. Stable: fields may be added, never renamed or retyped.
//! `docs/bus.md` documents it for other languages.

use orderflow_domain::{Shard, StreamId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BusError, BusMessage, OutgoingMessage, Subjects};
use crate::store::{EventMetadata, EventPayload, Position, RecordedEvent};

/// The `envelope` field of every body this code writes.
pub const ENVELOPE_VERSION: u16 = 1;

/// Header names set on every event message.
pub mod headers {
    pub const SHARD: &str = "Orderflow-Shard";
    pub const POSITION: &str = "Orderflow-Position";
    pub const EVENT_TYPE: &str = "Orderflow-Event-Type";
    pub const CORRELATION_ID: &str = "Orderflow-Correlation-Id";
    pub const STREAM: &str = "Orderflow-Stream";
    pub const CONTENT_TYPE: &str = "Content-Type";
}

/// The JSON body. Owned fields and serde derives only, so the schema is readable here.
#[derive(Debug, Deserialize)]
struct Envelope {
    envelope: u16,
    event_id: Uuid,
    event_type: String,
    event_version: u16,
    stream: StreamId,
    stream_version: u64,
    shard: Shard,
    position: Position,
    /// Kept as JSON text: the handler that wants the event parses it into its own type.
    payload: EventPayload,
    metadata: EventMetadata,
    recorded_at: Timestamp,
}

/// [`Envelope`] borrowing from the event, for encoding: the same fields in the same order
/// (the pinned-format test below guards both), without copying the payload and metadata of
/// every event the relay publishes.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    envelope: u16,
    event_id: &'a Uuid,
    event_type: &'a str,
    event_version: u16,
    stream: &'a StreamId,
    stream_version: u64,
    shard: Shard,
    position: Position,
    /// Copied into the body as is, not re-serialized.
    payload: &'a EventPayload,
    metadata: &'a EventMetadata,
    recorded_at: Timestamp,
}

/// The message the relay publishes for a recorded event: on
/// `{prefix}.events.{shard}.{category}.{type}`, `Nats-Msg-Id` = event id.
pub fn encode_event(
    subjects: &Subjects,
    event: &RecordedEvent,
) -> Result<OutgoingMessage, BusError> {
    let body = EnvelopeRef {
        envelope: ENVELOPE_VERSION,
        event_id: &event.event_id,
        event_type: &event.event_type,
        event_version: event.event_version,
        stream: &event.stream,
        stream_version: event.stream_version,
        shard: event.shard,
        position: event.position,
        payload: &event.payload,
        metadata: &event.metadata,
        recorded_at: event.recorded_at,
    };
    let payload = serde_json::to_vec(&body)?;
    let subject = subjects.events(event.shard, event.stream.category(), &event.event_type);
    Ok(OutgoingMessage::new(subject, payload)
        .with_msg_id(event.event_id.to_string())
        .with_header(headers::SHARD, event.shard.index().to_string())
        .with_header(headers::POSITION, event.position.get().to_string())
        .with_header(headers::EVENT_TYPE, event.event_type.clone())
        .with_header(
            headers::CORRELATION_ID,
            event.metadata.correlation_id.as_str(),
        )
        .with_header(headers::STREAM, event.stream.as_str())
        .with_header(headers::CONTENT_TYPE, "application/json"))
}

/// Decodes an event message from its body (the headers are a convenience, not the truth).
pub fn decode_event(message: &BusMessage) -> Result<RecordedEvent, BusError> {
    let body: Envelope = serde_json::from_slice(&message.payload)?;
    if body.envelope == 0 {
        return Err(BusError::InvalidEnvelope { field: "envelope" });
    }
    // The stream name decides the shard; a body that disagrees was not written by us.
    if body.stream.shard() != body.shard {
        return Err(BusError::InvalidEnvelope { field: "shard" });
    }
    if body.position == Position::ZERO {
        return Err(BusError::InvalidEnvelope { field: "position" });
    }
    Ok(RecordedEvent {
        shard: body.shard,
        position: body.position,
        stream: body.stream,
        stream_version: body.stream_version,
        event_id: body.event_id,
        event_type: body.event_type,
        event_version: body.event_version,
        payload: body.payload,
        metadata: body.metadata,
        recorded_at: body.recorded_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bus::MSG_ID_HEADER;
    use crate::store::{CausationId, CommandId, CorrelationId};
    use orderflow_domain::{Actor, Role};

    pub(crate) fn sample_event(stream: &str, position: u64) -> RecordedEvent {
        let stream = StreamId::parse(stream).unwrap();
        RecordedEvent {
            shard: stream.shard(),
            position: Position::new(position),
            stream,
            stream_version: 3,
            event_id: Uuid::new_v4(),
            event_type: "OrderSubmitted".to_owned(),
            event_version: 2,
            payload: serde_json::json!({"buyer_id": 42, "lines": [{"sku": "latte", "qty": 2}]})
                .into(),
            metadata: EventMetadata {
                command_id: CommandId::parse("cmd-1").unwrap(),
                correlation_id: CorrelationId::parse("corr-1").unwrap(),
                causation_id: Some(CausationId::parse("cause-1").unwrap()),
                actor: Actor::new(Role::Buyer, "42"),
                occurred_at: Timestamp::from_millis(1_763_800_000_000),
            },
            recorded_at: Timestamp::from_millis(1_763_800_000_123),
        }
    }

    #[test]
    fn an_event_round_trips_through_the_wire_format() {
        let subjects = Subjects::new("orderflow").unwrap();
        let event = sample_event("order-2026112200000000117", 9);
        let out = encode_event(&subjects, &event).unwrap();
        assert_eq!(out.subject, "orderflow.events.17.order.OrderSubmitted");
        assert_eq!(
            out.msg_id.as_deref(),
            Some(event.event_id.to_string().as_str())
        );
        let received = BusMessage {
            subject: out.subject.clone(),
            headers: out.wire_headers().into(),
            payload: out.payload.clone(),
        };
        assert_eq!(received.header(headers::SHARD), Some("17"));
        assert_eq!(received.header(headers::POSITION), Some("9"));
        assert_eq!(received.header(headers::EVENT_TYPE), Some("OrderSubmitted"));
        assert_eq!(received.header(headers::CORRELATION_ID), Some("corr-1"));
        assert_eq!(
            received.header(MSG_ID_HEADER),
            Some(event.event_id.to_string().as_str())
        );
        assert_eq!(decode_event(&received).unwrap(), event);
    }

    #[test]
    fn the_body_is_the_documented_json() {
        // Pinned field names and types: other languages decode this (docs/bus.md).
        let subjects = Subjects::new("orderflow").unwrap();
        let event = sample_event("sku-latte", 1);
        let out = encode_event(&subjects, &event).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["envelope"], 1);
        assert_eq!(v["event_id"], event.event_id.to_string());
        assert_eq!(v["event_type"], "OrderSubmitted");
        assert_eq!(v["event_version"], 2);
        assert_eq!(v["stream"], "sku-latte");
        assert_eq!(v["stream_version"], 3);
        assert_eq!(v["shard"], event.shard.index());
        assert_eq!(v["position"], 1);
        assert_eq!(v["payload"]["buyer_id"], 42);
        assert_eq!(v["metadata"]["command_id"], "cmd-1");
        assert_eq!(v["metadata"]["correlation_id"], "corr-1");
        assert_eq!(v["metadata"]["causation_id"], "cause-1");
        assert_eq!(v["metadata"]["actor"]["role"], "buyer");
        assert_eq!(v["metadata"]["actor"]["subject"], "42");
        assert_eq!(v["metadata"]["occurred_at"], 1_763_800_000_000_i64);
        assert_eq!(v["recorded_at"], 1_763_800_000_123_i64);
    }

    #[test]
    fn a_body_with_a_wrong_shard_is_refused() {
        let subjects = Subjects::new("orderflow").unwrap();
        let event = sample_event("order-2026112200000000117", 1);
        let out = encode_event(&subjects, &event).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&out.payload).unwrap();
        v["shard"] = serde_json::json!(3);
        let msg = BusMessage {
            subject: out.subject,
            headers: out.headers.into(),
            payload: serde_json::to_vec(&v).unwrap().into(),
        };
        assert!(matches!(
            decode_event(&msg),
            Err(BusError::InvalidEnvelope { field: "shard" })
        ));
        let garbage = BusMessage {
            subject: "x".into(),
            headers: MessageHeaders::new(),
            payload: "nope".into(),
        };
        assert!(matches!(decode_event(&garbage), Err(BusError::Decode(_))));
    }

    use crate::bus::MessageHeaders;
}
