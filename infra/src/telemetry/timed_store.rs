//! An event store that times its appends: wraps any adapter, so the append latency metric
//! covers every write path (executor, stock writers, saga batches) of whichever backend runs.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use orderflow_domain::{Shard, StreamId};

use super::{APPENDED_EVENTS, APPEND_DURATION};
use crate::store::{
    AppendOutcome, AppendRequest, ClaimKey, EventStore, Position, RecordedEvent, StoreError,
    Subscription,
};

pub struct TimedEventStore {
    inner: Arc<dyn EventStore>,
}

impl TimedEventStore {
    pub fn wrap(inner: Arc<dyn EventStore>) -> Arc<dyn EventStore> {
        Arc::new(TimedEventStore { inner })
    }
}

/// The label of an append's result: a lost race is normal traffic, not an error.
fn outcome(result: &Result<AppendOutcome, StoreError>) -> &'static str {
    match result {
        Ok(o) if o.deduplicated => "deduplicated",
        Ok(_) => "ok",
        Err(StoreError::Conflict { .. }) => "conflict",
        Err(_) => "error",
    }
}

#[async_trait]
impl EventStore for TimedEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let events = request.events.len() as u64;
        let started = Instant::now();
        let result = self.inner.append(request).await;
        let outcome = outcome(&result);
        metrics::histogram!(APPEND_DURATION, "op" => "append", "outcome" => outcome)
            .record(started.elapsed());
        if outcome == "ok" {
            metrics::counter!(APPENDED_EVENTS).increment(events);
        }
        result
    }

    async fn append_group(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let events: u64 = requests.iter().map(|r| r.events.len() as u64).sum();
        let started = Instant::now();
        let result = self.inner.append_group(requests).await;
        let label = match &result {
            Ok(outcomes) if outcomes.iter().any(|o| o.deduplicated) => "deduplicated",
            Ok(_) => "ok",
            Err(StoreError::Conflict { .. } | StoreError::GroupPartlyStored { .. }) => "conflict",
            Err(_) => "error",
        };
        metrics::histogram!(APPEND_DURATION, "op" => "append_group", "outcome" => label)
            .record(started.elapsed());
        if label == "ok" {
            metrics::counter!(APPENDED_EVENTS).increment(events);
        }
        result
    }

    async fn append_claimed(
        &self,
        claim: ClaimKey,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let events = request.events.len() as u64;
        let started = Instant::now();
        let result = self.inner.append_claimed(claim, request).await;
        let label = match &result {
            Err(StoreError::AlreadyClaimed { .. }) => "conflict",
            other => outcome(other),
        };
        metrics::histogram!(APPEND_DURATION, "op" => "append_claimed", "outcome" => label)
            .record(started.elapsed());
        if label == "ok" {
            metrics::counter!(APPENDED_EVENTS).increment(events);
        }
        result
    }

    async fn claimed(&self, claim: &ClaimKey) -> Result<Option<StreamId>, StoreError> {
        self.inner.claimed(claim).await
    }

    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<AppendOutcome, StoreError>> {
        let sizes: Vec<u64> = requests.iter().map(|r| r.events.len() as u64).collect();
        let started = Instant::now();
        let results = self.inner.append_many(requests).await;
        let elapsed = started.elapsed();
        let mut appended = 0;
        for (result, events) in results.iter().zip(sizes) {
            let outcome = outcome(result);
            metrics::histogram!(APPEND_DURATION, "op" => "append_many", "outcome" => outcome)
                .record(elapsed);
            if outcome == "ok" {
                appended += events;
            }
        }
        metrics::counter!(APPENDED_EVENTS).increment(appended);
        results
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from_version, limit).await
    }

    async fn read_shard(
        &self,
        shard: Shard,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_shard(shard, after, limit).await
    }

    async fn head(&self, shard: Shard) -> Result<Position, StoreError> {
        self.inner.head(shard).await
    }

    fn subscribe(&self, shard: Shard, after: Position) -> Subscription {
        self.inner.subscribe(shard, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryEventStore;

    // The wrapper changes nothing of what the store promises.
    crate::store_conformance_suite!(timed_memory, async {
        TimedEventStore::wrap(Arc::new(MemoryEventStore::new()))
    });
}
