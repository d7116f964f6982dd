//! Bounded counts: an order line's quantity, a restock, a rider's capacity.

use serde::{Deserialize, Serialize};

use crate::refusal::{Refusal, RefusalKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {min}..={max}, got {got}")]
pub struct OutOfRange {
    pub field: &'static str,
    pub min: i64,
    pub max: i64,
    pub got: i64,
}

impl Refusal for OutOfRange {
    fn kind(&self) -> RefusalKind {
        RefusalKind::InvalidArgument
    }
}

macro_rules! bounded {
    ($(#[$meta:meta])* $name:ident($repr:ty), $field:literal, $min:literal..=$max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name($repr);

        impl $name {
            pub const MIN: i64 = $min;
            pub const MAX: i64 = $max;

            pub fn new(n: i64) -> Result<Self, OutOfRange> {
                if (Self::MIN..=Self::MAX).contains(&n) {
                    // In range, so it fits the representation.
                    Ok($name(n as $repr))
                } else {
                    Err(OutOfRange { field: $field, min: Self::MIN, max: Self::MAX, got: n })
                }
            }

            pub fn get(self) -> i64 {
                i64::from(self.0)
            }
        }

        impl TryFrom<i64> for $name {
            type Error = OutOfRange;
            fn try_from(n: i64) -> Result<Self, OutOfRange> {
                Self::new(n)
            }
        }

        impl From<$name> for i64 {
            fn from(q: $name) -> i64 {
                q.get()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

bounded!(
    /// How many of one dish an order line asks for.
    Quantity(u16),
    "quantity",
    1..=999
);
bounded!(
    /// How many units one restock adds.
    RestockQuantity(u32),
    "quantity",
    1..=1_000_000
);
bounded!(
    /// How many orders a rider carries at once.
    Capacity(u8),
    "capacity",
    1..=10
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_named() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(999).unwrap().get(), 999);
        assert_eq!(
            Quantity::new(0).unwrap_err().to_string(),
            "quantity must be 1..=999, got 0"
        );
        assert!(Quantity::new(1000).is_err());
        assert!(RestockQuantity::new(1_000_000).is_ok());
        assert!(RestockQuantity::new(1_000_001).is_err());
        assert!(RestockQuantity::new(-5).is_err());
        assert_eq!(
            Capacity::new(11).unwrap_err().to_string(),
            "capacity must be 1..=10, got 11"
        );
        assert!(serde_json::from_str::<Capacity>("0").is_err());
        assert_eq!(serde_json::from_str::<Capacity>("3").unwrap().get(), 3);
    }
}
