//! One decorator for the tests that make a deadline store fail at a chosen call: it forwards
//! everything to the store it wraps, except where a switch is on.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::*;

pub(super) struct FaultyStore {
    pub(super) inner: Arc<dyn DeadlineStore>,
    /// The next `complete` fails, as if the process died right after the command was appended
    /// and before the deadline was marked (then the switch turns itself off).
    pub(super) crash_before_complete: AtomicBool,
    /// `cancel_many` fails while set.
    pub(super) cancels_down: AtomicBool,
}

impl FaultyStore {
    /// `inner` with every switch off.
    pub(super) fn over(inner: Arc<dyn DeadlineStore>) -> Self {
        FaultyStore {
            inner,
            crash_before_complete: AtomicBool::new(false),
            cancels_down: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl DeadlineStore for FaultyStore {
    async fn schedule(&self, d: Deadline) -> Result<bool, DeadlineStoreError> {
        self.inner.schedule(d).await
    }
    async fn cancel(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError> {
        self.inner.cancel(key).await
    }
    async fn schedule_many(&self, d: Vec<Deadline>) -> Result<Vec<bool>, DeadlineStoreError> {
        self.inner.schedule_many(d).await
    }
    async fn cancel_many(&self, keys: &[DeadlineKey]) -> Result<Vec<bool>, DeadlineStoreError> {
        if self.cancels_down.load(Ordering::SeqCst) {
            return Err(DeadlineStoreError::Unavailable("down".into()));
        }
        self.inner.cancel_many(keys).await
    }
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Deadline>, DeadlineStoreError> {
        self.inner.due(now, limit).await
    }
    async fn claim(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Deadline>, DeadlineStoreError> {
        self.inner.claim(now, limit, lease).await
    }
    async fn prune(&self, before: Timestamp, limit: usize) -> Result<u64, DeadlineStoreError> {
        self.inner.prune(before, limit).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, DeadlineStoreError> {
        self.inner.next_due().await
    }
    async fn complete(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError> {
        if self.crash_before_complete.swap(false, Ordering::SeqCst) {
            return Err(DeadlineStoreError::Unavailable("crashed".into()));
        }
        self.inner.complete(key).await
    }
    async fn postpone(
        &self,
        key: &DeadlineKey,
        due_at: Timestamp,
        failure: Option<&str>,
    ) -> Result<Option<u32>, DeadlineStoreError> {
        self.inner.postpone(key, due_at, failure).await
    }
    async fn park(&self, key: &DeadlineKey, error: &str) -> Result<bool, DeadlineStoreError> {
        self.inner.park(key, error).await
    }
    async fn count_open(&self) -> Result<u64, DeadlineStoreError> {
        self.inner.count_open().await
    }
}
