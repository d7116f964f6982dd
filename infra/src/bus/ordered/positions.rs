//! A position per shard, as a fixed array indexed by shard.
//!
//! The ordered consumer looks up and moves a shard's position for every message it receives
//! (about eight per submit in a flash sale, each consumer receiving every event). With 32
//! shards an array is the whole map: no hashing, no allocation, and a copy is 512 bytes. A
//! simplification more than a speed-up: the consumer's hashing was about 0.03% of the
//! process's CPU in the flash-sale profile (docs/BENCHMARKS.md, session 6).

use std::collections::HashMap;

use orderflow_domain::{Shard, SHARD_COUNT};

use crate::store::Position;

/// Some shards' positions; a shard without one is absent (not `Position::ZERO`: "moved to 0"
/// and "not moved" differ for the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ShardPositions([Option<Position>; SHARD_COUNT as usize]);

impl Default for ShardPositions {
    fn default() -> Self {
        ShardPositions([None; SHARD_COUNT as usize])
    }
}

impl ShardPositions {
    pub fn get(&self, shard: Shard) -> Option<Position> {
        self.0[usize::from(shard.index())]
    }

    pub fn insert(&mut self, shard: Shard, position: Position) {
        self.0[usize::from(shard.index())] = Some(position);
    }

    /// Sets the shard's position to the higher of the one held and `position`.
    pub fn raise(&mut self, shard: Shard, position: Position) {
        let slot = &mut self.0[usize::from(shard.index())];
        *slot = Some(slot.map_or(position, |held| held.max(position)));
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The shards that have a position, in shard order.
    pub fn iter(&self) -> impl Iterator<Item = (Shard, Position)> + '_ {
        Shard::all().filter_map(|shard| self.get(shard).map(|p| (shard, p)))
    }

    /// `later`'s positions replace these on every shard it has (a later batch's positions
    /// are past an earlier one's).
    pub fn extend(&mut self, later: &ShardPositions) {
        for (slot, later) in self.0.iter_mut().zip(later.0) {
            if later.is_some() {
                *slot = later;
            }
        }
    }

    /// Every position, leaving none.
    pub fn take(&mut self) -> Vec<(Shard, Position)> {
        let taken = self.iter().collect();
        *self = ShardPositions::default();
        taken
    }
}

impl From<HashMap<Shard, Position>> for ShardPositions {
    fn from(map: HashMap<Shard, Position>) -> Self {
        let mut positions = ShardPositions::default();
        for (shard, position) in map {
            positions.insert(shard, position);
        }
        positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(n: u8) -> Shard {
        Shard::new(n).unwrap()
    }

    #[test]
    fn absent_until_inserted_and_iterated_in_shard_order() {
        let mut p = ShardPositions::default();
        assert!(p.is_empty());
        assert_eq!(p.get(shard(3)), None);
        p.insert(shard(31), Position::new(2));
        p.insert(shard(3), Position::ZERO);
        assert!(!p.is_empty());
        assert_eq!(p.get(shard(3)), Some(Position::ZERO));
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![(shard(3), Position::ZERO), (shard(31), Position::new(2))]
        );
    }

    #[test]
    fn raise_keeps_the_highest_and_take_empties() {
        let mut p = ShardPositions::default();
        p.raise(shard(0), Position::new(5));
        p.raise(shard(0), Position::new(4));
        assert_eq!(p.get(shard(0)), Some(Position::new(5)));
        p.raise(shard(0), Position::new(6));
        assert_eq!(p.take(), vec![(shard(0), Position::new(6))]);
        assert!(p.is_empty());
    }

    #[test]
    fn extend_takes_the_later_positions_where_it_has_them() {
        let mut earlier = ShardPositions::default();
        earlier.insert(shard(1), Position::new(10));
        earlier.insert(shard(2), Position::new(20));
        let mut later = ShardPositions::default();
        later.insert(shard(2), Position::new(21));
        later.insert(shard(9), Position::new(1));
        earlier.extend(&later);
        assert_eq!(
            earlier.iter().collect::<Vec<_>>(),
            vec![
                (shard(1), Position::new(10)),
                (shard(2), Position::new(21)),
                (shard(9), Position::new(1)),
            ]
        );
    }

    #[test]
    fn from_a_loaded_checkpoint() {
        let map = HashMap::from([(shard(7), Position::new(70))]);
        let p = ShardPositions::from(map);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![(shard(7), Position::new(70))]
        );
    }
}
