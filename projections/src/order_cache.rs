//! What the PostgreSQL adapters remember of each order between batches: a fact that
//! `OrderSubmitted` fixes for the order's life (its merchant, hence its `seller_order`
//! partition), so a later batch of the order finds its row without asking the database
//! where it is. Bounded; a miss (an order older than the cache holds, a restart) falls back
//! to the database.
//!
//! Per shard, because each shard's batches are applied by one task at a time (the shard's
//! checkpoint rows serialize them): its lock is never contended across shards, and one busy
//! shard cannot evict another's orders. Two generations: entries go into the young one;
//! when it is full the old one is dropped and the young one becomes old, so the cache holds
//! between one and two generations of the most recently seen orders, with no per-entry
//! bookkeeping. Keys are order numbers as integers (25 digits fit a `u128`): 16 bytes, not
//! a string each.

use std::collections::HashMap;
use std::sync::Mutex;

use orderflow_domain::{Shard, SHARD_COUNT};

/// Entries per generation and shard: with two generations at most 32 × 2 × 4,096 orders,
/// about 17 MB at the worst (every shard busy; a hash map of 4,096 entries has 8,192 slots
/// of 32 bytes), enough for the minutes in which an order's first status changes follow
/// each other fast (a flash sale of 30,000 orders is under 1,000 per shard).
pub(crate) const GENERATION: usize = 4_096;

/// A value per order number, per shard, bounded.
pub(crate) struct OrderCache<V> {
    /// A std Mutex per shard: a lookup or insert is a few hash operations, no await inside,
    /// and only the shard's own task takes it.
    shards: Vec<Mutex<Generations<V>>>,
    generation: usize,
}

struct Generations<V> {
    young: HashMap<u128, V>,
    old: HashMap<u128, V>,
}

/// The cache key of an order number (`None`: not all digits, never cached).
fn key(order_no: &str) -> Option<u128> {
    if order_no.is_empty() || !order_no.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    order_no.parse().ok()
}

impl<V: Copy> OrderCache<V> {
    pub(crate) fn new() -> Self {
        Self::with_generation(GENERATION)
    }

    pub(crate) fn with_generation(generation: usize) -> Self {
        let shards = (0..SHARD_COUNT)
            .map(|_| {
                Mutex::new(Generations {
                    young: HashMap::new(),
                    old: HashMap::new(),
                })
            })
            .collect();
        OrderCache {
            shards,
            generation: generation.max(1),
        }
    }

    fn shard(&self, shard: Shard) -> std::sync::MutexGuard<'_, Generations<V>> {
        self.shards[usize::from(shard.index())]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The value of each order number known, `None` for the others (in the given order).
    pub(crate) fn get_all<'a>(
        &self,
        shard: Shard,
        order_nos: impl IntoIterator<Item = &'a String>,
    ) -> Vec<(&'a String, Option<V>)> {
        let cache = self.shard(shard);
        order_nos
            .into_iter()
            .map(|no| {
                let value = key(no)
                    .and_then(|k| cache.young.get(&k).or_else(|| cache.old.get(&k)).copied());
                (no, value)
            })
            .collect()
    }

    /// Remembers each order number's value.
    pub(crate) fn put_all<'a>(
        &self,
        shard: Shard,
        entries: impl IntoIterator<Item = (&'a str, V)>,
    ) {
        let mut cache = self.shard(shard);
        for (no, value) in entries {
            let Some(k) = key(no) else { continue };
            if cache.young.len() >= self.generation {
                cache.old = std::mem::take(&mut cache.young);
            }
            cache.young.insert(k, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no(n: u64) -> String {
        format!("20261122071712345{n:08}")
    }

    #[test]
    fn remembers_per_shard_up_to_two_generations() {
        let cache: OrderCache<i16> = OrderCache::with_generation(2);
        let (s0, s1) = (Shard::of_id(0), Shard::of_id(1));
        let nos: Vec<String> = (0..5).map(no).collect();
        cache.put_all(s0, nos.iter().map(|n| (n.as_str(), 7)));
        // 0 and 1 filled the first generation, 2 and 3 the second, 4 started a third: the
        // first is gone.
        let got: Vec<Option<i16>> = cache.get_all(s0, &nos).into_iter().map(|e| e.1).collect();
        assert_eq!(got, [None, None, Some(7), Some(7), Some(7)]);
        // Another shard's cache is its own.
        assert_eq!(cache.get_all(s1, &nos[4..])[0].1, None);
    }

    #[test]
    fn what_is_not_an_order_number_is_never_cached() {
        let cache: OrderCache<i16> = OrderCache::with_generation(4);
        let shard = Shard::of_id(0);
        let odd = ["x1".to_owned(), String::new(), "9".repeat(40)];
        cache.put_all(shard, odd.iter().map(|n| (n.as_str(), 1)));
        assert!(cache.get_all(shard, &odd).iter().all(|e| e.1.is_none()));
    }
}
