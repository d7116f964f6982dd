//! How far a projection has applied each shard, observable in memory.
//!
//! One `tokio::sync::watch` per shard, bumped by the projector right after a batch commits.
//! Queries wait on it for read-your-writes ([`Applied::wait_for`]) and long-polls wake on it
//! ([`Applied::watch`]), so nobody polls the database in a loop: a waiter costs a parked task
//! until the shard it cares about moves.

use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::Shard;
use orderflow_infra::store::{ConsistencyToken, Position};
use tokio::sync::watch;

/// The applied position of every shard of one projection. Cheap to clone (clones share).
#[derive(Clone)]
pub struct Applied {
    shards: Arc<Vec<watch::Sender<Position>>>,
}

/// A token the projection had not reached within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("read model is {behind} events behind on shard {shard} (applied {applied}, wanted {wanted})", shard = .shard.index())]
pub struct Behind {
    pub shard: Shard,
    pub applied: Position,
    pub wanted: Position,
    pub behind: u64,
}

impl Default for Applied {
    fn default() -> Self {
        Self::new()
    }
}

impl Applied {
    pub fn new() -> Self {
        Applied {
            shards: Arc::new(
                Shard::all()
                    .map(|_| watch::channel(Position::ZERO).0)
                    .collect(),
            ),
        }
    }

    fn sender(&self, shard: Shard) -> &watch::Sender<Position> {
        &self.shards[usize::from(shard.index())]
    }

    /// The last position applied on `shard`.
    pub fn position(&self, shard: Shard) -> Position {
        *self.sender(shard).borrow()
    }

    /// Every shard's applied position, shard 0 first.
    pub fn positions(&self) -> Vec<(Shard, Position)> {
        Shard::all().map(|s| (s, self.position(s))).collect()
    }

    /// Moves `shard` forward to `position` (never back) and wakes its waiters.
    pub fn advance(&self, shard: Shard, position: Position) {
        self.sender(shard).send_if_modified(|p| {
            let moved = position > *p;
            if moved {
                *p = position;
            }
            moved
        });
    }

    /// A receiver that changes each time `shard` moves: long-polls re-read on it.
    pub fn watch(&self, shard: Shard) -> watch::Receiver<Position> {
        self.sender(shard).subscribe()
    }

    /// Waits until the token's position is applied, at most `bound`.
    pub async fn wait_for(&self, token: ConsistencyToken, bound: Duration) -> Result<(), Behind> {
        let mut rx = self.watch(token.shard);
        let reached = tokio::time::timeout(bound, rx.wait_for(|p| *p >= token.position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            // Timed out, or the projection is gone (its sender dropped): behind either way.
            _ => {
                let applied = self.position(token.shard);
                if applied >= token.position {
                    return Ok(());
                }
                Err(Behind {
                    shard: token.shard,
                    applied,
                    wanted: token.position,
                    behind: token.position.get() - applied.get(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(shard: u8, position: u64) -> ConsistencyToken {
        ConsistencyToken::new(Shard::new(shard).unwrap(), Position::new(position))
    }

    #[tokio::test]
    async fn a_reached_position_answers_at_once() {
        let applied = Applied::new();
        applied.advance(Shard::new(3).unwrap(), Position::new(10));
        assert_eq!(applied.wait_for(token(3, 10), Duration::ZERO).await, Ok(()));
        assert_eq!(applied.wait_for(token(3, 4), Duration::ZERO).await, Ok(()));
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_shard_reaches_its_position() {
        let applied = Applied::new();
        let waiter = {
            let applied = applied.clone();
            tokio::spawn(
                async move { applied.wait_for(token(5, 2), Duration::from_secs(60)).await },
            )
        };
        applied.advance(Shard::new(5).unwrap(), Position::new(1));
        applied.advance(Shard::new(5).unwrap(), Position::new(2));
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn past_the_bound_it_says_how_far_behind() {
        let applied = Applied::new();
        applied.advance(Shard::new(1).unwrap(), Position::new(7));
        let err = applied
            .wait_for(token(1, 10), Duration::from_millis(1))
            .await
            .unwrap_err();
        assert_eq!(
            (err.applied.get(), err.wanted.get(), err.behind),
            (7, 10, 3)
        );
        assert_eq!(
            err.to_string(),
            "read model is 3 events behind on shard 1 (applied 7, wanted 10)"
        );
    }

    #[test]
    fn positions_never_move_back() {
        let applied = Applied::new();
        let s = Shard::new(0).unwrap();
        applied.advance(s, Position::new(9));
        applied.advance(s, Position::new(4));
        assert_eq!(applied.position(s), Position::new(9));
    }
}
