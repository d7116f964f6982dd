//! The projector: runs a [`ProjectionGroup`] (one [`ProjectionModel`], or several applied
//! together) over every shard of the event store.
//!
//! Per shard, one task: load the members' checkpoints, `EventStore::subscribe(shard, lowest)`
//! (catch-up then live, gap-free, no duplicate), take whatever is ready up to `batch` events,
//! hand it to the group (rows + checkpoints; one transaction for a PostgreSQL group), advance
//! each member's in-memory [`Applied`] position queries wait on, and hand the row changes to
//! the shard's publisher, which publishes them on the bus in batch order (one message per view
//! and batch, [`crate::publish`]) while the next batch is applied (so the bus's acknowledgements are not in the projection's lag). Why the
//! store's subscription and not a bus consumer: `docs/read-side.md`.
//!
//! A failing `apply` is retried with back-off, forever: a read model must not skip an event
//! (that would be a hole nobody sees). A model that cannot *decode* an event logs it and
//! moves on (the same choice as the rider-geo index: one unreadable event must not stop
//! every query); the command side dead-letters the same event, where an operator sees it.
//!
//! Shutdown: the token stops each shard task between batches; a batch in hand is finished
//! (its transaction commits or rolls back whole), so there is nothing to flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::Shard;
use orderflow_infra::bus::EventBus;
use orderflow_infra::store::{EventStore, Position, RecordedEvent};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::applied::Applied;
use crate::error::ProjectionError;
use crate::group::{ProjectionGroup, Sequential};
use crate::model::{ProjectionModel, RowChange};
use crate::publish::publish_changes;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most events applied in one transaction.
    pub batch: usize,
    /// Publish row changes on `{prefix}.views.{view}.{shard}` (off for rebuilds and some tests).
    pub publish: bool,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch: 256,
            publish: true,
        }
    }
}

/// Batches of row changes a shard's publisher may hold before the shard task waits for it:
/// a slow bus slows the projector down instead of filling memory.
const PUBLISH_QUEUE: usize = 8;

/// Counters of one projector, for metrics and tests.
#[derive(Debug, Default)]
pub struct ProjectorStats {
    pub batches: AtomicU64,
    pub events: AtomicU64,
    pub apply_failures: AtomicU64,
    pub publish_failures: AtomicU64,
}

/// One projection a projector runs, as the rest of the process sees it: its name and its
/// applied positions (read-your-writes and long-polls wait on them). Cheap to clone.
#[derive(Clone)]
pub struct ProjectionHandle {
    name: &'static str,
    applied: Applied,
}

impl ProjectionHandle {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The applied position of every shard of this projection.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }
}

/// A group of projections (or one), running. Cheap to clone.
#[derive(Clone)]
pub struct Projector {
    group: Arc<dyn ProjectionGroup>,
    /// The members' names joined (`order_detail` alone), for logs.
    name: Arc<str>,
    store: Arc<dyn EventStore>,
    bus: Option<Arc<dyn EventBus>>,
    /// Where every member has got to (the lowest of them at start).
    applied: Applied,
    /// Each member's own, in the group's order.
    members: Arc<Vec<ProjectionHandle>>,
    stats: Arc<ProjectorStats>,
    config: ProjectorConfig,
}

impl Projector {
    /// A projector of one model. `bus`: where row changes are published (`None`: not
    /// published).
    pub fn new(
        model: Arc<dyn ProjectionModel>,
        store: Arc<dyn EventStore>,
        bus: Option<Arc<dyn EventBus>>,
        config: ProjectorConfig,
    ) -> Self {
        Self::group(Arc::new(Sequential::new(vec![model])), store, bus, config)
    }

    /// A projector of several projections following the log together: one task and one
    /// subscription per shard, one `apply` per batch for all of them.
    pub fn group(
        group: Arc<dyn ProjectionGroup>,
        store: Arc<dyn EventStore>,
        bus: Option<Arc<dyn EventBus>>,
        config: ProjectorConfig,
    ) -> Self {
        let names = group.names();
        let members = names
            .iter()
            .map(|&name| ProjectionHandle {
                name,
                applied: Applied::new(),
            })
            .collect();
        Projector {
            group,
            name: names.join("+").into(),
            store,
            bus,
            applied: Applied::new(),
            members: Arc::new(members),
            stats: Arc::new(ProjectorStats::default()),
            config,
        }
    }

    /// The projection's name; a group's members' names joined by `+`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position every member has applied on each shard: for a projector of one model,
    /// that model's. Read-your-writes on one view waits on its own
    /// ([`Projector::projections`]), which may be ahead.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    /// Each projection this projector runs.
    pub fn projections(&self) -> &[ProjectionHandle] {
        &self.members
    }

    /// The projection `name`, if this projector runs it.
    pub fn projection(&self, name: &str) -> Option<&ProjectionHandle> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The counters of this projector (of the group as a whole).
    pub fn stats(&self) -> &Arc<ProjectorStats> {
        &self.stats
    }

    /// Follows every shard until `shutdown`. Fails only if the checkpoints cannot be loaded
    /// at start; later failures are retried.
    #[instrument(skip_all, fields(projection = %self.name))]
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProjectionError> {
        let checkpoints = self.group.checkpoints().await?;
        let mut tasks = JoinSet::new();
        for shard in Shard::all() {
            let saved = |i: usize| {
                checkpoints
                    .get(i)
                    .and_then(|c| c.get(&shard))
                    .copied()
                    .unwrap_or(Position::ZERO)
            };
            for (i, member) in self.members.iter().enumerate() {
                member.applied.advance(shard, saved(i));
            }
            // The lowest member's: the others skip what they have applied.
            let from = (0..self.members.len())
                .map(saved)
                .min()
                .unwrap_or(Position::ZERO);
            self.applied.advance(shard, from);
            tasks.spawn(self.clone().follow(shard, from, shutdown.clone()));
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "projector shard task panicked");
            }
        }
        tracing::info!("projector stopped");
        Ok(())
    }

    /// One shard: its log follower and, with a bus, its publisher. On shutdown the follower
    /// stops between batches and the publisher sends what it was handed before it returns.
    #[instrument(skip_all, fields(projection = %self.name, shard = %shard))]
    async fn follow(self, shard: Shard, last: Position, shutdown: CancellationToken) {
        let (publisher, published) = match (&self.bus, self.config.publish) {
            (Some(bus), true) => {
                let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
                let task = tokio::spawn(publish_changes(bus.clone(), self.stats.clone(), rx));
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        self.follow_log(shard, last, &shutdown, publisher.as_ref())
            .await;
        drop(publisher);
        if let Some(task) = published {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "row change publisher panicked");
            }
        }
    }

    async fn follow_log(
        &self,
        shard: Shard,
        mut last: Position,
        shutdown: &CancellationToken,
        publisher: Option<&mpsc::Sender<Vec<RowChange>>>,
    ) {
        let mut backoff = BACKOFF_MIN;
        while !shutdown.is_cancelled() {
            let mut batches = self
                .store
                .subscribe(shard, last)
                .ready_chunks(self.config.batch);
            loop {
                let chunk = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    chunk = batches.next() => chunk,
                };
                let Some(chunk) = chunk else {
                    tracing::warn!(%last, "subscription ended");
                    break;
                };
                let mut events = Vec::with_capacity(chunk.len());
                let mut failed = None;
                for item in chunk {
                    match item {
                        Ok(event) => events.push(event),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                if !events.is_empty() {
                    match self.apply(shard, &events, shutdown, publisher).await {
                        Some(position) => last = position,
                        None => return, // shut down while retrying
                    }
                    backoff = BACKOFF_MIN;
                }
                if let Some(e) = failed {
                    tracing::warn!(error = %e, %last, ?backoff, "subscription failed");
                    break;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Applies one batch, retrying until it commits (or shutdown); advances the applied
    /// position and hands the changes to the publisher. Returns the batch's last position.
    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
        shutdown: &CancellationToken,
        publisher: Option<&mpsc::Sender<Vec<RowChange>>>,
    ) -> Option<Position> {
        let last = events.last()?.position;
        let mut backoff = BACKOFF_MIN;
        let outcome = loop {
            match self.group.apply(shard, events).await {
                Ok(outcome) => break outcome,
                Err(e) => {
                    self.stats.apply_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, %last, ?backoff, "apply failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        // The rows are committed: readers may see them now, whatever the bus does.
        for member in self.members.iter() {
            member.applied.advance(shard, last);
        }
        self.applied.advance(shard, last);
        if let Some(publisher) = publisher {
            if !outcome.changes.is_empty() {
                // Waits only when the publisher is PUBLISH_QUEUE batches behind; it outlives
                // this task's sender, so the send fails only if it panicked.
                let _ = publisher.send(outcome.changes).await;
            }
        }
        Some(last)
    }
}
