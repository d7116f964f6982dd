//! Catch-up-then-live subscriptions, shared by every adapter.
//!
//! A subscriber is a cursor (`last`, the position it delivered last) over a gap-free log:
//! it reads `position > last` in pages until it has caught up, then waits for the shard's
//! head to move and reads again. Catch-up and live are the same loop, so there is no
//! switch-over at which an event could be skipped or delivered twice.
//!
//! The head is a `tokio::sync::watch`: the adapter bumps it after each commit (and, for
//! PostgreSQL, when a NOTIFY from another process arrives). The subscriber marks the value
//! seen *before* it reads, so a commit that lands between its read and its wait still wakes
//! it. An optional fallback poll covers a lost notification.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures::stream;
use tokio::sync::watch;

use super::{Position, RecordedEvent, StoreError, Subscription};

/// How a subscription reads and waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowConfig {
    /// Events read per query.
    pub page: usize,
    /// Re-read at least this often even without a head change (lost notifications).
    pub fallback_poll: Option<Duration>,
}

struct Cursor<R> {
    read: R,
    head: watch::Receiver<Position>,
    /// Position of the last event handed to the subscriber.
    last: Position,
    buffer: VecDeque<RecordedEvent>,
    config: FollowConfig,
    /// Read again without waiting (the last page was full, or the head is ahead of us).
    eager: bool,
    failed: bool,
}

/// A subscription over `read(after, limit)`, woken by `head`, starting after `after`.
pub(crate) fn follow<R, F>(
    head: watch::Receiver<Position>,
    after: Position,
    config: FollowConfig,
    read: R,
) -> Subscription
where
    R: Fn(Position, usize) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send + 'static,
{
    let cursor = Cursor {
        read,
        head,
        last: after,
        buffer: VecDeque::new(),
        config,
        eager: true,
        failed: false,
    };
    Box::pin(stream::unfold(cursor, |mut c| async move {
        let item = c.next().await?;
        Some((item, c))
    }))
}

impl<R, F> Cursor<R>
where
    R: Fn(Position, usize) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send + 'static,
{
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.last = event.position;
                return Some(Ok(event));
            }
            if !self.eager {
                self.wait().await;
            }
            // Marked seen before reading: a bump after this point wakes the next wait.
            let seen = *self.head.borrow_and_update();
            let page = match (self.read)(self.last, self.config.page).await {
                Ok(page) => page,
                Err(e) => {
                    // The stream ends with the error; the caller resubscribes from its
                    // own checkpoint.
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            let full = page.len() >= self.config.page;
            let mut expected = self.last.next();
            for event in page {
                if event.position != expected {
                    // Cannot happen with a gap-free log; refuse to paper over it.
                    self.failed = true;
                    return Some(Err(StoreError::Corrupt {
                        shard: event.shard.index(),
                        position: event.position.get(),
                        reason: format!("subscription expected position {expected}"),
                    }));
                }
                expected = expected.next();
                self.buffer.push_back(event);
            }
            let reached = self.buffer.back().map_or(self.last, |e| e.position);
            self.eager = full || reached < seen;
        }
    }

    /// Until the head moves, or the fallback poll is due.
    async fn wait(&mut self) {
        let changed = self.head.changed();
        match self.config.fallback_poll {
            Some(poll) => {
                if let Ok(Err(_closed)) = tokio::time::timeout(poll, changed).await {
                    tokio::time::sleep(poll).await;
                }
            }
            None => {
                if changed.await.is_err() {
                    // No one will ever bump the head again: nothing more will come, but a
                    // subscription only ends with an error or a drop, so park.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
