//! The relay: publishes every committed event of each shard, in position order, from the
//! event store to the bus, with `Nats-Msg-Id` = event id, from a stored checkpoint.
//!
//! Per shard: `subscribe(shard, checkpoint)` → hand each event to the bus in order, keeping up
//! to `window` store-acks in flight. Acks are awaited in publish order, so the checkpoint only
//! ever moves to the highest *contiguous* acknowledged position. On any failure the shard
//! backs off and starts again from that position: the re-sends of events already stored are
//! dropped by the bus's dedup window (and by the consumers' position check beyond it).
//! A restart (even after a crash, with no flush) does the same from the saved checkpoint, so
//! nothing is lost; what a crash costs is re-sending up to `checkpoint_every` events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use orderflow_domain::{Shard, SHARD_COUNT};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{encode_event, BusError, CheckpointError, CheckpointStore, EventBus, PublishAck};
use crate::store::{EventStore, Position, StoreError};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Name of the relay's checkpoint (one per deployment; two relays with one name would
    /// both publish, harmlessly thanks to dedup, but wastefully).
    pub name: String,
    /// The shards this relay publishes (all by default; split them to scale out).
    pub shards: Vec<Shard>,
    /// Publishes awaiting their store ack, per shard.
    pub window: usize,
    /// Save the checkpoint after this many acknowledged events…
    pub checkpoint_every: u64,
    /// …or this long after the last save, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Back-off after a failure: doubles from `backoff_min` up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// On shutdown, how long to wait for the acks in flight before saving the checkpoint.
    pub drain_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            name: "relay".to_owned(),
            shards: Shard::all().collect(),
            window: 256,
            checkpoint_every: 1_000,
            checkpoint_interval: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The checkpoint could not be saved on shutdown; the next start re-sends from the last
    /// saved one (dedup absorbs it), so nothing is lost.
    #[error("relay checkpoint of shard {shard} not saved on shutdown: {source}")]
    FinalCheckpoint {
        shard: Shard,
        #[source]
        source: CheckpointError,
    },
    #[error("relay task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Progress of a relay, per shard, readable while it runs (for metrics).
#[derive(Debug)]
pub struct RelayStats {
    /// Highest contiguous position acknowledged by the bus.
    acked: [AtomicU64; SHARD_COUNT as usize],
    /// Highest position saved in the checkpoint store.
    saved: [AtomicU64; SHARD_COUNT as usize],
    /// Events acknowledged by the bus (re-sends included).
    published: AtomicU64,
    /// Failures that made a shard back off and resume.
    failures: AtomicU64,
}

impl Default for RelayStats {
    fn default() -> Self {
        RelayStats {
            acked: std::array::from_fn(|_| AtomicU64::new(0)),
            saved: std::array::from_fn(|_| AtomicU64::new(0)),
            published: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl RelayStats {
    pub fn acked(&self, shard: Shard) -> Position {
        Position::new(self.acked[usize::from(shard.index())].load(Ordering::Relaxed))
    }

    pub fn saved(&self, shard: Shard) -> Position {
        Position::new(self.saved[usize::from(shard.index())].load(Ordering::Relaxed))
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Events committed but not yet acknowledged by the bus: `head − acked`, per shard.
    pub async fn lag(
        &self,
        store: &dyn EventStore,
        shards: &[Shard],
    ) -> Result<Vec<(Shard, u64)>, StoreError> {
        let mut out = Vec::with_capacity(shards.len());
        for &shard in shards {
            let head = store.head(shard).await?;
            out.push((shard, head.get().saturating_sub(self.acked(shard).get())));
        }
        Ok(out)
    }
}

/// Why one shard's pipeline stopped and must resume from its checkpoint.
#[derive(Debug, thiserror::Error)]
enum ShardFailure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("store subscription ended")]
    SubscriptionEnded,
}

pub struct Relay {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
    checkpoints: Arc<dyn CheckpointStore>,
    config: RelayConfig,
    stats: Arc<RelayStats>,
}

impl Relay {
    pub fn new(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        config: RelayConfig,
    ) -> Self {
        Relay {
            store,
            bus,
            checkpoints,
            config,
            stats: Arc::new(RelayStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` is cancelled; then stops reading, waits (bounded) for the acks in
    /// flight, saves every shard's checkpoint and returns.
    #[instrument(skip_all, fields(relay = %self.config.name))]
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let Some(start) = self.load_checkpoints(&shutdown).await else {
            return Ok(());
        };
        let this = Arc::new(self);
        let mut tasks = JoinSet::new();
        for &shard in &this.config.shards {
            let from = start.get(&shard).copied().unwrap_or(Position::ZERO);
            let relay = this.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { relay.run_shard(shard, from, shutdown).await });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(RelayError::from).and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = %e, "relay shard stopped with an error");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Loads the checkpoints, retrying until it works or shutdown (then `None`).
    async fn load_checkpoints(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<HashMap<Shard, Position>> {
        let mut backoff = self.config.backoff_min;
        loop {
            match self.checkpoints.load(&self.config.name).await {
                Ok(map) => return Some(map),
                Err(e) => tracing::warn!(error = %e, "cannot load relay checkpoints; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    #[instrument(skip_all, fields(shard = %shard, from = %from))]
    async fn run_shard(
        &self,
        shard: Shard,
        from: Position,
        shutdown: CancellationToken,
    ) -> Result<(), RelayError> {
        let mut progress = Progress {
            acked: from,
            saved: from,
        };
        self.set_stat(&self.stats.acked, shard, from);
        self.set_stat(&self.stats.saved, shard, from);
        let mut backoff = self.config.backoff_min;
        while !shutdown.is_cancelled() {
            let before = progress.acked;
            match self.pipeline(shard, &mut progress, &shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    if progress.acked > before {
                        // It made progress since the last failure: a new fault, not the same one.
                        backoff = self.config.backoff_min;
                    }
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, resume_after = %progress.acked, ?backoff,
                        "relay publish pipeline failed; resuming from the last contiguous ack");
                    self.try_save(shard, &mut progress).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.backoff_max);
                }
            }
        }
        self.checkpoints
            .save(&self.config.name, &[(shard, progress.acked)])
            .await
            .map_err(|source| RelayError::FinalCheckpoint { shard, source })?;
        self.set_stat(&self.stats.saved, shard, progress.acked);
        tracing::info!(checkpoint = %progress.acked, "relay shard stopped");
        Ok(())
    }

    /// One subscription's worth of publishing. `Ok` only on shutdown (after draining).
    async fn pipeline(
        &self,
        shard: Shard,
        progress: &mut Progress,
        shutdown: &CancellationToken,
    ) -> Result<(), ShardFailure> {
        let mut events = self.store.subscribe(shard, progress.acked);
        // Each entry resolves to (position, ack); FuturesOrdered yields them in publish order,
        // which is what makes "last yielded Ok" the highest contiguous acknowledged position.
        let mut in_flight = FuturesOrdered::new();
        let mut sent = progress.acked;
        let mut tick = tokio::time::interval(self.config.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    return self.drain(shard, progress, in_flight).await;
                }
                Some((position, ack)) = in_flight.next(), if !in_flight.is_empty() => {
                    let _: PublishAck = ack?;
                    self.acked(shard, progress, position).await;
                }
                event = events.next(), if in_flight.len() < self.config.window => {
                    let event = match event {
                        Some(event) => event?,
                        None => return Err(ShardFailure::SubscriptionEnded),
                    };
                    if event.position <= sent {
                        // Already handed over (the store promises no duplicates; cheap to be sure).
                        continue;
                    }
                    if event.position != sent.next() {
                        tracing::error!(expected = %sent.next(), got = %event.position,
                            "event store subscription skipped positions");
                    }
                    sent = event.position;
                    let message = encode_event(self.bus.subjects(), &event)?;
                    let ack = self.bus.start_publish(message).await?;
                    in_flight.push_back(ack.map(move |r| (event.position, r)));
                }
                _ = tick.tick() => {
                    if progress.acked > progress.saved {
                        self.try_save(shard, progress).await;
                    }
                }
            }
        }
    }

    /// Waits (bounded) for the acks in flight, in order, so shutdown saves as far as it can.
    async fn drain<F>(
        &self,
        shard: Shard,
        progress: &mut Progress,
        mut in_flight: FuturesOrdered<F>,
    ) -> Result<(), ShardFailure>
    where
        F: std::future::Future<Output = (Position, Result<PublishAck, BusError>)>,
    {
        let deadline = Instant::now() + self.config.drain_timeout;
        loop {
            match tokio::time::timeout_at(deadline, in_flight.next()).await {
                Ok(Some((position, Ok(_)))) => self.acked(shard, progress, position).await,
                // A failed or late ack: stop at the last contiguous one; the next run re-sends.
                Ok(Some((_, Err(_)))) | Err(_) | Ok(None) => return Ok(()),
            }
        }
    }

    async fn acked(&self, shard: Shard, progress: &mut Progress, position: Position) {
        progress.acked = position;
        self.set_stat(&self.stats.acked, shard, position);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        if position.get() - progress.saved.get() >= self.config.checkpoint_every {
            self.try_save(shard, progress).await;
        }
    }

    /// Saves the checkpoint; a failure is logged and retried at the next occasion (a stale
    /// checkpoint only costs re-sends).
    async fn try_save(&self, shard: Shard, progress: &mut Progress) {
        if progress.acked <= progress.saved {
            return;
        }
        match self
            .checkpoints
            .save(&self.config.name, &[(shard, progress.acked)])
            .await
        {
            Ok(()) => {
                progress.saved = progress.acked;
                self.set_stat(&self.stats.saved, shard, progress.acked);
            }
            Err(e) => tracing::warn!(error = %e, "cannot save relay checkpoint"),
        }
    }

    fn set_stat(&self, stat: &[AtomicU64], shard: Shard, position: Position) {
        stat[usize::from(shard.index())].store(position.get(), Ordering::Relaxed);
    }
}

struct Progress {
    /// Highest contiguous position the bus acknowledged.
    acked: Position,
    /// Highest position saved in the checkpoint store.
    saved: Position,
}
