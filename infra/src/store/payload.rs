//! [`EventPayload`]: an event's payload as JSON text, parsed only by whoever needs its fields.
//!
//! An event goes from the command that decided it to the store, back out to the relay, into
//! the bus envelope and to every consumer. Held as a `serde_json::Value`, it was built into a
//! tree, serialized, parsed into a tree again and dropped at every hop: a third of the
//! process's CPU in the flash-sale profile was allocation, much of it these trees. Held as
//! text, the store writes it as is, the relay copies it into the envelope as is, and a
//! handler parses it once, straight into its typed event.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use postgres_types::{FromSql, IsNull, ToSql, Type};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The JSON text of one event's payload: always one valid JSON value. Cheap to clone (the
/// text is shared), so a cached event handed to many subscribers is not copied.
///
/// The text is kept as it came: a payload read back from PostgreSQL is `jsonb`'s rendering
/// (its key order and spacing), equal as JSON to what was written, not byte for byte.
#[derive(Clone)]
pub struct EventPayload(Arc<RawValue>);

impl EventPayload {
    /// Serializes a value (a domain event's fields) straight to JSON text.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self::from)
    }

    /// Checks that `json` is one JSON value (surrounding whitespace is dropped).
    pub fn parse(json: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.into()).map(Self::from)
    }

    /// Parses the payload into its typed form: the one parse a handler pays for.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Length of the JSON text in bytes (what the store's payload limit counts).
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Never true: the text is one JSON value; here for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }
}

impl From<Box<RawValue>> for EventPayload {
    fn from(raw: Box<RawValue>) -> Self {
        EventPayload(Arc::from(raw))
    }
}

impl From<&serde_json::Value> for EventPayload {
    fn from(value: &serde_json::Value) -> Self {
        // A Value has string keys and finite numbers: it always serializes.
        Self::encode(value).expect("a serde_json::Value always serializes")
    }
}

impl From<serde_json::Value> for EventPayload {
    fn from(value: serde_json::Value) -> Self {
        Self::from(&value)
    }
}

/// Handlers hand the payload to `DomainEvent::decode`, which takes the raw JSON.
impl Deref for EventPayload {
    type Target = RawValue;

    fn deref(&self) -> &RawValue {
        &self.0
    }
}

impl AsRef<RawValue> for EventPayload {
    fn as_ref(&self) -> &RawValue {
        &self.0
    }
}

/// Equal as JSON: the same text, or texts that parse to the same value (a payload read back
/// from `jsonb` is spaced and ordered differently from the one written). The parse is only
/// paid when the texts differ, which outside tests they do not.
impl PartialEq for EventPayload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
            || matches!(
                (
                    self.decode::<serde_json::Value>(),
                    other.decode::<serde_json::Value>(),
                ),
                (Ok(a), Ok(b)) if a == b
            )
    }
}

impl fmt::Debug for EventPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// The JSON text.
impl fmt::Display for EventPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Written into the surrounding JSON as is (serde_json only; other formats see a string).
impl Serialize for EventPayload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Taken from the surrounding JSON as text, without parsing it into a tree.
impl<'de> Deserialize<'de> for EventPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self::from)
    }
}

/// The `jsonb` binary format's only version: a version byte, then the JSON text.
const JSONB_VERSION: u8 = 1;

/// Sent as text (`json`) or as `jsonb`'s binary format, which is the same text behind a
/// version byte: PostgreSQL parses it, nothing is serialized here.
impl ToSql for EventPayload {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(JSONB_VERSION);
        }
        out.extend_from_slice(self.get().as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }

    postgres_types::to_sql_checked!();
}

/// Read as the column's JSON text; checked to be one JSON value, not built into a tree.
impl<'a> FromSql<'a> for EventPayload {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((&JSONB_VERSION, text)) => text,
                _ => return Err("unsupported jsonb binary version".into()),
            }
        } else {
            raw
        };
        Ok(Self::parse(std::str::from_utf8(text)?)?)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_payload_is_one_json_value() {
        assert!(EventPayload::parse(r#"{"n": 1}"#).is_ok());
        assert!(EventPayload::parse(" 7 ").is_ok());
        for bad in ["", "{", "1 2", "{\"n\": 1}}", "nope"] {
            assert!(EventPayload::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn it_decodes_into_a_typed_struct() {
        #[derive(Deserialize, PartialEq, Debug)]
        struct Paid {
            txn: String,
            amount: u64,
        }
        let payload = EventPayload::encode(&json!({"txn": "t-1", "amount": 500})).unwrap();
        assert_eq!(
            payload.decode::<Paid>().unwrap(),
            Paid {
                txn: "t-1".into(),
                amount: 500
            }
        );
        assert!(payload.decode::<u64>().is_err());
    }

    #[test]
    fn equality_is_json_equality() {
        let written = EventPayload::encode(&json!({"b": [1, 2], "a": "x"})).unwrap();
        // How jsonb renders it: its own key order and spacing.
        let read_back = EventPayload::parse(r#"{"a": "x", "b": [1, 2]}"#).unwrap();
        assert_eq!(written, read_back);
        assert_ne!(
            written,
            EventPayload::parse(r#"{"a": "y", "b": [1, 2]}"#).unwrap()
        );
    }

    #[test]
    fn it_is_embedded_in_json_as_is() {
        #[derive(Serialize, Deserialize)]
        struct Outer {
            payload: EventPayload,
            n: u8,
        }
        let text = r#"{"payload":{"k": [1, {"z": null}]},"n":3}"#;
        let outer: Outer = serde_json::from_str(text).unwrap();
        assert_eq!(outer.payload.get(), r#"{"k": [1, {"z": null}]}"#);
        assert_eq!(serde_json::to_string(&outer).unwrap(), text);
    }

    #[test]
    fn it_goes_to_and_from_sql_as_json_text() {
        let payload = EventPayload::parse(r#"{"n":1}"#).unwrap();
        for (ty, wire) in [
            (Type::JSONB, &b"\x01{\"n\":1}"[..]),
            (Type::JSON, &b"{\"n\":1}"[..]),
        ] {
            let mut out = BytesMut::new();
            payload.to_sql(&ty, &mut out).unwrap();
            assert_eq!(&out[..], wire);
            assert_eq!(EventPayload::from_sql(&ty, wire).unwrap(), payload);
        }
        assert!(EventPayload::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(EventPayload::from_sql(&Type::JSONB, b"\x01{").is_err());
        assert!(!<EventPayload as ToSql>::accepts(&Type::TEXT));
    }
}
