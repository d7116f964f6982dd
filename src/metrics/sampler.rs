//! Lags, backlogs and open deadlines, sampled: every durable consumer saves a per-shard
//! checkpoint (a projector also shows its applied positions in memory), the store knows each
//! shard's head, so "events behind" is their difference summed over shards — computed here
//! for every consumer this process runs, without a line in the consumers themselves.
//! Process managers save checkpoints in batches (every 256 events or 500 ms), so a busy one
//! reads up to a batch behind; a projector's applied positions are exact.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orderflow_command_service::deadlines::DeadlineStore;
use orderflow_command_service::saga::{SETTLE_CONSUMER, SUBMIT_CONSUMER};
use orderflow_domain::Shard;
use orderflow_infra::bus::CheckpointStore;
use orderflow_infra::store::{EventStore, Position};
use orderflow_infra::telemetry;
use orderflow_projections::{Applied, ProjectionHandle};
use tokio_util::sync::CancellationToken;

/// A durable consumer whose lag is reported.
struct Watched {
    name: String,
    progress: Progress,
}

/// Where a consumer's per-shard progress is read.
enum Progress {
    /// A process manager's saved checkpoints.
    Checkpoints(Arc<dyn CheckpointStore>),
    /// A projector's applied positions (reported as projection lag).
    Applied(Applied),
}

pub struct LagSampler {
    store: Arc<dyn EventStore>,
    watched: Vec<Watched>,
    deadlines: Option<Arc<dyn DeadlineStore>>,
    every: Duration,
}

impl LagSampler {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        LagSampler {
            store,
            watched: Vec::new(),
            deadlines: None,
            every: Duration::from_secs(5),
        }
    }

    pub fn consumer(mut self, name: &str, checkpoints: Arc<dyn CheckpointStore>) -> Self {
        self.watched.push(Watched {
            name: name.to_owned(),
            progress: Progress::Checkpoints(checkpoints),
        });
        self
    }

    /// Every projection of a read app (`ReadApp::projections`).
    pub fn projections(mut self, projections: &[ProjectionHandle]) -> Self {
        for p in projections {
            self.watched.push(Watched {
                name: p.name().to_owned(),
                progress: Progress::Applied(p.applied().clone()),
            });
        }
        self
    }

    pub fn deadlines(mut self, deadlines: Arc<dyn DeadlineStore>) -> Self {
        self.deadlines = Some(deadlines);
        self
    }

    /// Samples until `token` is cancelled. A failed sample is logged and retried next tick:
    /// metrics never stop the process.
    pub async fn run(self, token: CancellationToken) -> Result<(), std::convert::Infallible> {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sample().await {
                tracing::warn!(error = %e, "metrics sample failed");
            }
        }
    }

    async fn sample(&self) -> Result<(), String> {
        let mut heads = Vec::new();
        for shard in Shard::all() {
            let head = self.store.head(shard).await.map_err(|e| e.to_string())?;
            heads.push((shard, head));
        }
        // Only a sampler that watches the saga reports its backlog: two samplers run in
        // role `all`, and the other must not overwrite it with 0.
        let mut saga = None;
        for watched in &self.watched {
            let saved: HashMap<Shard, Position> = match &watched.progress {
                Progress::Checkpoints(checkpoints) => checkpoints
                    .load(&watched.name)
                    .await
                    .map_err(|e| e.to_string())?,
                Progress::Applied(applied) => applied.positions().into_iter().collect(),
            };
            let lag: u64 = heads
                .iter()
                .map(|(shard, head)| {
                    let done = saved.get(shard).copied().unwrap_or(Position::ZERO);
                    head.get().saturating_sub(done.get())
                })
                .sum();
            if matches!(watched.progress, Progress::Applied(_)) {
                telemetry::projection_lag(&watched.name, lag);
            } else {
                telemetry::consumer_lag(&watched.name, lag);
            }
            if [SUBMIT_CONSUMER, SETTLE_CONSUMER].contains(&watched.name.as_str()) {
                *saga.get_or_insert(0) += lag;
            }
        }
        if let Some(saga) = saga {
            telemetry::saga_backlog(saga);
        }
        if let Some(deadlines) = &self.deadlines {
            let open = deadlines.count_open().await.map_err(|e| e.to_string())?;
            telemetry::open_deadlines(open);
        }
        Ok(())
    }
}
