//! Several PostgreSQL projections applied together: one transaction for all of them, for a
//! batch of one or more shards, instead of one per projection and shard.
//!
//! Each member keeps its own checkpoint row (`projection:{name}`), so a member can still be
//! rebuilt and swapped in alone (`orderflow replay`), and may stand at another position than
//! the others (after such a swap, or a member added later): the group follows each shard from
//! the lowest of its members' checkpoints, and each member skips what its own row covers.
//!
//! **Shards share transactions.** The projector hands each shard's batch to
//! [`ProjectionGroup::apply`] from the shard's own task. A batch costs about 4 ms of CPU
//! whatever its size (a dozen statements, their plans, the round trips, the commit) and
//! each event about 50 µs more (`projections/tests/live_speed.rs`), so 32 shards committing
//! small batches apart spent most of the machine on the fixed part, and under a flash sale
//! the projectors fell seconds behind. So batches wait in a queue, and at most [`LANES`]
//! transactions run at once: whoever gets a lane takes the queued batches (one per shard, up
//! to [`COMBINED_EVENTS`] events) and applies them together, with one statement per table
//! for all of them. An idle projector still applies a lone batch at once; a busy one
//! applies larger ones less often. Each caller gets its own shard's outcome.
//!
//! A combined batch: `BEGIN`; `synchronous_commit` off, every member's row of every shard in
//! it created if missing, locked `FOR UPDATE` (sorted by name, then shard) and moved to the
//! shard's last event (never back), in one round trip; each member with events past its
//! checkpoints writes its rows ([`PgProjection::apply_in`]), all at once (pipelined on the
//! connection), then those that share rows across shards; `COMMIT`. Any member failing rolls
//! the whole batch back: no member's rows or checkpoints move. The shards are then applied
//! again one by one, each in its own transaction, so a shard whose events a member cannot
//! apply fails alone and its caller retries it; the others go on. Shards whose events none
//! of the members reads only move their checkpoints, all in one statement ([`skip_batch`]).
//!
//! Why it cannot deadlock: docs/read-side.md, "Lock order". In short, checkpoint rows are
//! always locked in ascending `(name, shard)` order, and two transactions running at once
//! never hold one shard (a shard has one batch in flight, and a lane takes each shard once);
//! no member writes a row before every member's checkpoint row is locked, so a rebuild
//! holding one member's checkpoint rows (and then taking its tables for the swap) never
//! waits for a group transaction that has touched that member's tables; and rows two shards
//! write (none today) would be written sorted by key, by a member that says it shares rows,
//! at the end of the transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use orderflow_domain::Shard;
use orderflow_infra::store::{Position, RecordedEvent};

use tokio::sync::{oneshot, Semaphore};

use super::{skip_batch, touches, write_batch, PgProjection};
use crate::error::ProjectionError;
use crate::group::ProjectionGroup;
use crate::model::{BatchOutcome, RowChange};

/// PostgreSQL projections applied together, queued shards' batches in one transaction. Cheap
/// to clone.
#[derive(Clone)]
pub struct PgProjectionGroup {
    pool: Pool,
    /// In the order they are applied: the ones that share rows across shards last.
    members: Arc<Vec<Arc<dyn PgProjection>>>,
    /// Their names, in the same order.
    names: Arc<Vec<&'static str>>,
    /// Shards' batches waiting for a transaction.
    queue: Arc<Mutex<Vec<Pending>>>,
    /// One permit per transaction that may run at once.
    lanes: Arc<Semaphore>,
}

/// Transactions a group runs at once by default. Under a backlog (every shard's batch
/// queued) the lanes split it; with two and up to 4,096 events each, the projectors held
/// two backends and got too small a share of a saturated machine: in a flash sale (ABBA,
/// docs/BENCHMARKS.md, session 6) eight lanes of at most 768 events each had the views lag
/// p99 8–9 s instead of 11.6, at the same submit rate.
pub const LANES: usize = 8;

/// Most events a combined transaction takes (a lone batch may be larger: the projector's
/// batch size bounds that): three shards' full batches.
pub const COMBINED_EVENTS: usize = 768;

/// One shard's batch, queued for a lane.
struct Pending {
    shard: Shard,
    events: Vec<RecordedEvent>,
    reply: oneshot::Sender<Result<BatchOutcome, ProjectionError>>,
}

impl PgProjectionGroup {
    /// `pool`: the read models' database (the members' own, where their checkpoints are).
    ///
    /// # Panics
    /// If two members have one name: they would both apply each batch on one checkpoint.
    pub fn new(pool: Pool, members: Vec<Arc<dyn PgProjection>>) -> Self {
        let mut members = members;
        // Stable: the given order otherwise.
        members.sort_by_key(|m| m.shares_rows());
        let names: Vec<&'static str> = members.iter().map(|m| m.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            names.len(),
            "a projection group holds each projection once: {names:?}"
        );
        PgProjectionGroup {
            pool,
            members: Arc::new(members),
            names: Arc::new(names),
            queue: Arc::new(Mutex::new(Vec::new())),
            lanes: Arc::new(Semaphore::new(LANES)),
        }
    }

    /// The queued batches a lane takes: each shard once (the first, in arrival order), up to
    /// [`COMBINED_EVENTS`] events (at least one batch). Batches nobody waits for any more
    /// (their projector stopped) are dropped: their events come again after a restart.
    fn take(&self) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.retain(|p| !p.reply.is_closed());
        let mut taken: Vec<Pending> = Vec::new();
        let mut events = 0;
        let mut left = Vec::with_capacity(queue.len());
        for pending in queue.drain(..) {
            let fits = taken.is_empty() || events + pending.events.len() <= COMBINED_EVENTS;
            if fits && !taken.iter().any(|t| t.shard == pending.shard) {
                events += pending.events.len();
                taken.push(pending);
            } else {
                left.push(pending);
            }
        }
        *queue = left;
        taken
    }

    /// Applies the batches `work` took, combined, and answers each caller; if the combined
    /// transaction fails, each batch alone.
    async fn run(&self, work: Vec<Pending>) {
        if work.len() > 1 {
            let parts: Vec<(Shard, &[RecordedEvent])> = work
                .iter()
                .map(|p| (p.shard, p.events.as_slice()))
                .collect();
            match self.apply_combined(&parts).await {
                Ok(outcomes) => {
                    for (pending, outcome) in work.into_iter().zip(outcomes) {
                        let _ = pending.reply.send(Ok(outcome));
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, shards = work.len(), "combined projection batch failed; applying each shard alone");
                }
            }
        }
        for pending in work {
            let outcome = self
                .apply_combined(&[(pending.shard, &pending.events)])
                .await
                .map(|mut outcomes| outcomes.pop().unwrap_or_default());
            let _ = pending.reply.send(outcome);
        }
    }

    /// `parts` (each shard once) in one transaction; the outcome of each, in their order.
    async fn apply_combined(
        &self,
        parts: &[(Shard, &[RecordedEvent])],
    ) -> Result<Vec<BatchOutcome>, ProjectionError> {
        let reads =
            |events: &[RecordedEvent]| self.members.iter().any(|m| touches(events, m.reads()));
        let skipped: Vec<(Shard, Position)> = parts
            .iter()
            .filter(|(_, events)| !reads(events))
            .filter_map(|(shard, events)| events.last().map(|e| (*shard, e.position)))
            .collect();
        skip_batch(&self.pool, &self.names, &skipped).await?;
        let written: Vec<(Shard, &[RecordedEvent])> = parts
            .iter()
            .filter(|(_, events)| reads(events))
            .copied()
            .collect();
        let mut by_shard: HashMap<Shard, Vec<RowChange>> = HashMap::new();
        if !written.is_empty() {
            let members: Vec<&dyn PgProjection> = self.members.iter().map(|m| m.as_ref()).collect();
            for change in write_batch(&self.pool, &members, &written).await? {
                by_shard.entry(change.shard).or_default().push(change);
            }
        }
        Ok(parts
            .iter()
            .map(|(shard, _)| BatchOutcome {
                changes: by_shard.remove(shard).unwrap_or_default(),
            })
            .collect())
    }
}

#[async_trait]
impl ProjectionGroup for PgProjectionGroup {
    fn names(&self) -> Vec<&'static str> {
        self.names.to_vec()
    }

    async fn checkpoints(&self) -> Result<Vec<HashMap<Shard, Position>>, ProjectionError> {
        let mut all = Vec::with_capacity(self.members.len());
        for member in self.members.iter() {
            all.push(member.checkpoints().await?);
        }
        Ok(all)
    }

    /// Queues the batch and waits for its outcome: applied by this caller, with whatever
    /// else is queued, as soon as a lane is free, or by another caller's lane.
    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        if events.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let (reply, mut answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending {
                shard,
                events: events.to_vec(),
                reply,
            });
        let abandoned = || ProjectionError::Unavailable("projection batch abandoned".into());
        loop {
            let lane = tokio::select! {
                biased;
                outcome = &mut answer => return outcome.unwrap_or_else(|_| Err(abandoned())),
                lane = self.lanes.acquire() => lane,
            };
            let Ok(_lane) = lane else {
                return Err(abandoned());
            };
            let work = self.take();
            if work.is_empty() {
                // Another lane has ours: its answer comes.
                return (&mut answer).await.unwrap_or_else(|_| Err(abandoned()));
            }
            self.run(work).await;
        }
    }
}
