//! Stream names: `{category}-{id}`, e.g. `order-2026112207171234500017`, `sku-latte-l`.
//!
//! The name alone decides the shard, so a stream can never be written to the wrong one:
//! an order stream's id ends with its buyer's shard (two digits, `00..=31`), and so does an
//! order claim's (the number a submit request was given, kept in its order's shard so that
//! both are written in one transaction); every other stream is placed by a stable hash of
//! its id.

use serde::{Deserialize, Serialize};

use crate::shard::Shard;

/// Longest stream name accepted.
pub const MAX_STREAM_NAME_LEN: usize = 200;

/// The category whose ids carry their shard as the last two digits.
pub const ORDER_CATEGORY: &str = "order";
/// Claims of submit requests on order numbers (`order_claim-{hash}.{shard}`); their ids carry
/// their shard as the last two digits too.
pub const ORDER_CLAIM_CATEGORY: &str = "order_claim";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStreamId {
    #[error("stream id must not be empty")]
    Empty,
    #[error("stream id must be at most {MAX_STREAM_NAME_LEN} bytes, got {0}")]
    TooLong(usize),
    #[error("stream id must be `category-id` with a lowercase category: {0:?}")]
    Malformed(String),
    #[error("stream id may hold only [A-Za-z0-9_.:-]: {0:?}")]
    BadCharacter(String),
    #[error("order and order_claim stream ids must end with their shard 00..=31: {0:?}")]
    ShardMismatch(String),
}

/// A validated stream name together with the shard it lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId {
    name: String,
    shard: Shard,
}

impl StreamId {
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidStreamId::Empty);
        }
        if name.len() > MAX_STREAM_NAME_LEN {
            return Err(InvalidStreamId::TooLong(name.len()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return Err(InvalidStreamId::BadCharacter(name));
        }
        let Some((category, id)) = name.split_once('-') else {
            return Err(InvalidStreamId::Malformed(name));
        };
        if category.is_empty()
            || id.is_empty()
            || !category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(InvalidStreamId::Malformed(name));
        }
        let shard = if category == ORDER_CATEGORY || category == ORDER_CLAIM_CATEGORY {
            match order_shard(id) {
                Some(shard) => shard,
                None => return Err(InvalidStreamId::ShardMismatch(name)),
            }
        } else {
            Shard::of_key(id)
        };
        Ok(StreamId { name, shard })
    }

    /// Builds `{category}-{id}`; the same rules as [`StreamId::parse`].
    pub fn of(category: &str, id: impl std::fmt::Display) -> Result<Self, InvalidStreamId> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The part before the first `-`: `order`, `sku`, `rider`, `merchant`.
    pub fn category(&self) -> &str {
        self.name.split_once('-').map_or("", |(c, _)| c)
    }

    /// The part after the first `-`.
    pub fn id(&self) -> &str {
        self.name.split_once('-').map_or("", |(_, id)| id)
    }
}

fn order_shard(id: &str) -> Option<Shard> {
    let digits = id.get(id.len().checked_sub(2)?..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Shard::new(digits.parse().ok()?).ok()
}

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        StreamId::parse(name)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.name
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_streams_take_their_shard_from_the_last_two_digits() {
        let s = StreamId::parse("order-2026112200000000117").unwrap();
        assert_eq!(s.shard().index(), 17);
        assert_eq!(s.category(), "order");
        assert_eq!(s.id(), "2026112200000000117");
    }

    #[test]
    fn order_stream_with_an_impossible_shard_is_refused() {
        assert!(matches!(
            StreamId::parse("order-123499"),
            Err(InvalidStreamId::ShardMismatch(_))
        ));
        assert!(matches!(
            StreamId::parse("order-abc"),
            Err(InvalidStreamId::ShardMismatch(_))
        ));
    }

    #[test]
    fn order_claims_take_their_shard_from_the_last_two_digits_too() {
        let s = StreamId::parse("order_claim-0fa3.07").unwrap();
        assert_eq!(s.shard().index(), 7);
        assert!(matches!(
            StreamId::parse("order_claim-0fa3"),
            Err(InvalidStreamId::ShardMismatch(_))
        ));
    }

    #[test]
    fn other_streams_are_hashed() {
        let s = StreamId::parse("sku-latte-large").unwrap();
        assert_eq!(s.shard(), Shard::of_key("latte-large"));
        assert_eq!(s.id(), "latte-large");
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(StreamId::parse(""), Err(InvalidStreamId::Empty));
        assert!(matches!(
            StreamId::parse("x".repeat(201)),
            Err(InvalidStreamId::TooLong(201))
        ));
        assert!(matches!(
            StreamId::parse("nocategory"),
            Err(InvalidStreamId::Malformed(_))
        ));
        assert!(matches!(
            StreamId::parse("Sku-1"),
            Err(InvalidStreamId::Malformed(_))
        ));
        assert!(matches!(
            StreamId::parse("sku-"),
            Err(InvalidStreamId::Malformed(_))
        ));
        assert!(matches!(
            StreamId::parse("sku-a b"),
            Err(InvalidStreamId::BadCharacter(_))
        ));
    }
}
