//! The one door to Sku streams: every listing, restock and reservation goes through here.
//!
//! Each SKU has one **single writer** in this process: a task that owns the SKU's state and
//! stream version, fed by a channel. It takes commands in arrival order, decides each on its
//! in-memory state, and appends a whole batch at once (`append_many` with chained expected
//! versions, which group commit turns into one transaction); callers are answered only once
//! their append is durable. No optimistic-retry storm, and it never oversells: a decision is
//! made on a state that includes every earlier decision. See `stock/writer.rs` for the loop
//! and `docs/flash-sale.md` for why and what it costs.
//!
//! Writers are spawned on first use (state rebuilt from the stream) and drop themselves after
//! `idle` without work. Another process writing the same SKU is detected as an append
//! conflict: the writer reloads and decides again, so correctness never depends on being
//! the only writer, only speed does.

mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use orderflow_domain::sku::{Listing, SkuCommand, SkuEvent, SkuState};
use orderflow_domain::SkuId;
use tokio::sync::{mpsc, oneshot};
use tracing::instrument;

use crate::error::CommandError;
use crate::execute::{CommandMeta, Executed, Executor};

use self::writer::{Request, Writer};

/// Tuning of the single writers.
#[derive(Debug, Clone)]
pub struct StockConfig {
    /// Most commands one writer decides and appends together.
    pub max_batch: usize,
    /// Commands queued per writer before callers wait (back-pressure).
    pub queue: usize,
    /// A writer with nothing to do for this long drops its state and ends.
    pub idle: Duration,
    /// Reloads after append conflicts before a command gets `Contention`.
    pub max_reloads: usize,
}

impl Default for StockConfig {
    fn default() -> Self {
        StockConfig {
            max_batch: 1_024,
            queue: 16_384,
            idle: Duration::from_secs(60),
            max_reloads: 8,
        }
    }
}

/// A SKU as a submitter sees it: its listing and the units free to reserve, both as of its
/// writer's last durable append (every acknowledged command included, none in flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shelf {
    pub listing: Listing,
    pub available: i64,
}

impl Shelf {
    /// `None` if the SKU was never listed.
    pub(crate) fn of(state: &SkuState) -> Option<Shelf> {
        state.listing().map(|listing| Shelf {
            listing: listing.clone(),
            available: state.stock().available,
        })
    }
}

/// What a writer answers to one command.
pub type StockResult = Result<Executed<SkuEvent>, CommandError>;

/// The per-SKU single writers of this process. Cheap to clone (clones share the writers).
#[derive(Clone)]
pub struct StockWriters {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    executor: Executor,
    config: StockConfig,
    /// The running writers, each with an id so a writer that ends removes itself and not
    /// its successor. A std Mutex: held for a map lookup or insert, never across an await.
    writers: Mutex<HashMap<SkuId, (u64, mpsc::Sender<Request>)>>,
    /// Each running writer's shelf as of its last durable append (or load), so that
    /// [`StockWriters::shelf`] need not queue behind the batch the writer is committing.
    /// Only a registered writer publishes, and its entry goes when it deregisters. A std
    /// Mutex: held for one map operation, never across an await; taken after `writers`
    /// when both are held.
    shelves: Mutex<HashMap<SkuId, Option<Shelf>>>,
    next_id: AtomicU64,
}

type Registry = HashMap<SkuId, (u64, mpsc::Sender<Request>)>;

impl Inner {
    fn writers(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding it cannot leave the map half-updated.
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shelves(&self) -> MutexGuard<'_, HashMap<SkuId, Option<Shelf>>> {
        self.shelves.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets `sku`'s writer if it is still writer `id` (a newer one may be registered).
    pub(crate) fn deregister(&self, sku: &SkuId, id: u64) {
        let mut writers = self.writers();
        if writers.get(sku).is_some_and(|(current, _)| *current == id) {
            writers.remove(sku);
            self.shelves().remove(sku);
        }
    }

    /// Writer `id` of `sku` made this shelf durable (or loaded it): `None` withdraws it (the
    /// writer's state is in doubt until it reloads), `Some(s)` is what to answer.
    pub(crate) fn publish_shelf(&self, sku: &SkuId, id: u64, shelf: Option<Option<Shelf>>) {
        let writers = self.writers();
        if writers.get(sku).is_none_or(|(current, _)| *current != id) {
            return;
        }
        let mut shelves = self.shelves();
        match shelf {
            Some(shelf) => shelves.insert(sku.clone(), shelf),
            None => shelves.remove(sku),
        };
    }
}

impl StockWriters {
    pub fn new(executor: Executor) -> Self {
        Self::with_config(executor, StockConfig::default())
    }

    pub fn with_config(executor: Executor, config: StockConfig) -> Self {
        StockWriters {
            inner: Arc::new(Inner {
                executor,
                config,
                writers: Mutex::new(HashMap::new()),
                shelves: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Decides and appends one command on one SKU, through its single writer. A command id
    /// the SKU already took returns the first answer (`deduplicated`), appending nothing.
    #[instrument(skip_all, fields(sku = %sku))]
    pub async fn execute(
        &self,
        sku: &SkuId,
        command: SkuCommand,
        meta: &CommandMeta,
    ) -> StockResult {
        let reply = self.enqueue(sku, command, meta.clone()).await?;
        reply.await.unwrap_or(Err(CommandError::ShuttingDown))
    }

    /// Many commands at once (any SKUs): all are queued before any answer is awaited, so
    /// each writer sees them together and appends them in one batch. Commands on one SKU
    /// are decided in the order given. Answers come back in the same order.
    #[instrument(skip_all, fields(commands = commands.len()))]
    pub async fn execute_many(
        &self,
        commands: Vec<(SkuId, SkuCommand, CommandMeta)>,
    ) -> Vec<StockResult> {
        let mut replies = Vec::with_capacity(commands.len());
        for (sku, command, meta) in commands {
            replies.push(self.enqueue(&sku, command, meta).await);
        }
        futures::future::join_all(replies.into_iter().map(|r| async move {
            match r {
                Ok(reply) => reply.await.unwrap_or(Err(CommandError::ShuttingDown)),
                Err(e) => Err(e),
            }
        }))
        .await
    }

    /// The SKU's current state (listing, price, stock, reservations) as its writer holds it:
    /// every acknowledged command included.
    #[instrument(skip_all, fields(sku = %sku))]
    pub async fn state(&self, sku: &SkuId) -> Result<SkuState, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.send(sku, Request::State { reply }).await?;
        rx.await.unwrap_or(Err(CommandError::ShuttingDown))
    }

    /// The SKU's listing (merchant, name, price, listed) and available units as its writer
    /// holds them, every acknowledged command included; `None` if it was never listed. Cheap
    /// whatever the number of reservations, unlike [`StockWriters::state`].
    #[instrument(skip_all, fields(sku = %sku))]
    pub async fn shelf(&self, sku: &SkuId) -> Result<Option<Shelf>, CommandError> {
        // A running writer's published shelf: every acknowledged command is in it (the
        // writer publishes before it answers), and a batch being committed holds none yet.
        if let Some(shelf) = self.inner.shelves().get(sku) {
            return Ok(shelf.clone());
        }
        let (reply, rx) = oneshot::channel();
        self.send(sku, Request::Shelf { reply }).await?;
        rx.await.unwrap_or(Err(CommandError::ShuttingDown))
    }

    /// How many writers are running (for metrics and tests).
    pub fn running(&self) -> usize {
        self.inner.writers().len()
    }

    async fn enqueue(
        &self,
        sku: &SkuId,
        command: SkuCommand,
        meta: CommandMeta,
    ) -> Result<oneshot::Receiver<StockResult>, CommandError> {
        let (reply, rx) = oneshot::channel();
        let request = Request::Command {
            command,
            meta,
            reply,
        };
        self.send(sku, request).await?;
        Ok(rx)
    }

    /// Sends a request to the SKU's writer, spawning one if none runs. A writer that just
    /// went idle closed its queue: the request comes back and a fresh writer is spawned.
    async fn send(&self, sku: &SkuId, mut request: Request) -> Result<(), CommandError> {
        // Bounded: each round either delivers or finds a closed writer and replaces it.
        for _ in 0..4 {
            let (id, tx) = self.writer(sku);
            match tx.send(request).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(back)) => {
                    self.inner.deregister(sku, id);
                    request = back;
                }
            }
        }
        Err(CommandError::Contention {
            stream: sku.stream_id().to_string(),
        })
    }

    fn writer(&self, sku: &SkuId) -> (u64, mpsc::Sender<Request>) {
        let mut writers = self.inner.writers();
        if let Some((id, tx)) = writers.get(sku) {
            if !tx.is_closed() {
                return (*id, tx.clone());
            }
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.config.queue);
        writers.insert(sku.clone(), (id, tx.clone()));
        let writer = Writer::new(
            sku.clone(),
            id,
            self.inner.executor.clone(),
            self.inner.config.clone(),
            Arc::downgrade(&self.inner),
            rx,
        );
        tokio::spawn(writer.run());
        (id, tx)
    }
}

#[cfg(test)]
mod tests;
