//! Events as stored: a type name, a version and a JSON payload.
//!
//! The type name and version travel beside the payload (in the store's columns and the bus
//! subject), so the payload is just the event's fields. [`DomainEvent::decode`] is the one
//! place an old payload is read back: when an event's shape changes, its version is bumped and
//! `decode` learns to upcast the old version, so history is never rewritten.
//!
//! ```
//! use orderflow_domain::order::{OrderClosed, OrderEvent};
//! use orderflow_domain::{DomainEvent, Timestamp};
//!
//! let event: OrderEvent = OrderClosed { at: Timestamp::from_millis(5) }.into();
//! let (event_type, version) = (event.event_type(), event.event_version());
//! let payload = event.encode().unwrap();
//! assert_eq!(payload.get(), r#"{"at":5}"#);
//! assert_eq!((event_type, version), ("OrderClosed", 1));
//! assert_eq!(OrderEvent::decode(event_type, version, &payload).unwrap(), event);
//! ```

use serde::Serialize;
use serde_json::value::RawValue;

/// An event of some aggregate, with the name and version it is stored under.
pub trait DomainEvent: Serialize + Sized {
    /// Past tense, stable forever: `OrderPaid`, `StockReserved`.
    fn event_type(&self) -> &'static str;

    /// The version of the payload's shape, starting at 1.
    fn event_version(&self) -> u16;

    /// The payload as stored (JSON text); the type and version are not part of it.
    fn encode(&self) -> Result<Box<RawValue>, serde_json::Error> {
        serde_json::value::to_raw_value(self)
    }

    /// Reads a stored payload (JSON text) back, upcasting older versions to the current
    /// shape. Parsed straight into the event's struct, never into a `serde_json::Value`.
    fn decode(
        event_type: &str,
        event_version: u16,
        payload: &RawValue,
    ) -> Result<Self, DecodeError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unknown version {version} of event type {event_type:?}")]
    UnknownVersion { event_type: String, version: u16 },
    #[error("payload of {event_type:?} v{version} does not decode: {source}")]
    Payload {
        event_type: String,
        version: u16,
        #[source]
        source: serde_json::Error,
    },
}

/// Declares an aggregate's event enum, one variant per event struct, with its stored name and
/// version, and derives [`DomainEvent`] for it (payload = the variant's struct).
///
/// An upcast for an older version goes in front of the generated decode: match the old
/// `(type, version)` in a hand-written `decode`, convert, and fall back to the generated one.
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($payload:ty) = $type_name:literal v $version:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($payload), )+
        }

        impl $name {
            /// Every stored type name of this enum, for routing and for tests.
            pub const EVENT_TYPES: &'static [&'static str] = &[$($type_name),+];
        }

        impl $crate::event::DomainEvent for $name {
            fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $type_name, )+ }
            }

            fn event_version(&self) -> u16 {
                match self { $( Self::$variant(_) => $version, )+ }
            }

            fn decode(
                event_type: &str,
                event_version: u16,
                payload: &serde_json::value::RawValue,
            ) -> Result<Self, $crate::event::DecodeError> {
                use $crate::event::DecodeError;
                match event_type {
                    $(
                        $type_name if event_version == $version => serde_json::from_str(payload.get())
                            .map(Self::$variant)
                            .map_err(|source| DecodeError::Payload {
                                event_type: event_type.to_owned(),
                                version: event_version,
                                source,
                            }),
                    )+
                    $( $type_name )|+ => Err(DecodeError::UnknownVersion {
                        event_type: event_type.to_owned(),
                        version: event_version,
                    }),
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }

        $(
            impl From<$payload> for $name {
                fn from(event: $payload) -> Self {
                    Self::$variant(event)
                }
            }
        )+
    };
}

pub(crate) use domain_events;
