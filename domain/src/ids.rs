//! Identifiers: each a distinct type, valid by construction.
//!
//! Numeric ids (buyers, merchants, riders) are the platform's positive `int64`s; string ids
//! (skus, offers, payment transactions) keep to the characters and lengths of the contract.

use serde::{Deserialize, Serialize};

use crate::refusal::{Refusal, RefusalKind};
use crate::stream::StreamId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{field} must be > 0, got {got}")]
    NotPositive { field: &'static str, got: i64 },
    #[error("{field} must be a decimal number, got {got:?}")]
    NotANumber { field: &'static str, got: String },
    #[error("{field} must be {min}..={max} characters, got {got}")]
    Length {
        field: &'static str,
        min: usize,
        max: usize,
        got: usize,
    },
    #[error("{field} may hold only {allowed}, got {got:?}")]
    BadCharacter {
        field: &'static str,
        allowed: &'static str,
        got: char,
    },
}

impl Refusal for IdError {
    fn kind(&self) -> RefusalKind {
        RefusalKind::InvalidArgument
    }
}

/// Builds the stream name of an id whose characters are a subset of a stream name's.
fn stream_of(category: &str, id: impl std::fmt::Display) -> StreamId {
    // Every id type here is at most 64 characters of [A-Za-z0-9_-] or a positive number,
    // which `StreamId` always accepts (pinned by `ids_make_valid_stream_ids`).
    StreamId::of(category, id).expect("ids are valid stream names")
}

macro_rules! numeric_id {
    ($(#[$meta:meta])* $name:ident, $field:literal, $category:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            pub fn new(id: i64) -> Result<Self, IdError> {
                if id > 0 {
                    Ok($name(id))
                } else {
                    Err(IdError::NotPositive { field: $field, got: id })
                }
            }

            /// Parses the decimal form, e.g. a token's `sub`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let id = s.parse::<i64>().map_err(|_| IdError::NotANumber {
                    field: $field,
                    got: s.to_owned(),
                })?;
                Self::new(id)
            }

            pub fn get(self) -> i64 {
                self.0
            }

            pub fn stream_id(self) -> StreamId {
                stream_of($category, self.0)
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdError;
            fn try_from(id: i64) -> Result<Self, IdError> {
                Self::new(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(
    /// A buyer; its shard is `buyer_id % 32` (seed 001), see [`BuyerId::shard`].
    BuyerId,
    "buyer_id",
    "buyer"
);
numeric_id!(
    /// A merchant (seller); stream `merchant-{id}`.
    MerchantId,
    "merchant_id",
    "merchant"
);
numeric_id!(
    /// A rider; stream `rider-{id}`.
    RiderId,
    "rider_id",
    "rider"
);

impl BuyerId {
    /// The shard of everything the buyer owns: `buyer_id % 32`.
    pub fn shard(self) -> crate::Shard {
        // Positive by construction, so the conversion is lossless.
        crate::Shard::of_id(self.0.unsigned_abs())
    }
}

const ID_CHARS: &str = "[A-Za-z0-9_-]";

fn check_token(field: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    let len = s.chars().count();
    if !(1..=max).contains(&len) {
        return Err(IdError::Length {
            field,
            min: 1,
            max,
            got: len,
        });
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(bad) => Err(IdError::BadCharacter {
            field,
            allowed: ID_CHARS,
            got: bad,
        }),
        None => Ok(()),
    }
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(&s)?;
                Ok($name(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A dish, unique platform-wide: 1..=64 of `[A-Za-z0-9_-]`; stream `sku-{id}`.
    SkuId,
    |s| check_token("sku_id", s, 64)
);
string_id!(
    /// One round of rider offers for one order: the fencing token a grab must present.
    OfferId,
    |s| check_token("offer_id", s, 64)
);
string_id!(
    /// The payment provider's transaction id: 1..=128 printable characters. Its alphabet is
    /// the provider's, so only control characters and whitespace are refused.
    PaymentTxnId,
    |s| {
        let len = s.chars().count();
        if !(1..=128).contains(&len) {
            return Err(IdError::Length {
                field: "payment_txn_id",
                min: 1,
                max: 128,
                got: len,
            });
        }
        match s.chars().find(|c| c.is_control() || c.is_whitespace()) {
            Some(bad) => Err(IdError::BadCharacter {
                field: "payment_txn_id",
                allowed: "printable characters without spaces",
                got: bad,
            }),
            None => Ok(()),
        }
    }
);

impl SkuId {
    pub fn stream_id(&self) -> StreamId {
        stream_of("sku", &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_must_be_positive() {
        assert_eq!(BuyerId::new(7).unwrap().get(), 7);
        assert_eq!(
            BuyerId::new(0).unwrap_err().to_string(),
            "buyer_id must be > 0, got 0"
        );
        assert!(matches!(
            RiderId::new(-3),
            Err(IdError::NotPositive {
                field: "rider_id",
                got: -3
            })
        ));
        assert!(matches!(
            MerchantId::parse("12x"),
            Err(IdError::NotANumber { .. })
        ));
        assert_eq!(MerchantId::parse("12").unwrap().get(), 12);
    }

    #[test]
    fn sku_ids_keep_to_their_alphabet_and_length() {
        assert!(SkuId::parse("latte_L-2").is_ok());
        assert!(SkuId::parse("a".repeat(64)).is_ok());
        assert_eq!(
            SkuId::parse("").unwrap_err().to_string(),
            "sku_id must be 1..=64 characters, got 0"
        );
        assert!(matches!(
            SkuId::parse("a".repeat(65)),
            Err(IdError::Length { got: 65, .. })
        ));
        assert!(matches!(
            SkuId::parse("latte.l"),
            Err(IdError::BadCharacter { got: '.', .. })
        ));
        assert!(OfferId::parse("o 1").is_err());
    }

    #[test]
    fn payment_txn_ids_accept_the_providers_alphabet() {
        assert!(PaymentTxnId::parse("wx:4200001234|2026/11/22").is_ok());
        assert!(PaymentTxnId::parse("x".repeat(128)).is_ok());
        assert!(PaymentTxnId::parse("x".repeat(129)).is_err());
        assert!(PaymentTxnId::parse("a b").is_err());
        assert!(PaymentTxnId::parse("").is_err());
    }

    #[test]
    fn ids_make_valid_stream_ids() {
        let sku = SkuId::parse("Z".repeat(64)).unwrap();
        assert_eq!(sku.stream_id().category(), "sku");
        assert_eq!(sku.stream_id().id(), sku.as_str());
        let rider = RiderId::new(i64::MAX).unwrap();
        assert_eq!(rider.stream_id().as_str(), format!("rider-{}", i64::MAX));
        assert_eq!(
            MerchantId::new(5).unwrap().stream_id().as_str(),
            "merchant-5"
        );
        assert_eq!(BuyerId::new(33).unwrap().shard().index(), 1);
    }

    #[test]
    fn ids_refuse_invalid_json() {
        assert!(serde_json::from_str::<BuyerId>("0").is_err());
        assert!(serde_json::from_str::<SkuId>("\"\"").is_err());
        assert_eq!(
            serde_json::to_string(&BuyerId::new(9).unwrap()).unwrap(),
            "9"
        );
    }
}
