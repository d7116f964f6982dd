//! The PostgreSQL event store: group commit into a gap-free, commit-ordered log per shard.
//!
//! - `config`: the shard → database map and the sizes.
//! - `codec`: the `events` table's columns, row decoding, the batch insert's arrays.
//! - `batch`: deciding a batch in memory (idempotency, concurrency check, positions).
//! - `writer`: the group-commit writer tasks and their two-round-trip transaction.
//! - `read`: stream, shard and head reads.
//! - `notify`: telling other processes of new heads (`pg_notify`, after commit).
//! - `listen`: LISTEN feeding the shards' heads for live subscriptions.
//!
//! `docs/event-store.md` explains the design and what it costs.

mod batch;
mod codec;
mod config;
mod listen;
mod notify;
mod read;
mod writer;

#[cfg(test)]
mod tests;

pub use config::{PgStoreConfig, ShardMap};

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use orderflow_domain::{Shard, StreamId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use self::batch::{Job, Reply};
use self::codec::PendingAppend;
use super::follow::{follow, FollowConfig, Heads};
use super::tail::{TailCache, TAIL_EVENTS};
use super::{
    AppendOutcome, AppendRequest, ClaimKey, EventStore, Position, RecordedEvent, StoreError,
    Subscription,
};

/// Events a subscription reads per query.
const SUBSCRIPTION_PAGE: usize = 512;

/// The PostgreSQL event store. Cheap to clone; all clones share pools and writers.
#[derive(Clone)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: PgStoreConfig,
    /// One pool per database of the shard map, in the map's order.
    pools: Vec<Pool>,
    /// Stream reads' own pool per database (`PgStoreConfig::stream_pool_size`), or the
    /// main pools again when it is 0.
    stream_pools: Vec<Pool>,
    /// For each shard, the queue of the writer that owns it.
    routes: Vec<mpsc::UnboundedSender<Job>>,
    heads: Arc<Heads>,
    /// The latest events of each shard, shared by this instance's subscriptions.
    tail: Arc<TailCache>,
    shutdown: CancellationToken,
    /// Writers and listeners, joined by `shutdown`. A std Mutex: only taken to move the
    /// handles out, never held across an await.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without an explicit shutdown the writers still drain what is queued (their
        // queues' senders are gone with us) and the listeners stop.
        self.shutdown.cancel();
    }
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Config(format!("database url {url:?}: {e}")))?;
    // Every statement is prepared once per connection and run thousands of times while the
    // table grows from nothing. A generic plan made while `events` was small is a
    // sequential scan, and PostgreSQL keeps it as the table reaches millions of rows
    // (measured: 6k seq scans reading 55M rows in a 30 s bench). Custom plans cost a few
    // hundred microseconds per batch and always see the table as it is.
    let options = match config.get_options() {
        Some(existing) => format!("{existing} -c plan_cache_mode=force_custom_plan"),
        None => "-c plan_cache_mode=force_custom_plan".to_owned(),
    };
    config.options(&options);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Fast: no test query when a connection is taken; a broken one fails its query
            // and is dropped.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

impl PgEventStore {
    /// Connects to every database of the shard map, runs the migrations on each, and
    /// starts the writers and listeners.
    pub async fn connect(config: PgStoreConfig) -> Result<PgEventStore, StoreError> {
        config.validate()?;
        let map = &config.shard_map;
        let mut pools = Vec::new();
        let mut stream_pools = Vec::new();
        for url in map.databases() {
            let pool = pool(url, config.pool_size)?;
            crate::migrate::run(&pool, crate::migrate::MIGRATIONS)
                .await
                .map_err(|e| StoreError::Unavailable(format!("migrating {url}: {e}")))?;
            stream_pools.push(match config.stream_pool_size {
                0 => pool.clone(),
                size => self::pool(url, size)?,
            });
            pools.push(pool);
        }

        let heads = Arc::new(Heads::new());
        let tail = Arc::new(TailCache::new(TAIL_EVENTS));
        let shutdown = CancellationToken::new();
        let writers = config.writers_per_database;
        let mut tasks = Vec::new();
        let mut queues: Vec<Vec<mpsc::UnboundedSender<Job>>> = Vec::new();
        for (db, url) in map.databases().iter().enumerate() {
            let (notify, moved) = mpsc::unbounded_channel();
            tasks.push(tokio::spawn(notify::run(pools[db].clone(), moved)));
            let mut senders = Vec::new();
            for _ in 0..writers {
                let (tx, rx) = mpsc::unbounded_channel();
                let writer = writer::Writer {
                    pool: pools[db].clone(),
                    jobs: rx,
                    max_batch_events: config.max_batch_events,
                    heads: Arc::clone(&heads),
                    tail: Arc::clone(&tail),
                    notify: notify.clone(),
                    shutdown: shutdown.clone(),
                    client: None,
                };
                tasks.push(tokio::spawn(writer.run()));
                senders.push(tx);
            }
            queues.push(senders);
            tasks.push(tokio::spawn(listen::run(
                url.clone(),
                Arc::clone(&heads),
                shutdown.clone(),
            )));
        }
        // The queues are unbounded: each job has a caller awaiting its answer, so the
        // queue is never longer than the number of appends in flight.
        let routes = Shard::all()
            .map(|s| queues[map.database_of(s)][usize::from(s.index()) % writers].clone())
            .collect();
        Ok(PgEventStore {
            inner: Arc::new(Inner {
                config,
                pools,
                stream_pools,
                routes,
                heads,
                tail,
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// The pool of the database holding `shard` (for tools: benches, tests, migrations).
    pub fn pool(&self, shard: Shard) -> &Pool {
        &self.inner.pools[self.inner.config.shard_map.database_of(shard)]
    }

    /// Stops taking appends (they fail with [`StoreError::ShuttingDown`]), commits and
    /// answers everything already queued, and waits for the writers and listeners to end.
    /// Reads keep working; live subscriptions then only advance by their fallback poll.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "event store task failed");
            }
        }
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.inner.config.limits.check(&request)?;
        let shard = request.stream.shard();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            appends: vec![PendingAppend::encode(request)],
            claim: None,
            reply: Reply::One(reply),
        };
        // Queued before the first await: appends reach their writer in submission order.
        self.inner.routes[usize::from(shard.index())]
            .send(job)
            .map_err(|_| StoreError::ShuttingDown)?;
        // The writer answers every job it takes, so a dropped reply means it stopped.
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    async fn append_group(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        // One shard: one writer, one transaction, one head lock.
        let shard = self.inner.config.limits.check_group(&requests)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            appends: requests.into_iter().map(PendingAppend::encode).collect(),
            claim: None,
            reply: Reply::Group(reply),
        };
        self.inner.routes[usize::from(shard.index())]
            .send(job)
            .map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    async fn append_claimed(
        &self,
        claim: ClaimKey,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        self.inner.config.limits.check_claimed(&claim, &request)?;
        let shard = request.stream.shard();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            appends: vec![PendingAppend::encode(request)],
            claim: Some(claim),
            reply: Reply::One(reply),
        };
        self.inner.routes[usize::from(shard.index())]
            .send(job)
            .map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    async fn claimed(&self, claim: &ClaimKey) -> Result<Option<StreamId>, StoreError> {
        let db = self.inner.config.shard_map.database_of(claim.shard());
        read::claimed(&self.inner.stream_pools[db], claim).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let db = self.inner.config.shard_map.database_of(stream.shard());
        read::read_stream(&self.inner.stream_pools[db], stream, from_version, limit).await
    }

    async fn read_shard(
        &self,
        shard: Shard,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_shard(self.pool(shard), shard, after, limit).await
    }

    async fn head(&self, shard: Shard) -> Result<Position, StoreError> {
        read::head(self.pool(shard), shard).await
    }

    fn subscribe(&self, shard: Shard, after: Position) -> Subscription {
        let pool = self.pool(shard).clone();
        let tail = Arc::clone(&self.inner.tail);
        let config = FollowConfig {
            page: SUBSCRIPTION_PAGE,
            fallback_poll: Some(self.inner.config.fallback_poll),
        };
        follow(
            self.inner.heads.watch(shard),
            after,
            config,
            move |after, limit| {
                let (pool, tail) = (pool.clone(), Arc::clone(&tail));
                // The read runs in its own task, so it finishes and gives its pooled
                // connection back even when the subscriber stops polling half-way (a
                // `select!` that took another branch and then awaits a checkpoint save:
                // with every connection parked so, the save waited forever). Through the
                // tail cache: the shard's other subscribers share the page (`tail.rs`).
                let read = tokio::spawn(async move {
                    tail.read(shard, after, limit, |after, limit| async move {
                        read::read_shard(&pool, shard, after, limit).await
                    })
                    .await
                });
                async move {
                    read.await
                        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("read task: {e}"))))
                }
            },
        )
    }
}
