//! Deciding a batch in memory: which queued appends commit, at which positions, and what
//! every other one is answered.
//!
//! The writer has locked the heads of the batch's shards and looked up, in one query each,
//! the current version of every stream in the batch and the stored outcome of every command
//! id in it. From there each append is decided in FIFO order, seeing the appends accepted
//! before it in the same batch, exactly as if they had been committed one by one. A group
//! (`EventStore::append_group`) is one job: its appends are decided in order and, if one is
//! refused, what the others did to the batch's view is undone, so none of them is written.

use std::collections::{HashMap, HashSet};

use orderflow_domain::{Shard, StreamId, Timestamp, SHARD_COUNT};
use tokio::sync::oneshot;

use super::codec::PendingAppend;
use crate::store::{AppendOutcome, ClaimKey, Position, StoreError};

/// A queued append, or append group, and the caller waiting for its answer.
pub(super) struct Job {
    /// One append, or the appends of a group (distinct streams of one shard), decided and
    /// written together.
    pub appends: Vec<PendingAppend>,
    /// `EventStore::append_claimed`'s claim, pointing to the job's one append's stream.
    pub claim: Option<ClaimKey>,
    pub reply: Reply,
}

/// Where a job's answer goes: `append` waits for one outcome, `append_group` for all.
pub(super) enum Reply {
    One(oneshot::Sender<Result<AppendOutcome, StoreError>>),
    Group(oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>),
}

impl Job {
    /// Events the job writes if accepted.
    pub fn events(&self) -> usize {
        self.appends.iter().map(|a| a.events.len()).sum()
    }

    /// `result` holds one outcome per append of the job.
    pub fn answer(self, result: Result<Vec<AppendOutcome>, StoreError>) {
        // The caller may have given up waiting (its future dropped); the append stands.
        match self.reply {
            Reply::One(reply) => {
                let one = result.and_then(|outcomes| {
                    outcomes
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Unavailable("no outcome".into()))
                });
                let _ = reply.send(one);
            }
            Reply::Group(reply) => {
                let _ = reply.send(result);
            }
        }
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
    /// The stream each recorded claim of the batch points to, by (shard, claim key).
    pub claims: HashMap<(i16, String), String>,
    /// The transaction's start (`now()`): the `recorded_at` of every event it writes.
    pub recorded_at: Option<Timestamp>,
}

/// The fate of one job of the batch (one outcome per append of the job).
#[derive(Debug)]
pub(super) enum Decision {
    /// Insert it; these are its outcomes once committed.
    Write(Vec<AppendOutcome>),
    /// Answer this without writing anything (a conflict, a repeated command).
    Answer(Result<Vec<AppendOutcome>, StoreError>),
}

/// Decides every job in order. Afterwards `known.heads` holds the new head of each shard.
pub(super) fn decide(jobs: &[Job], known: &mut Known) -> Vec<Decision> {
    let mut batch_event_ids = HashSet::new();
    jobs.iter()
        .map(|job| match (job.appends.as_slice(), &job.claim) {
            ([one], Some(claim)) => decide_claimed(one, claim, known, &mut batch_event_ids),
            ([one], None) => match decide_one(one, known, &mut batch_event_ids) {
                One::Write(outcome) => Decision::Write(vec![outcome]),
                One::Answer(result) => Decision::Answer(result.map(|o| vec![o])),
            },
            (group, _) => decide_group(group, known, &mut batch_event_ids),
        })
        .collect()
}

/// The key of a claim in [`Known::claims`].
pub(super) fn claim_key(claim: &ClaimKey) -> (i16, String) {
    (i16::from(claim.shard().index()), claim.as_str().to_owned())
}

/// A claimed append: a recorded claim refuses it (unless it is the repeat of the append that
/// took it), else it is decided as any append and, if written, takes the claim, so a later
/// job of the batch with the same claim is refused as if this one had committed.
fn decide_claimed(
    append: &PendingAppend,
    claim: &ClaimKey,
    known: &mut Known,
    batch_event_ids: &mut HashSet<uuid::Uuid>,
) -> Decision {
    let key = claim_key(claim);
    if let Some(stream) = known.claims.get(&key) {
        if stream.as_str() == append.stream.as_str() {
            if let Some(first) = known.commands.get(&command_key(append)) {
                return Decision::Answer(Ok(vec![AppendOutcome {
                    deduplicated: true,
                    ..*first
                }]));
            }
        }
        return Decision::Answer(Err(match StreamId::parse(stream) {
            Ok(stream) => StoreError::AlreadyClaimed {
                key: claim.as_str().to_owned(),
                stream,
            },
            Err(e) => StoreError::Unavailable(format!("claim {claim} names a bad stream: {e}")),
        }));
    }
    match decide_one(append, known, batch_event_ids) {
        One::Write(outcome) => {
            known.claims.insert(key, append.stream.as_str().to_owned());
            Decision::Write(vec![outcome])
        }
        One::Answer(result) => Decision::Answer(result.map(|o| vec![o])),
    }
}

/// The fate of one append.
enum One {
    Write(AppendOutcome),
    Answer(Result<AppendOutcome, StoreError>),
}

fn command_key(append: &PendingAppend) -> (String, String) {
    (
        append.stream.as_str().to_owned(),
        append.metadata.command_id.as_str().to_owned(),
    )
}

/// A group: all repeats → the first outcomes; some repeats → nothing; else each append is
/// decided in order, and the first refusal undoes what the earlier ones did to `known`.
fn decide_group(
    group: &[PendingAppend],
    known: &mut Known,
    batch_event_ids: &mut HashSet<uuid::Uuid>,
) -> Decision {
    let stored: Vec<Option<AppendOutcome>> = group
        .iter()
        .map(|a| known.commands.get(&command_key(a)).copied())
        .collect();
    if stored.iter().all(Option::is_some) {
        return Decision::Answer(Ok(stored
            .into_iter()
            .flatten()
            .map(|first| AppendOutcome {
                deduplicated: true,
                ..first
            })
            .collect()));
    }
    if let Some((repeat, _)) = group.iter().zip(&stored).find(|(_, s)| s.is_some()) {
        return Decision::Answer(Err(StoreError::GroupPartlyStored {
            stream: repeat.stream.clone(),
            command_id: repeat.metadata.command_id.to_string(),
        }));
    }
    let heads = known.heads;
    let mut written: Vec<(&PendingAppend, Option<u64>)> = Vec::new();
    let mut outcomes = Vec::with_capacity(group.len());
    for append in group {
        let before = known.versions.get(append.stream.as_str()).copied();
        match decide_one(append, known, batch_event_ids) {
            One::Write(outcome) => {
                written.push((append, before));
                outcomes.push(outcome);
            }
            One::Answer(result) => {
                known.heads = heads;
                for (append, before) in written {
                    let stream = append.stream.as_str();
                    match before {
                        Some(version) => known.versions.insert(stream.to_owned(), version),
                        None => known.versions.remove(stream),
                    };
                    known.commands.remove(&command_key(append));
                    for event in &append.events {
                        batch_event_ids.remove(&event.event_id);
                    }
                }
                // Streams are distinct and no command of the group was stored, so an
                // append of the group is never answered as a repeat.
                let error = result
                    .err()
                    .unwrap_or_else(|| StoreError::GroupPartlyStored {
                        stream: append.stream.clone(),
                        command_id: append.metadata.command_id.to_string(),
                    });
                return Decision::Answer(Err(error));
            }
        }
    }
    Decision::Write(outcomes)
}

fn decide_one(
    append: &PendingAppend,
    known: &mut Known,
    batch_event_ids: &mut HashSet<uuid::Uuid>,
) -> One {
    let stream = append.stream.as_str();
    let command_key = command_key(append);
    // Idempotency first, as the trait says: a repeat is answered even if stale.
    if let Some(first) = known.commands.get(&command_key) {
        return One::Answer(Ok(AppendOutcome {
            deduplicated: true,
            ..*first
        }));
    }
    let current = known.versions.get(stream).copied().unwrap_or(0);
    if let Err(conflict) = append.expected.check(&append.stream, current) {
        return One::Answer(Err(conflict));
    }
    // Event ids repeated inside the batch; repeats of stored ids surface as a unique
    // violation of the insert, and the batch is then retried one append at a time.
    let mut own = HashSet::new();
    for event in &append.events {
        if batch_event_ids.contains(&event.event_id) || !own.insert(event.event_id) {
            return One::Answer(Err(StoreError::DuplicateEventId(event.event_id)));
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
    One::Write(outcome)
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
