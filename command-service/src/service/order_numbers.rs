//! The order-number generator: `OrderNo::new(now, sequence, buyer)` with a per-process
//! sequence.
//!
//! The sequence (6 digits) is `node * 100_000 + counter % 100_000`: the node (0..=9) sets
//! the top digit, so two processes with different nodes never issue the same number; the
//! counter is per process and starts at a random point. A number repeats only if the same
//! node issues 100,000 numbers within one millisecond for one buyer shard (the last two
//! digits), far beyond one process's rate. The node comes from configuration; by default it
//! is drawn at start, which makes two processes' numbers collide only if they also drew the
//! same node and the same counter value in the same millisecond and shard: unique in
//! practice, and a collision is refused (the order stream already exists), not merged.
//!
//! Retries never draw a second number: the `SubmitOrder` claim ([`super::submit`]) maps a
//! request id to the first number it was given.

use std::sync::atomic::{AtomicU64, Ordering};

use orderflow_domain::order_no::OrderNoError;
use orderflow_domain::{BuyerId, OrderNo, Timestamp};

/// Nodes that can issue numbers side by side without ever colliding.
pub const NODES: u8 = 10;
/// Numbers one node can issue per millisecond and buyer shard before the counter wraps.
const PER_NODE: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
#[error("order number node must be 0..={max}, got {0}", max = NODES - 1)]
pub struct InvalidNode(pub u8);

#[derive(Debug)]
pub struct OrderNumbers {
    node: u8,
    /// Relaxed: only uniqueness of the values matters, not their order between threads.
    counter: AtomicU64,
}

impl OrderNumbers {
    pub fn new(node: u8) -> Result<Self, InvalidNode> {
        if node >= NODES {
            return Err(InvalidNode(node));
        }
        Ok(OrderNumbers {
            node,
            counter: AtomicU64::new(random_u64() % PER_NODE),
        })
    }

    /// A generator on a node drawn at random (no configuration).
    pub fn random_node() -> Self {
        let node = (random_u64() % u64::from(NODES)) as u8;
        OrderNumbers {
            node,
            counter: AtomicU64::new(random_u64() % PER_NODE),
        }
    }

    pub fn node(&self) -> u8 {
        self.node
    }

    /// A fresh number for an order `buyer` submits at `at`.
    pub fn next(&self, at: Timestamp, buyer: BuyerId) -> Result<OrderNo, OrderNoError> {
        let count = self.counter.fetch_add(1, Ordering::Relaxed) % PER_NODE;
        // < 10 * 100_000 = 1_000_000: fits the 6 digits and a u32.
        let sequence = (u64::from(self.node) * PER_NODE + count) as u32;
        OrderNo::new(at, sequence, buyer)
    }
}

/// 64 random bits from a v4 uuid (the workspace has no `rand`; uuid draws from the OS).
fn random_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut half = [0u8; 8];
    half.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(half)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn numbers_of_one_node_in_one_millisecond_are_distinct_and_carry_the_node() {
        let numbers = OrderNumbers::new(7).unwrap();
        let buyer = BuyerId::new(17).unwrap();
        let at = Timestamp::from_millis(1_795_331_832_345);
        let issued: HashSet<OrderNo> = (0..10_000)
            .map(|_| numbers.next(at, buyer).unwrap())
            .collect();
        assert_eq!(issued.len(), 10_000);
        assert!(issued.iter().all(|n| n.sequence() / 100_000 == 7));
        assert!(issued.iter().all(|n| n.shard() == buyer.shard()));
    }

    #[test]
    fn the_counter_wraps_within_the_six_digits() {
        let numbers = OrderNumbers::new(9).unwrap();
        numbers.counter.store(u64::MAX - 1, Ordering::Relaxed);
        let buyer = BuyerId::new(1).unwrap();
        for _ in 0..4 {
            let n = numbers.next(Timestamp::from_millis(0), buyer).unwrap();
            assert!((900_000..1_000_000).contains(&n.sequence()));
        }
    }

    #[test]
    fn nodes_are_0_to_9() {
        assert!(OrderNumbers::new(9).is_ok());
        assert!(OrderNumbers::new(10).is_err());
        assert!(OrderNumbers::random_node().node() < NODES);
    }
}
