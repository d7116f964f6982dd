//! Deadlines in memory: the embedded mode and fast tests. Nothing survives the process, which
//! is what embedded mode promises (its event store is in memory too).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::Timestamp;

use crate::clock::{Clock, SystemClock};

use super::{Deadline, DeadlineKey, DeadlineStore, DeadlineStoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fired,
    Cancelled,
    Parked,
}

#[derive(Debug)]
struct Entry {
    deadline: Deadline,
    last_error: Option<String>,
    closed: Option<Outcome>,
    /// When it was closed, by the wall clock (as PostgreSQL's `now()`), for `prune`.
    closed_at: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<DeadlineKey, Entry>,
    /// The open deadlines by due time, then key: `due` reads it in order.
    open: BTreeSet<(Timestamp, DeadlineKey)>,
}

impl Inner {
    /// Stores the deadline unless its key exists, open or closed (the first wins).
    fn insert(&mut self, deadline: Deadline) -> bool {
        if self.entries.contains_key(&deadline.key) {
            return false;
        }
        self.open.insert((deadline.due_at, deadline.key.clone()));
        self.entries.insert(
            deadline.key.clone(),
            Entry {
                deadline: Deadline {
                    attempts: 0,
                    ..deadline
                },
                last_error: None,
                closed: None,
                closed_at: None,
            },
        );
        true
    }

    fn close(&mut self, key: &DeadlineKey, outcome: Outcome) -> Option<&mut Entry> {
        let entry = self.entries.get_mut(key).filter(|e| e.closed.is_none())?;
        self.open.remove(&(entry.deadline.due_at, key.clone()));
        entry.closed = Some(outcome);
        entry.closed_at = Some(SystemClock.now());
        Some(entry)
    }
}

/// Cheap to clone: clones share the deadlines.
#[derive(Clone, Default)]
pub struct MemoryDeadlineStore {
    /// A std Mutex: held for map updates only, never across an await.
    inner: Arc<Mutex<Inner>>,
}

impl MemoryDeadlineStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied update (every update
        // is a few infallible map operations), so the data is still good.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error kept by the last failed attempt, for tests and operators.
    pub fn last_error(&self, key: &DeadlineKey) -> Option<String> {
        self.lock()
            .entries
            .get(key)
            .and_then(|e| e.last_error.clone())
    }

    /// True if the deadline was parked after failing too often.
    pub fn is_parked(&self, key: &DeadlineKey) -> bool {
        self.lock()
            .entries
            .get(key)
            .is_some_and(|e| e.closed == Some(Outcome::Parked))
    }
}

#[async_trait]
impl DeadlineStore for MemoryDeadlineStore {
    async fn schedule(&self, deadline: Deadline) -> Result<bool, DeadlineStoreError> {
        Ok(self.lock().insert(deadline))
    }

    async fn cancel(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError> {
        Ok(self.lock().close(key, Outcome::Cancelled).is_some())
    }

    async fn schedule_many(
        &self,
        deadlines: Vec<Deadline>,
    ) -> Result<Vec<bool>, DeadlineStoreError> {
        // One lock for the batch: all or nothing, as the single statement on PostgreSQL.
        let mut inner = self.lock();
        Ok(deadlines
            .into_iter()
            .map(|deadline| inner.insert(deadline))
            .collect())
    }

    async fn cancel_many(&self, keys: &[DeadlineKey]) -> Result<Vec<bool>, DeadlineStoreError> {
        let mut inner = self.lock();
        Ok(keys
            .iter()
            .map(|key| inner.close(key, Outcome::Cancelled).is_some())
            .collect())
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Deadline>, DeadlineStoreError> {
        let inner = self.lock();
        Ok(inner
            .open
            .iter()
            .take_while(|(due_at, _)| *due_at <= now)
            .take(limit)
            .filter_map(|(_, key)| inner.entries.get(key).map(|e| e.deadline.clone()))
            .collect())
    }

    async fn claim(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Deadline>, DeadlineStoreError> {
        let mut inner = self.lock();
        let Inner { entries, open } = &mut *inner;
        let taken: Vec<(Timestamp, DeadlineKey)> = open
            .iter()
            .take_while(|(due_at, _)| *due_at <= now)
            .take(limit)
            .cloned()
            .collect();
        let until = now.plus(lease);
        let mut claimed = Vec::with_capacity(taken.len());
        for (due_at, key) in taken {
            let Some(entry) = entries.get_mut(&key) else {
                continue;
            };
            claimed.push(entry.deadline.clone());
            open.remove(&(due_at, key.clone()));
            entry.deadline.due_at = until;
            open.insert((until, key));
        }
        Ok(claimed)
    }

    async fn prune(
        &self,
        closed_before: Timestamp,
        limit: usize,
    ) -> Result<u64, DeadlineStoreError> {
        let mut inner = self.lock();
        let old: Vec<DeadlineKey> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.closed_at.is_some_and(|at| at < closed_before))
            .map(|(key, _)| key.clone())
            .take(limit)
            .collect();
        for key in &old {
            inner.entries.remove(key);
        }
        Ok(old.len() as u64)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, DeadlineStoreError> {
        Ok(self.lock().open.first().map(|(due_at, _)| *due_at))
    }

    async fn complete(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError> {
        Ok(self.lock().close(key, Outcome::Fired).is_some())
    }

    async fn postpone(
        &self,
        key: &DeadlineKey,
        due_at: Timestamp,
        failure: Option<&str>,
    ) -> Result<Option<u32>, DeadlineStoreError> {
        let mut inner = self.lock();
        let Inner { entries, open } = &mut *inner;
        let Some(entry) = entries.get_mut(key).filter(|e| e.closed.is_none()) else {
            return Ok(None);
        };
        open.remove(&(entry.deadline.due_at, key.clone()));
        entry.deadline.due_at = due_at;
        open.insert((due_at, key.clone()));
        if let Some(error) = failure {
            entry.deadline.attempts = entry.deadline.attempts.saturating_add(1);
            entry.last_error = Some(error.to_owned());
        }
        Ok(Some(entry.deadline.attempts))
    }

    async fn park(&self, key: &DeadlineKey, error: &str) -> Result<bool, DeadlineStoreError> {
        let mut inner = self.lock();
        Ok(match inner.close(key, Outcome::Parked) {
            Some(entry) => {
                entry.last_error = Some(error.to_owned());
                true
            }
            None => false,
        })
    }

    async fn count_open(&self) -> Result<u64, DeadlineStoreError> {
        Ok(self.lock().open.len() as u64)
    }
}
