//! Logical shards: the 32-way split of seed 001.
//!
//! Every stream lives in exactly one shard. Orders are placed by their buyer (`buyer_id % 32`,
//! carried in the order number), everything else by a stable hash of its id, so any command
//! or query is routed from the stream name alone.

use serde::{Deserialize, Serialize};

/// How many logical shards there are. Fixed: order numbers carry the shard.
pub const SHARD_COUNT: u8 = 32;

/// A logical shard, `0..32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Shard(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard must be 0..{SHARD_COUNT}, got {0}")]
pub struct InvalidShard(pub i64);

impl Shard {
    /// Parses a shard number.
    pub fn new(n: u8) -> Result<Self, InvalidShard> {
        if n < SHARD_COUNT {
            Ok(Shard(n))
        } else {
            Err(InvalidShard(i64::from(n)))
        }
    }

    /// The shard of a buyer (seed 001: `buyer_id % 32`); also used for sellers' lists.
    pub fn of_id(id: u64) -> Self {
        // The modulo keeps it in range.
        Shard((id % u64::from(SHARD_COUNT)) as u8)
    }

    /// The shard of a non-order stream: FNV-1a of its id, stable across versions and
    /// processes (std's hasher is randomly seeded, so it cannot be used here).
    pub fn of_key(key: &str) -> Self {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in key.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        Shard((hash % u32::from(SHARD_COUNT)) as u8)
    }

    pub fn index(self) -> u8 {
        self.0
    }

    /// Every shard, in order.
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..SHARD_COUNT).map(Shard)
    }
}

impl TryFrom<u8> for Shard {
    type Error = InvalidShard;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Shard::new(n)
    }
}

impl TryFrom<i64> for Shard {
    type Error = InvalidShard;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        u8::try_from(n)
            .ok()
            .and_then(|n| Shard::new(n).ok())
            .ok_or(InvalidShard(n))
    }
}

impl From<Shard> for u8 {
    fn from(s: Shard) -> u8 {
        s.0
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_key_is_stable_and_in_range() {
        // Pinned: changing the hash would move existing streams to another shard.
        assert_eq!(
            Shard::of_key("sku-1").index(),
            Shard::of_key("sku-1").index()
        );
        assert_eq!(
            Shard::of_key(""),
            Shard(0x811c_9dc5_u32.rem_euclid(32) as u8)
        );
        for key in ["a", "sku-1", "rider-42", "merchant-7"] {
            assert!(Shard::of_key(key).index() < SHARD_COUNT);
        }
    }

    #[test]
    fn shard_numbers_outside_range_are_refused() {
        assert!(Shard::new(31).is_ok());
        assert_eq!(Shard::new(32), Err(InvalidShard(32)));
        assert_eq!(Shard::try_from(-1_i64), Err(InvalidShard(-1)));
    }
}
