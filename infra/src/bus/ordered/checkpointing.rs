//! Checkpoint before ack, off the consumer's loop.
//!
//! A save is a PostgreSQL round trip on the store's shared pool, and releasing its acks is one
//! bus call per message: measured in a flash sale (docs/BENCHMARKS.md), 0.1–0.5 s per save of
//! 1–2k acks, during which the consumer handled nothing. So a save runs in a task of its own
//! while the consumer goes on with the next batch. What it saves is a snapshot, taken when it
//! starts, of the positions moved so far and of the acks those positions cover; the acks go out
//! only once the save returned. Saves run one at a time, so positions reach the store in the
//! order they moved. A failed save gives its positions and acks back for the next one.
//!
//! The acks themselves only mark messages done in the [`AckFloor`]; a save ends with the
//! floor's one ack-all (`acks.rs`), so a save costs one ack on the bus, not one per message.

use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::Shard;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::acks::AckFloor;
use super::ShardPositions;
use crate::bus::{AckKind, Acker, CheckpointError, CheckpointStore, ConsumerError};
use crate::store::Position;

/// What a failed save gives back.
struct Unsaved {
    positions: Vec<(Shard, Position)>,
    acks: Vec<Box<dyn Acker>>,
    error: CheckpointError,
}

pub(super) struct Checkpointing {
    store: Arc<dyn CheckpointStore>,
    name: String,
    floor: Arc<AckFloor>,
    /// Shards whose position moved since the last save started.
    dirty: ShardPositions,
    /// Acks held until a save covering them has returned.
    held: Vec<Box<dyn Acker>>,
    last_flush: Instant,
    /// The save in progress. Aborted if the consumer is dropped (a crash, as far as the bus
    /// can tell: what it did not ack is redelivered).
    running: Option<AbortOnDropHandle<Result<(), Unsaved>>>,
}

impl Checkpointing {
    pub fn new(store: Arc<dyn CheckpointStore>, name: String, floor: Arc<AckFloor>) -> Self {
        Checkpointing {
            store,
            name,
            floor,
            dirty: ShardPositions::default(),
            held: Vec::new(),
            last_flush: Instant::now(),
            running: None,
        }
    }

    /// A shard's position moved (every event up to it handled or skipped).
    pub fn moved(&mut self, shard: Shard, position: Position) {
        self.dirty.raise(shard, position);
    }

    /// Holds an ack until a save started after this call has returned.
    pub fn hold(&mut self, acker: Box<dyn Acker>) {
        self.held.push(acker);
    }

    /// Starts a save in the background if `every` acks are held or `interval` has passed since
    /// the last one started. Waits only for a save still running from before (so at most one
    /// runs, and held acks cannot grow without bound when saves are slower than batches).
    pub async fn maybe_flush(&mut self, every: usize, interval: Duration) {
        if let Some(running) = &self.running {
            if running.is_finished() {
                self.reap().await;
            }
        }
        let due = self.held.len() >= every || self.last_flush.elapsed() >= interval;
        // Messages settled outside the checkpoint (dead letters, redriven ones) are acked by
        // a save too, even one with nothing to save.
        let idle = self.dirty.is_empty() && self.held.is_empty() && !self.floor.wants_flush();
        if !due || idle {
            return;
        }
        self.reap().await;
        let positions = self.dirty.take();
        let acks = std::mem::take(&mut self.held);
        let (store, name, floor) = (
            Arc::clone(&self.store),
            self.name.clone(),
            Arc::clone(&self.floor),
        );
        self.running = Some(AbortOnDropHandle::new(tokio::spawn(save_then_ack(
            store, name, floor, positions, acks,
        ))));
        self.last_flush = Instant::now();
    }

    /// Waits for the save in progress, then saves what is left and acks it (shutdown).
    pub async fn flush_now(&mut self) -> Result<(), ConsumerError> {
        self.reap().await;
        let positions = self.dirty.take();
        let acks = std::mem::take(&mut self.held);
        let result = save_then_ack(
            Arc::clone(&self.store),
            self.name.clone(),
            Arc::clone(&self.floor),
            positions,
            acks,
        );
        self.last_flush = Instant::now();
        match result.await {
            Ok(()) => Ok(()),
            Err(unsaved) => {
                let error = self.give_back(unsaved);
                Err(error.into())
            }
        }
    }

    /// Waits for the running save, if any; a failure puts its positions and acks back.
    async fn reap(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let unsaved = match running.await {
            Ok(Ok(())) => return,
            Ok(Err(unsaved)) => unsaved,
            // The save task panicked: nothing is known, so nothing was acked either; the
            // positions are gone with it, and the next save (or a redelivery) covers them.
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint save task failed");
                return;
            }
        };
        let error = self.give_back(unsaved);
        tracing::warn!(error = %error, "cannot save consumer checkpoint; retrying later");
    }

    fn give_back(&mut self, unsaved: Unsaved) -> CheckpointError {
        for (shard, position) in unsaved.positions {
            self.moved(shard, position);
        }
        // Older acks first; the order does not matter to the bus.
        let newer = std::mem::replace(&mut self.held, unsaved.acks);
        self.held.extend(newer);
        unsaved.error
    }
}

/// Saves the positions, then acks everything they cover (one ack-all, see `acks.rs`).
async fn save_then_ack(
    store: Arc<dyn CheckpointStore>,
    name: String,
    floor: Arc<AckFloor>,
    positions: Vec<(Shard, Position)>,
    acks: Vec<Box<dyn Acker>>,
) -> Result<(), Unsaved> {
    if !positions.is_empty() {
        if let Err(error) = store.save(&name, &positions).await {
            return Err(Unsaved {
                positions,
                acks,
                error,
            });
        }
    }
    // Each of these only marks its message done in the floor (no bus call)…
    for acker in &acks {
        if let Err(e) = acker.settle(AckKind::Ack).await {
            tracing::debug!(error = %e, "ack failed");
        }
    }
    // …and this sends the one ack-all that covers them, as far as nothing below is pending.
    floor.flush().await;
    Ok(())
}
