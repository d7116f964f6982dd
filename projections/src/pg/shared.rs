//! Shared, pipelined read connections for the hot queries (`GetOrder`, the buyer and seller
//! lists): a few long-lived clients, each used by many requests at once.
//!
//! Why: on the query pool every query took a connection, ran one statement and gave it back,
//! so each query woke one PostgreSQL backend, which read one request, answered it and went
//! back to sleep. Measured under `orderflow bench query` (docs/BENCHMARKS.md, session 7), a
//! list page's statement costs PostgreSQL 75–96 µs, but the pool's backends spent
//! 160–250 µs per query: the rest was the wake-up, the socket reads and writes and the
//! context switches of one round trip per query. A `tokio_postgres::Client` is usable from
//! many tasks at once, and requests issued together are *pipelined*: its connection task
//! writes every queued request in one write, and the backend reads several per wake-up and
//! works through them without sleeping in between. With a handful of busy connections instead
//! of sixteen mostly idle ones, the per-round-trip cost is shared by the queries queued
//! together.
//!
//! - **Prepared once per connection**: each statement is parsed on first use on a client and
//!   reused by every later request on it (one `prepare` even when many requests want it at
//!   once: they wait for the same cell).
//! - **Least busy first**: a request goes to the client with the fewest queries in flight
//!   (ties in turn), so a client held up by a slower statement gets fewer new ones. Slow
//!   queries (search, large pages, the catalog's) stay on the query pool: behind one of them
//!   on a shared client, every request queued after it would wait (head-of-line blocking).
//! - **Reconnect**: a client whose connection broke (the server restarted, the backend was
//!   terminated) fails the queries in flight on it with the error they got, mapped as every
//!   read error (`ProjectionError::Unavailable`); the next request on that slot opens a new
//!   connection (one per slot, however many requests find it broken).
//! - **Shutdown**: [`SharedReads::close`] ends every connection (after the queries in flight
//!   on it) and waits for their tasks; later requests fail as unavailable. Dropping the last
//!   clone also ends them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};
use tracing::instrument;

use crate::error::ProjectionError;

/// A connect that takes longer fails the request (the pool has no bound; a shared client is
/// awaited by every request of its slot, so one is needed here).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`SharedReads::close`] waits for a connection to end before dropping its task.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A fixed set of shared read connections to one database. Cheap to clone: clones share the
/// connections.
#[derive(Clone)]
pub struct SharedReads {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    slots: Vec<Slot>,
    /// Where the search for the least busy slot starts: ties go round in turn.
    next: AtomicUsize,
    closed: AtomicBool,
}

struct Slot {
    /// The slot's connection, once opened and until it breaks. A std RwLock: held only to
    /// clone or replace the `Arc`, never across an await.
    live: RwLock<Option<Arc<Live>>>,
    /// Held across a (re)connect, so that the requests finding the slot without a working
    /// connection wait for one new connection instead of each opening its own. A tokio
    /// Mutex: held across the connect's await.
    connecting: tokio::sync::Mutex<()>,
    /// Queries issued on this slot and not yet answered.
    in_flight: AtomicUsize,
    /// The tasks driving the slot's connections, awaited by `close`. A std Mutex: no await
    /// while held.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Live {
    client: Client,
    /// Each statement prepared on this connection, by its text. A std Mutex: held to find or
    /// insert a cell, never across an await (the cell is awaited outside it).
    statements: Mutex<HashMap<String, Arc<OnceCell<Statement>>>>,
}

/// A query counted in its slot's `in_flight` until dropped (answered, failed or cancelled).
struct InFlight<'a>(&'a Slot);

impl<'a> InFlight<'a> {
    fn enter(slot: &'a Slot) -> Self {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(slot)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SharedReads {
    /// `clients` shared connections (at least one) to the database at `url`, opened on first
    /// use. Like the query pool, they leave `plan_cache_mode` at PostgreSQL's default
    /// (`query_pool` says why).
    pub fn new(url: &str, clients: usize) -> Result<Self, ProjectionError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| ProjectionError::Unavailable(format!("read-model database url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let slots = (0..clients.max(1))
            .map(|_| Slot {
                live: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                in_flight: AtomicUsize::new(0),
                tasks: Mutex::new(Vec::new()),
            })
            .collect();
        Ok(SharedReads {
            inner: Arc::new(Inner {
                config,
                slots,
                next: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// How many shared connections there are (open or not).
    pub fn clients(&self) -> usize {
        self.inner.slots.len()
    }

    /// The rows of the prepared statement `sql` with `params`.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ProjectionError> {
        let slot = self.pick();
        let _counted = InFlight::enter(slot);
        let (live, statement) = self.prepared(slot, sql).await?;
        Ok(live.client.query(&statement, params).await?)
    }

    /// The one row (or none) of the prepared statement `sql` with `params`; more than one row
    /// is an error.
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, ProjectionError> {
        let slot = self.pick();
        let _counted = InFlight::enter(slot);
        let (live, statement) = self.prepared(slot, sql).await?;
        Ok(live.client.query_opt(&statement, params).await?)
    }

    /// Ends every connection once the queries in flight on it are answered, and waits (at
    /// most [`CLOSE_WAIT`] each) for them to end. Requests after this fail as unavailable.
    /// Idempotent.
    #[instrument(skip_all, fields(clients = self.inner.slots.len()))]
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for slot in &self.inner.slots {
            // No connect in progress past this point: the next one sees `closed`.
            let _turn = slot.connecting.lock().await;
            // The connection ends when the last request holding it lets go.
            write(&slot.live).take();
            tasks.append(&mut slot.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        }
        for mut task in tasks {
            if tokio::time::timeout(CLOSE_WAIT, &mut task).await.is_err() {
                tracing::warn!("a shared read connection did not end in time: dropped");
                task.abort();
            }
        }
    }

    /// The slot with the fewest queries in flight, searching from a rotating start.
    fn pick(&self) -> &Slot {
        let slots = &self.inner.slots;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % slots.len();
        let mut best = start;
        let mut least = usize::MAX;
        for i in 0..slots.len() {
            let at = (start + i) % slots.len();
            let busy = slots[at].in_flight.load(Ordering::Relaxed);
            if busy < least {
                (best, least) = (at, busy);
            }
        }
        &slots[best]
    }

    /// The slot's working connection and `sql` prepared on it.
    async fn prepared(
        &self,
        slot: &Slot,
        sql: &str,
    ) -> Result<(Arc<Live>, Statement), ProjectionError> {
        let live = match working(slot) {
            Some(live) => live,
            None => self.connect(slot).await?,
        };
        let statement = live.statement(sql).await?;
        Ok((live, statement))
    }

    /// Opens the slot's connection if no other request did while this one waited its turn.
    #[instrument(skip_all)]
    async fn connect(&self, slot: &Slot) -> Result<Arc<Live>, ProjectionError> {
        let _turn = slot.connecting.lock().await;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ProjectionError::Unavailable(
                "shared read connections are closed".to_owned(),
            ));
        }
        if let Some(live) = working(slot) {
            return Ok(live);
        }
        let (client, connection) = self.inner.config.connect(NoTls).await?;
        let task = tokio::spawn(async move {
            // A broken connection fails the requests in flight on it with their own error;
            // this says why it ended.
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "shared read connection ended");
            }
        });
        let live = Arc::new(Live {
            client,
            statements: Mutex::new(HashMap::new()),
        });
        *write(&slot.live) = Some(live.clone());
        let mut tasks = slot.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
        Ok(live)
    }
}

/// The slot's connection, unless it has none or it broke.
fn working(slot: &Slot) -> Option<Arc<Live>> {
    let live = slot
        .live
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()?;
    (!live.client.is_closed()).then_some(live)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    /// `sql` prepared on this connection: parsed once, by the first request that wants it.
    async fn statement(&self, sql: &str) -> Result<Statement, ProjectionError> {
        let cell = {
            let mut statements = self
                .statements
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match statements.get(sql) {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    statements.insert(sql.to_owned(), cell.clone());
                    cell
                }
            }
        };
        let statement = cell.get_or_try_init(|| self.client.prepare(sql)).await?;
        Ok(statement.clone())
    }
}

/// `sql` run on a connection of `pool`, prepared once per connection (`prepare_cached`): the
/// path of the reads that stay on the query pool.
pub async fn pool_query(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ProjectionError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// As [`pool_query`], for at most one row.
pub async fn pool_query_opt(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, ProjectionError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}
