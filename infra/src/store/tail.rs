//! The recent events of each shard, shared by every subscription of one store instance.
//!
//! One process follows each shard many times over: the relay, the rider-geo index and every
//! projector each hold a subscription per shard (9 per shard with `serve --role all`). When
//! a commit moves a shard's head they all wake together and, without this, each ran the same
//! `position > last` query and decoded the same rows: nine round trips and nine JSON parses
//! per page, on the two cores the writers need (issue 4's flash-sale lag: every projector
//! lagged alike, even one that writes no rows).
//!
//! So a subscriber at the tail reads through a per-shard cache of the latest events:
//! - the cache holds one gap-free run of positions, as read from the log. The log is
//!   immutable and gap-free, so a cached event is the event at that position, forever; which
//!   process wrote it does not matter;
//! - a read inside the run is answered from memory;
//! - a read just past the run (the live case) takes the shard's fill lock, looks again (the
//!   subscriber that held the lock before may have read it), and only then reads the log,
//!   appending the page to the run: one query per page however many subscribers wait;
//! - a read older than the run (a catch-up after a restart, a replay) goes to the log
//!   directly, without the lock and without touching the cache, so it never stalls the
//!   subscribers at the tail nor evicts what they need.
//!
//! - what this process's group-commit writer has just committed is appended to the run
//!   too, after `COMMIT` returned and before the subscribers are woken, when it continues
//!   the run: the subscribers at the tail then find the events in memory and the log is not
//!   read for them at all (in a flash sale these reads were a fifth of PostgreSQL's CPU per
//!   submit). Events another process committed in between leave a hole the writer cannot
//!   fill, so its events are then left out and the next read goes to the log as before.
//!
//! The run is bounded ([`TAIL_EVENTS`] per shard); the oldest events go first.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use orderflow_domain::Shard;

use super::{Position, RecordedEvent, StoreError};

/// Events kept per shard: the spread between the subscribers of one shard is a few pages.
pub(crate) const TAIL_EVENTS: usize = 2_048;

pub(crate) struct TailCache {
    shards: Vec<ShardTail>,
    capacity: usize,
}

#[derive(Default)]
struct ShardTail {
    /// A gap-free run of the shard's latest events read so far. A std Mutex: held only to
    /// copy events in or out, never across an await.
    run: Mutex<VecDeque<RecordedEvent>>,
    /// Held while one subscriber reads past the run, so the others wait for its page.
    fill: tokio::sync::Mutex<()>,
}

/// Where a read is answered from.
enum Lookup {
    Hit(Vec<RecordedEvent>),
    /// Past the run (or no run yet): the live case, read through the fill lock.
    Tip,
    /// Before the run: a catch-up, read directly.
    Behind,
}

impl TailCache {
    pub fn new(capacity: usize) -> Self {
        TailCache {
            shards: Shard::all().map(|_| ShardTail::default()).collect(),
            capacity: capacity.max(1),
        }
    }

    /// Up to `limit` events of `shard` after `after`, from the cache or from `read` (the
    /// log), which is called at most once.
    pub async fn read<F, Fut>(
        &self,
        shard: Shard,
        after: Position,
        limit: usize,
        read: F,
    ) -> Result<Vec<RecordedEvent>, StoreError>
    where
        F: FnOnce(Position, usize) -> Fut,
        Fut: Future<Output = Result<Vec<RecordedEvent>, StoreError>>,
    {
        let tail = &self.shards[usize::from(shard.index())];
        match tail.lookup(after, limit) {
            Lookup::Hit(events) => return Ok(events),
            Lookup::Behind => return read(after, limit).await,
            Lookup::Tip => {}
        }
        let _filling = tail.fill.lock().await;
        // The subscriber that held the lock before us may have read this very page.
        if let Lookup::Hit(events) = tail.lookup(after, limit) {
            return Ok(events);
        }
        let page = read(after, limit).await?;
        tail.remember(&page, self.capacity, Join::OrReplace);
        Ok(page)
    }

    /// Events of `shard` this process has just committed, in position order: appended if
    /// they continue the run. A run not started yet is left to the subscribers' first read,
    /// so that subscribers still catching up keep reading through the fill lock.
    pub fn committed(&self, shard: Shard, events: &[RecordedEvent]) {
        self.shards[usize::from(shard.index())].remember(events, self.capacity, Join::Only);
    }
}

/// What [`ShardTail::remember`] does with a page that does not continue the run.
#[derive(Clone, Copy, PartialEq)]
enum Join {
    /// It becomes the run (a subscriber read it at the tip: the run fell behind).
    OrReplace,
    /// It is dropped (the writer's events, with a hole before them, or no run yet).
    Only,
}

impl ShardTail {
    fn lookup(&self, after: Position, limit: usize) -> Lookup {
        let run = self
            .run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (Some(first), Some(last)) = (run.front(), run.back()) else {
            return Lookup::Tip;
        };
        let wanted = after.next();
        if wanted > last.position {
            return Lookup::Tip;
        }
        if wanted < first.position {
            return Lookup::Behind;
        }
        // Gap-free: the event at position p sits at index p - first.
        let from = usize::try_from(wanted.get() - first.position.get()).unwrap_or(usize::MAX);
        Lookup::Hit(run.iter().skip(from).take(limit).cloned().collect())
    }

    /// Appends a page of the log: after the run if it continues it, else (the run fell
    /// behind the tip, or there was none) as the new run if `join` says so.
    fn remember(&self, page: &[RecordedEvent], capacity: usize, join: Join) {
        let Some(first) = page.first() else {
            return;
        };
        // A page is gap-free (the subscription checks it too); one that is not stays out.
        if page
            .windows(2)
            .any(|w| w[1].position != w[0].position.next())
        {
            return;
        }
        let mut run = self
            .run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match run.back() {
            Some(last) if first.position == last.position.next() => {}
            Some(last) if first.position <= last.position => return, // already known
            _ if join == Join::Only => return,
            _ => run.clear(),
        }
        let keep = page.len().min(capacity);
        run.extend(page[page.len() - keep..].iter().cloned());
        while run.len() > capacity {
            run.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::bus::envelope_tests::sample_event;

    fn shard() -> Shard {
        sample_event("sku-latte", 1).shard
    }

    /// The log: events 1..=n of the shard, and how many times it was read.
    struct Log {
        events: Vec<RecordedEvent>,
        reads: AtomicUsize,
    }

    impl Log {
        fn new(n: u64) -> Arc<Self> {
            Arc::new(Log {
                events: (1..=n).map(|p| sample_event("sku-latte", p)).collect(),
                reads: AtomicUsize::new(0),
            })
        }

        async fn read(
            self: Arc<Self>,
            after: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(self
                .events
                .iter()
                .filter(|e| e.position > after)
                .take(limit)
                .cloned()
                .collect())
        }
    }

    fn positions(events: &[RecordedEvent]) -> Vec<u64> {
        events.iter().map(|e| e.position.get()).collect()
    }

    #[tokio::test]
    async fn subscribers_at_the_tail_share_one_read_per_page() {
        let cache = Arc::new(TailCache::new(100));
        let log = Log::new(10);
        let mut readers = Vec::new();
        for _ in 0..9 {
            let (cache, log) = (cache.clone(), log.clone());
            readers.push(tokio::spawn(async move {
                cache
                    .read(shard(), Position::ZERO, 4, |a, l| log.clone().read(a, l))
                    .await
                    .unwrap()
            }));
        }
        for reader in readers {
            assert_eq!(positions(&reader.await.unwrap()), vec![1, 2, 3, 4]);
        }
        assert_eq!(log.reads.load(Ordering::SeqCst), 1);

        // Inside the run: no read; past it: one read that extends the run.
        let again = cache.read(shard(), Position::new(1), 2, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&again.await.unwrap()), vec![2, 3]);
        let next = cache.read(shard(), Position::new(4), 4, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&next.await.unwrap()), vec![5, 6, 7, 8]);
        let cached = cache.read(shard(), Position::new(2), 10, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&cached.await.unwrap()), vec![3, 4, 5, 6, 7, 8]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn reads_older_than_the_run_go_to_the_log_and_leave_the_run_alone() {
        let cache = TailCache::new(3);
        let log = Log::new(10);
        let tip = cache.read(shard(), Position::new(5), 5, |a, l| log.clone().read(a, l));
        // Bounded: only the newest three of the page stay.
        assert_eq!(positions(&tip.await.unwrap()), vec![6, 7, 8, 9, 10]);
        let old = cache.read(shard(), Position::new(1), 2, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&old.await.unwrap()), vec![2, 3]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 2);
        let cached = cache.read(shard(), Position::new(7), 5, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&cached.await.unwrap()), vec![8, 9, 10]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_page_that_does_not_continue_the_run_replaces_it() {
        let cache = TailCache::new(100);
        let log = Log::new(20);
        let first = cache.read(shard(), Position::ZERO, 2, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&first.await.unwrap()), vec![1, 2]);
        // A subscriber far ahead of the run (it started from a checkpoint past it).
        let ahead = cache.read(shard(), Position::new(10), 2, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&ahead.await.unwrap()), vec![11, 12]);
        let cached = cache.read(shard(), Position::new(10), 5, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&cached.await.unwrap()), vec![11, 12]);
        // Position 2 is now before the run: read from the log again.
        let behind = cache.read(shard(), Position::new(1), 1, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&behind.await.unwrap()), vec![2]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn committed_events_extend_the_run_only_when_they_continue_it() {
        let cache = TailCache::new(100);
        let log = Log::new(10);
        // No run yet: the writer's events wait for the subscribers' first read.
        cache.committed(shard(), &log.events[0..2]);
        let first = cache.read(shard(), Position::ZERO, 3, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&first.await.unwrap()), vec![1, 2, 3]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 1);
        // They continue it: served from memory, the log is not read.
        cache.committed(shard(), &log.events[3..6]);
        let live = cache.read(shard(), Position::new(3), 10, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&live.await.unwrap()), vec![4, 5, 6]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 1);
        // A hole (another process committed 7): dropped, the next read goes to the log.
        cache.committed(shard(), &log.events[7..9]);
        let past = cache.read(shard(), Position::new(6), 10, |a, l| log.clone().read(a, l));
        assert_eq!(positions(&past.await.unwrap()), vec![7, 8, 9, 10]);
        assert_eq!(log.reads.load(Ordering::SeqCst), 2);
    }
}
