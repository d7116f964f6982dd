//! Keeps the rider-geo index current, straight from the event store.
//!
//! The index lives in memory only, so it has no checkpoint to resume from: every start replays
//! every shard from position 0 (catch-up), then follows new commits (live), through
//! `EventStore::subscribe`, which switches between the two without a gap or a duplicate. A bus
//! consumer would need its checkpoint thrown away at each start to do the same, and would add
//! the relay's lag to every location report. The index is ready (`RiderGeoIndex::wait_ready`)
//! once each shard has been replayed up to the head it had when the updater started.
//!
//! Cost: the replay reads the whole log, order events included (filtered out by category
//! before any decoding). Fine for today's volumes; a snapshot of the index with its positions
//! would bound it (see `docs/riders.md`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::Shard;
use orderflow_infra::store::{EventStore, Position};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{RiderGeoIndex, RidersError};

/// Events applied between two voluntary yields during the replay: a memory store answers
/// every read at once, and a task that never waits would hold its worker thread.
const YIELD_EVERY: usize = 256;
/// Page size of a one-shot rebuild.
const REBUILD_PAGE: usize = 1_000;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Replays every shard into `index`, marks it ready when the replay reaches the heads seen at
/// start, then follows new events until `shutdown`. Subscription failures are retried (from
/// the last applied position) with back-off; only a failure to read the heads at start is
/// returned.
#[instrument(skip_all)]
pub async fn run_index_updater(
    index: Arc<RiderGeoIndex>,
    store: Arc<dyn EventStore>,
    shutdown: CancellationToken,
) -> Result<(), RidersError> {
    let mut targets = Vec::new();
    for shard in Shard::all() {
        targets.push((shard, store.head(shard).await?));
    }
    let behind = Arc::new(AtomicUsize::new(
        targets.iter().filter(|(_, t)| *t > Position::ZERO).count(),
    ));
    if behind.load(Ordering::SeqCst) == 0 {
        index.mark_ready();
    }
    let mut tasks = JoinSet::new();
    for (shard, target) in targets {
        let follower = ShardFollower {
            index: index.clone(),
            store: store.clone(),
            shard,
            target,
            behind: behind.clone(),
        };
        tasks.spawn(follower.run(shutdown.clone()));
    }
    while let Some(joined) = tasks.join_next().await {
        joined?;
    }
    tracing::info!("rider-geo index updater stopped");
    Ok(())
}

struct ShardFollower {
    index: Arc<RiderGeoIndex>,
    store: Arc<dyn EventStore>,
    shard: Shard,
    /// The shard's head when the updater started: the replay is done once it is applied.
    target: Position,
    /// Shards still replaying; the last one to finish marks the index ready.
    behind: Arc<AtomicUsize>,
}

impl ShardFollower {
    #[instrument(skip_all, fields(shard = %self.shard))]
    async fn run(self, shutdown: CancellationToken) {
        let mut last = Position::ZERO;
        let mut replaying = self.target > Position::ZERO;
        let mut backoff = BACKOFF_MIN;
        let mut applied = 0usize;
        while !shutdown.is_cancelled() {
            let mut subscription = self.store.subscribe(self.shard, last);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = subscription.next() => next,
                };
                let event = match next {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, %last, ?backoff, "index subscription failed");
                        break;
                    }
                    None => {
                        tracing::warn!(%last, "index subscription ended");
                        break;
                    }
                };
                if let Err(e) = self.index.apply_recorded(&event) {
                    // The index is a cache of the log: one unreadable event must not stop
                    // every search; the notifier reads the same streams and dead-letters.
                    tracing::error!(error = %e, "rider-geo index skips an unreadable event");
                }
                last = event.position;
                backoff = BACKOFF_MIN;
                if replaying && last >= self.target {
                    replaying = false;
                    if self.behind.fetch_sub(1, Ordering::SeqCst) == 1 {
                        tracing::info!("rider-geo index replayed the log; ready");
                        self.index.mark_ready();
                    }
                }
                applied += 1;
                if applied % YIELD_EVERY == 0 {
                    tokio::task::yield_now().await;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// Builds a fresh index from everything the store holds now (every shard from position 0 up
/// to its current head), without following it: for rebuild checks and tools.
pub async fn rebuild_index(store: &dyn EventStore) -> Result<RiderGeoIndex, RidersError> {
    let index = RiderGeoIndex::new();
    for shard in Shard::all() {
        let head = store.head(shard).await?;
        let mut after = Position::ZERO;
        while after < head {
            let page = store.read_shard(shard, after, REBUILD_PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.position;
            for event in page.iter().filter(|e| e.position <= head) {
                if let Err(e) = index.apply_recorded(event) {
                    tracing::error!(error = %e, "rebuild skips an unreadable event");
                }
            }
        }
    }
    index.mark_ready();
    Ok(index)
}
