//! What an ordered consumer needs to know about an event message before deciding whether to
//! decode it: its shard, position, stream category and event type, read from the headers the
//! relay sets (`docs/bus.md`). A consumer wants a few event types out of every shard, but must
//! see every position for its gap check; reading these four facts costs a few header lookups,
//! decoding the JSON body costs a parse of the whole envelope and payload.

use orderflow_domain::Shard;

use super::envelope::headers;
use super::{decode_event, BusError, BusMessage};
use crate::store::{Position, RecordedEvent};

/// The routing facts of an event message, borrowed from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    pub shard: Shard,
    pub position: Position,
    /// The stream's category (`order`, `sku`, …): the part of `Orderflow-Stream` before `-`.
    pub category: &'a str,
    /// The exact event type (`Orderflow-Event-Type`).
    pub event_type: &'a str,
}

impl<'a> Route<'a> {
    /// The route from the headers, or `None` when one is missing or malformed (a message from
    /// an older publisher, or not ours): the caller then decodes the body, which is the truth.
    pub fn of(message: &'a BusMessage) -> Option<Self> {
        let shard = message.header(headers::SHARD)?.parse::<u8>().ok()?;
        let shard = Shard::new(shard).ok()?;
        let position = message.header(headers::POSITION)?.parse::<u64>().ok()?;
        if position == 0 {
            return None;
        }
        let (category, id) = message.header(headers::STREAM)?.split_once('-')?;
        let event_type = message.header(headers::EVENT_TYPE)?;
        if category.is_empty() || id.is_empty() || event_type.is_empty() {
            return None;
        }
        Some(Route {
            shard,
            position: Position::new(position),
            category,
            event_type,
        })
    }
}

/// What one event message is to a consumer, decided from its headers where it can.
pub(crate) enum Examined {
    /// Not wanted: only its place in the shard matters; the body was not decoded.
    Skip { shard: Shard, position: Position },
    /// Wanted (or without routing headers, and wanted once decoded).
    Event(RecordedEvent),
    /// Undecodable, or its headers contradict its body: nothing can handle it.
    Bad(BusError),
}

/// Reads the route from the headers; decodes the body only if `wants` it. A message without
/// the headers (an older publisher) is decoded whole and then asked about.
pub(crate) fn examine(message: &BusMessage, wants: impl Fn(&str, &str) -> bool) -> Examined {
    let route = Route::of(message);
    if let Some(route) = &route {
        if !wants(route.category, route.event_type) {
            return Examined::Skip {
                shard: route.shard,
                position: route.position,
            };
        }
    }
    let event = match decode_event(message) {
        Ok(event) => event,
        Err(e) => return Examined::Bad(e),
    };
    match route {
        // The body is the truth; headers that disagree with it were not written by the relay,
        // and skipping by them could move a shard past an event nobody handled.
        Some(r) if (r.shard, r.position) != (event.shard, event.position) => {
            Examined::Bad(BusError::InvalidEnvelope {
                field: "Orderflow-Position",
            })
        }
        Some(_) => Examined::Event(event),
        None if wants(event.stream.category(), &event.event_type) => Examined::Event(event),
        None => Examined::Skip {
            shard: event.shard,
            position: event.position,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::envelope::tests::sample_event;
    use crate::bus::{encode_event, Subjects};

    fn received(stream: &str, position: u64) -> BusMessage {
        let subjects = Subjects::new("orderflow").unwrap();
        let out = encode_event(&subjects, &sample_event(stream, position)).unwrap();
        BusMessage {
            subject: out.subject.clone(),
            headers: out.wire_headers().into(),
            payload: out.payload,
        }
    }

    #[test]
    fn the_route_comes_from_the_relays_headers() {
        let message = received("order-2026112200000000117", 9);
        let route = Route::of(&message).unwrap();
        assert_eq!(route.shard, Shard::new(17).unwrap());
        assert_eq!(route.position, Position::new(9));
        assert_eq!(route.category, "order");
        assert_eq!(route.event_type, "OrderSubmitted");
    }

    #[test]
    fn a_missing_or_malformed_header_means_no_route() {
        let good = received("sku-latte", 3);
        assert!(Route::of(&good).is_some());
        for (name, value) in [
            (headers::SHARD, None),
            (headers::SHARD, Some("32")),
            (headers::SHARD, Some("x")),
            (headers::POSITION, None),
            (headers::POSITION, Some("0")),
            (headers::POSITION, Some("-1")),
            (headers::STREAM, None),
            (headers::STREAM, Some("latte")),
            (headers::EVENT_TYPE, None),
            (headers::EVENT_TYPE, Some("")),
        ] {
            let mut message = good.clone();
            match value {
                None => {
                    message.headers.make_mut().remove(name);
                }
                Some(v) => {
                    message
                        .headers
                        .make_mut()
                        .insert(name.to_owned(), v.to_owned());
                }
            }
            assert_eq!(Route::of(&message), None, "{name} = {value:?}");
        }
    }
}
