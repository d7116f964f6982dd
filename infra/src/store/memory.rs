//! The in-memory event store: the embedded mode and fast tests.
//!
//! Same contract as the PostgreSQL store (the conformance suite runs against both): the
//! concurrency check, idempotency by command id with no time window, per-shard gap-free
//! positions, FIFO per shard, the limits, and catch-up-then-live subscriptions. Nothing
//! survives the process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use orderflow_domain::{Shard, StreamId, Timestamp, SHARD_COUNT};
use uuid::Uuid;

use super::follow::{follow, FollowConfig, Heads};
use super::{
    AppendOutcome, AppendRequest, ClaimKey, EventStore, Position, RecordedEvent, StoreError,
    StoreLimits, Subscription,
};

/// Events a subscription takes from the log per lock.
const SUBSCRIPTION_PAGE: usize = 512;

/// An event store held in this process's memory. Cheap to clone (all clones share the data).
#[derive(Clone)]
pub struct MemoryEventStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// A std Mutex, not a tokio one: every critical section is a few map operations with no
    /// await while held, and one lock for everything makes an append atomic across the
    /// stream's version, its command ids and the shard's log.
    state: Mutex<State>,
    /// Each shard's head, bumped after every commit; subscribers wait on it.
    heads: Heads,
    limits: StoreLimits,
}

#[derive(Default)]
struct State {
    /// Each shard's log; the event at position `p` is at index `p - 1`.
    shards: Vec<Vec<RecordedEvent>>,
    streams: HashMap<StreamId, StreamLog>,
    event_ids: HashSet<Uuid>,
    /// Every claim recorded, and the stream it points to.
    claims: HashMap<ClaimKey, StreamId>,
}

#[derive(Default)]
struct StreamLog {
    /// Position of each event of the stream; version `v` is at index `v - 1`.
    positions: Vec<Position>,
    /// The outcome of every command appended to this stream, forever.
    commands: HashMap<super::CommandId, AppendOutcome>,
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::with_limits(StoreLimits::default())
    }

    pub fn with_limits(limits: StoreLimits) -> Self {
        let state = State {
            shards: vec![Vec::new(); usize::from(SHARD_COUNT)],
            ..State::default()
        };
        MemoryEventStore {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                heads: Heads::new(),
                limits,
            }),
        }
    }
}

impl Default for MemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-done append (the state is only
        // written after every check passed), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_shard(&self, shard: Shard, after: Position, limit: usize) -> Vec<RecordedEvent> {
        let state = self.lock();
        let log = &state.shards[usize::from(shard.index())];
        let start = usize::try_from(after.get())
            .unwrap_or(usize::MAX)
            .min(log.len());
        log[start..].iter().take(limit).cloned().collect()
    }
}

fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}

impl State {
    fn append(&mut self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let shard = req.stream.shard();
        let stream = self.streams.get(&req.stream);
        // Idempotency comes first: a repeated command succeeds even if its expected version
        // is stale by now.
        if let Some(first) = stream.and_then(|s| s.commands.get(&req.metadata.command_id)) {
            return Ok(AppendOutcome {
                deduplicated: true,
                ..*first
            });
        }
        let current = stream.map_or(0, |s| s.positions.len() as u64);
        req.expected.check(&req.stream, current)?;
        let mut batch_ids = HashSet::new();
        for event in &req.events {
            if self.event_ids.contains(&event.event_id) || !batch_ids.insert(event.event_id) {
                return Err(StoreError::DuplicateEventId(event.event_id));
            }
        }

        // Every check passed: write.
        let log = &mut self.shards[usize::from(shard.index())];
        let first_position = Position::new(log.len() as u64 + 1);
        let recorded_at = now();
        let count = req.events.len() as u64;
        let stream_log = self.streams.entry(req.stream.clone()).or_default();
        for (i, event) in req.events.into_iter().enumerate() {
            let position = Position::new(first_position.get() + i as u64);
            self.event_ids.insert(event.event_id);
            stream_log.positions.push(position);
            log.push(RecordedEvent {
                shard,
                position,
                stream: req.stream.clone(),
                stream_version: current + 1 + i as u64,
                event_id: event.event_id,
                event_type: event.event_type,
                event_version: event.event_version,
                payload: event.payload,
                metadata: req.metadata.clone(),
                recorded_at,
            });
        }
        let outcome = AppendOutcome {
            shard,
            first_position,
            last_position: Position::new(first_position.get() + count - 1),
            first_version: current + 1,
            last_version: current + count,
            deduplicated: false,
        };
        stream_log.commands.insert(req.metadata.command_id, outcome);
        Ok(outcome)
    }
}

impl State {
    /// A claimed append: the claim first (a repeat of the claiming append is answered as
    /// `append` answers a repeat), then the append, and the claim only if it was written.
    fn append_claimed(
        &mut self,
        claim: ClaimKey,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(stream) = self.claims.get(&claim) {
            let repeat = (*stream == request.stream)
                .then(|| self.streams.get(stream))
                .flatten()
                .and_then(|s| s.commands.get(&request.metadata.command_id));
            return match repeat {
                Some(first) => Ok(AppendOutcome {
                    deduplicated: true,
                    ..*first
                }),
                None => Err(StoreError::AlreadyClaimed {
                    key: claim.as_str().to_owned(),
                    stream: stream.clone(),
                }),
            };
        }
        let stream = request.stream.clone();
        let outcome = self.append(request)?;
        self.claims.insert(claim, stream);
        Ok(outcome)
    }

    /// Checks a whole group before writing any of it (the group rules were checked by the
    /// caller: distinct streams, so no request can change another's checks).
    fn append_group(
        &mut self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let stored: Vec<Option<AppendOutcome>> = requests
            .iter()
            .map(|r| {
                self.streams
                    .get(&r.stream)
                    .and_then(|s| s.commands.get(&r.metadata.command_id))
                    .copied()
            })
            .collect();
        if stored.iter().all(Option::is_some) {
            return Ok(stored
                .into_iter()
                .flatten()
                .map(|first| AppendOutcome {
                    deduplicated: true,
                    ..first
                })
                .collect());
        }
        if let Some(repeat) = requests.iter().zip(&stored).find(|(_, s)| s.is_some()) {
            return Err(StoreError::GroupPartlyStored {
                stream: repeat.0.stream.clone(),
                command_id: repeat.0.metadata.command_id.to_string(),
            });
        }
        let mut group_ids = HashSet::new();
        for request in &requests {
            let current = self
                .streams
                .get(&request.stream)
                .map_or(0, |s| s.positions.len() as u64);
            request.expected.check(&request.stream, current)?;
            for event in &request.events {
                if self.event_ids.contains(&event.event_id) || !group_ids.insert(event.event_id) {
                    return Err(StoreError::DuplicateEventId(event.event_id));
                }
            }
        }
        // Every check passed, and `append` makes the same ones: none of these can fail.
        requests.into_iter().map(|r| self.append(r)).collect()
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append_group(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let shard = self.shared.limits.check_group(&requests)?;
        let outcomes = self.shared.lock().append_group(requests)?;
        if let Some(last) = outcomes.last().filter(|o| !o.deduplicated) {
            self.shared.heads.bump(shard, last.last_position);
        }
        Ok(outcomes)
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.shared.limits.check(&request)?;
        let outcome = self.shared.lock().append(request)?;
        if !outcome.deduplicated {
            // Outside the lock: `bump` keeps the maximum, so the order of bumps is free.
            self.shared.heads.bump(outcome.shard, outcome.last_position);
        }
        Ok(outcome)
    }

    async fn append_claimed(
        &self,
        claim: ClaimKey,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        self.shared.limits.check_claimed(&claim, &request)?;
        let outcome = self.shared.lock().append_claimed(claim, request)?;
        if !outcome.deduplicated {
            self.shared.heads.bump(outcome.shard, outcome.last_position);
        }
        Ok(outcome)
    }

    async fn claimed(&self, claim: &ClaimKey) -> Result<Option<StreamId>, StoreError> {
        Ok(self.shared.lock().claims.get(claim).cloned())
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.shared.lock();
        let Some(log) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let shard_log = &state.shards[usize::from(stream.shard().index())];
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(log
            .positions
            .iter()
            .skip(skip)
            .take(limit)
            .map(|p| shard_log[(p.get() - 1) as usize].clone())
            .collect())
    }

    async fn read_shard(
        &self,
        shard: Shard,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.shared.read_shard(shard, after, limit))
    }

    async fn head(&self, shard: Shard) -> Result<Position, StoreError> {
        Ok(Position::new(
            self.shared.lock().shards[usize::from(shard.index())].len() as u64,
        ))
    }

    fn subscribe(&self, shard: Shard, after: Position) -> Subscription {
        let head = self.shared.heads.watch(shard);
        let shared = Arc::clone(&self.shared);
        let config = FollowConfig {
            page: SUBSCRIPTION_PAGE,
            // Every commit bumps the head in this process: nothing can be missed.
            fallback_poll: None,
        };
        follow(head, after, config, move |after, limit| {
            let events = shared.read_shard(shard, after, limit);
            async move { Ok(events) }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryEventStore;
    use crate::store::EventStore;

    crate::store_conformance_suite!(conformance, async {
        Arc::new(MemoryEventStore::new()) as Arc<dyn EventStore>
    });
}
