//! Deciding a batch in memory: which queued appends commit, at which positions, and what
//! every other one is answered.
//!
//! The writer has locked the heads of the batch's shards and looked up, in one query each,
//! the current version of every stream in the batch and the stored outcome of every command
//! id in it. From there each append is decided in FIFO order, seeing the appends accepted
//! before it in the same batch, exactly as if they had been committed one by one.

use std::collections::{HashMap, HashSet};

use orderflow_domain::{Shard, SHARD_COUNT};
use tokio::sync::oneshot;

use super::codec::PendingAppend;
use crate::store::{AppendOutcome, Position, StoreError};

/// A queued append and the caller waiting for its answer.
pub(super) struct Job {
    pub append: PendingAppend,
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

impl Job {
    pub fn answer(self, result: Result<AppendOutcome, StoreError>) {
        // The caller may have given up waiting (its future dropped); the append stands.
        let _ = self.reply.send(result);
    }
}

/// What the database said before the decision.
#[derive(Default)]
pub(super) struct Known {
    /// Locked head of each shard in the batch.
    pub heads: [Option<u64>; SHARD_COUNT as usize],
    /// Current version of each stream of the batch that exists.
    pub versions: HashMap<String, u64>,
    /// Stored outcome of each (stream, command id) of the batch that was already appended.
    pub commands: HashMap<(String, String), AppendOutcome>,
}

/// The fate of one job of the batch.
#[derive(Debug)]
pub(super) enum Decision {
    /// Insert it; this is its outcome once committed.
    Write(AppendOutcome),
    /// Answer this without writing anything (a conflict, a repeated command).
    Answer(Result<AppendOutcome, StoreError>),
}

/// Decides every job in order. Afterwards `known.heads` holds the new head of each shard.
pub(super) fn decide(jobs: &[Job], known: &mut Known) -> Vec<Decision> {
    let mut batch_event_ids = HashSet::new();
    jobs.iter()
        .map(|job| decide_one(&job.append, known, &mut batch_event_ids))
        .collect()
}

fn decide_one(
    append: &PendingAppend,
    known: &mut Known,
    batch_event_ids: &mut HashSet<uuid::Uuid>,
) -> Decision {
    let stream = append.stream.as_str();
    let command_key = (
        stream.to_owned(),
        append.metadata.command_id.as_str().to_owned(),
    );
    // Idempotency first, as the trait says: a repeat is answered even if stale.
    if let Some(first) = known.commands.get(&command_key) {
        return Decision::Answer(Ok(AppendOutcome {
            deduplicated: true,
            ..*first
        }));
    }
    let current = known.versions.get(stream).copied().unwrap_or(0);
    if let Err(conflict) = append.expected.check(&append.stream, current) {
        return Decision::Answer(Err(conflict));
    }
    // Event ids repeated inside the batch; repeats of stored ids surface as a unique
    // violation of the insert, and the batch is then retried one append at a time.
    let mut own = HashSet::new();
    for event in &append.events {
        if batch_event_ids.contains(&event.event_id) || !own.insert(event.event_id) {
            return Decision::Answer(Err(StoreError::DuplicateEventId(event.event_id)));
        }
    }
    batch_event_ids.extend(own);

    let shard = append.stream.shard();
    let head = known.heads[usize::from(shard.index())]
        .as_mut()
        .expect("the writer locked every shard of the batch");
    let count = append.events.len() as u64;
    let outcome = outcome(shard, *head + 1, current + 1, count);
    *head += count;
    known.versions.insert(stream.to_owned(), current + count);
    known.commands.insert(command_key, outcome);
    Decision::Write(outcome)
}

/// The outcome of `count` events starting at `first_position` and `first_version`.
pub(super) fn outcome(
    shard: Shard,
    first_position: u64,
    first_version: u64,
    count: u64,
) -> AppendOutcome {
    AppendOutcome {
        shard,
        first_position: Position::new(first_position),
        last_position: Position::new(first_position + count - 1),
        first_version,
        last_version: first_version + count - 1,
        deduplicated: false,
    }
}
