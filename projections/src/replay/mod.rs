//! Rebuilding a projection from position 0 while the live one keeps answering
//! (`orderflow replay <projection>`).
//!
//! 1. [`Replay::prepare`]: fresh shadow tables in schema `replay_{name}` ([`shadow`]), cloned
//!    from the live ones, with their own `checkpoints`;
//! 2. [`Replay::catch_up`]: the projection's own PostgreSQL adapter, on a pool whose
//!    `search_path` puts the shadow schema first, is fed every shard from position 0 in large
//!    batches read with `read_shard` (no bus, no publishing), until it is near the heads;
//! 3. [`Replay::hold`]: one transaction on the live database locks the projection's live
//!    checkpoint rows (the live projector's next batch waits there), the shadow applies the
//!    tail up to at least the live positions;
//! 4. [`Held::swap`]: in that same transaction the live tables move out, the shadow tables
//!    move in and the live checkpoints take the shadow's; commit. The waiting projector
//!    then reads the swapped checkpoint and continues on the new tables.
//!
//! Interrupted anywhere before the commit, the live tables and checkpoints are untouched
//! (the shadow is dropped by the next rebuild). See `docs/read-side.md`, "Rebuild".
//!
//! Any projection can be rebuilt: its [`Rebuildable`] entry names its tables and how its
//! PostgreSQL adapter is built over a pool, and [`CATALOG`] lists them.

pub mod shadow;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::{StreamExt, TryStreamExt};
use orderflow_domain::Shard;
use orderflow_infra::store::{EventStore, Position};
use tokio_postgres::{Client, NoTls};

use crate::error::ProjectionError;
use crate::merchants::{PgMerchantCatalog, MERCHANT_CATALOG};
use crate::orders::detail::ORDER_DETAIL_MERCHANTS;
use crate::orders::{
    ListSide, PgOrderDetail, PgOrderList, BUYER_ORDER, ORDER_DETAIL, SELLER_ORDER,
};
use crate::pg::{checkpoint_name, PgProjection};
use crate::riders::{PgRiderGeo, RIDER_GEO, RIDER_OFFER};
use crate::stats::{PgMerchantHourly, MERCHANT_HOURLY};
use crate::stock::{PgStockLedger, STOCK_LEDGER, STOCK_RESERVATION};

pub use shadow::shadow_schema;

/// A projection `orderflow replay` can rebuild.
pub struct Rebuildable {
    pub name: &'static str,
    /// The tables it owns in `public` (a partitioned table brings its partitions).
    pub tables: &'static [&'static str],
    /// Its PostgreSQL adapter over `pool` (which may be a shadow's): a rebuild applies it
    /// alone (`ProjectionModel::apply`), the live read side as a member of a
    /// [`crate::pg::PgProjectionGroup`].
    pub model: fn(Pool) -> Arc<dyn PgProjection>,
}

/// Every rebuildable projection. A new PostgreSQL projection adds its line here.
pub const CATALOG: &[Rebuildable] = &[
    Rebuildable {
        name: ORDER_DETAIL,
        tables: &[ORDER_DETAIL, ORDER_DETAIL_MERCHANTS],
        model: order_detail,
    },
    Rebuildable {
        name: BUYER_ORDER,
        tables: &["buyer_order"],
        model: buyer_order,
    },
    Rebuildable {
        name: SELLER_ORDER,
        tables: &["seller_order"],
        model: seller_order,
    },
    Rebuildable {
        name: STOCK_LEDGER,
        tables: &[STOCK_LEDGER, STOCK_RESERVATION],
        model: |pool| Arc::new(PgStockLedger::new(pool)),
    },
    Rebuildable {
        name: MERCHANT_CATALOG,
        tables: &[MERCHANT_CATALOG],
        model: |pool| Arc::new(PgMerchantCatalog::new(pool)),
    },
    Rebuildable {
        name: RIDER_GEO,
        tables: &[RIDER_GEO, RIDER_OFFER],
        model: |pool| Arc::new(PgRiderGeo::new(pool)),
    },
    Rebuildable {
        name: MERCHANT_HOURLY,
        tables: &[MERCHANT_HOURLY, "merchant_hourly_orders"],
        model: |pool| Arc::new(PgMerchantHourly::new(pool)),
    },
];

fn order_detail(pool: Pool) -> Arc<dyn PgProjection> {
    Arc::new(PgOrderDetail::new(pool))
}

fn buyer_order(pool: Pool) -> Arc<dyn PgProjection> {
    Arc::new(PgOrderList::new(ListSide::Buyer, pool))
}

fn seller_order(pool: Pool) -> Arc<dyn PgProjection> {
    Arc::new(PgOrderList::new(ListSide::Seller, pool))
}

/// The catalog entry of `name`.
pub fn find(name: &str) -> Option<&'static Rebuildable> {
    CATALOG.iter().find(|r| r.name == name)
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Events read and applied per shadow transaction.
    pub batch: usize,
    /// Shards rebuilt at once (each holds one shadow connection).
    pub concurrency: usize,
    /// Catch-up rounds stop once a round applied fewer events than this; the rest is the
    /// tail applied while the live projector waits.
    pub tail: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            // Large: a batch is one transaction and one multi-row upsert per table, and the
            // shadow is not live, so nobody waits for any one batch (BENCHMARKS.md, Rebuild).
            batch: 10_000,
            concurrency: 4,
            tail: 2_000,
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct ReplayReport {
    pub events: u64,
    pub elapsed: Duration,
}

impl ReplayReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One rebuild in progress.
pub struct Replay {
    target: &'static Rebuildable,
    live: tokio_postgres::Config,
    shadow: Arc<dyn PgProjection>,
    /// GIN indexes of the shadow, built once the catch-up has filled it.
    indexes: Vec<String>,
    store: Arc<dyn EventStore>,
    config: ReplayConfig,
    events: u64,
    started: Instant,
}

impl Replay {
    /// Creates the (empty) shadow tables in the read models' database `live`, dropping any an
    /// interrupted rebuild left.
    pub async fn prepare(
        target: &'static Rebuildable,
        live: tokio_postgres::Config,
        store: Arc<dyn EventStore>,
        config: ReplayConfig,
    ) -> Result<Replay, ProjectionError> {
        let started = Instant::now();
        let client = connect(&live).await?;
        let indexes = shadow::create(&client, target.name, target.tables).await?;
        let mut shadow_config = live.clone();
        // The shadow's commits do not wait for the WAL flush: a crash loses at most the last
        // few batches of a rebuild that starts over from position 0 anyway, and the swap's own
        // (synchronous) commit flushes every earlier one before the tables go live.
        shadow_config.options(format!(
            "-c search_path={},public -c synchronous_commit=off",
            shadow::ident(&shadow_schema(target.name))
        ));
        let pool = Pool::builder(Manager::from_config(
            shadow_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        .max_size(config.concurrency.max(1))
        .build()
        .map_err(|e| ProjectionError::Unavailable(e.to_string()))?;
        Ok(Replay {
            target,
            live,
            shadow: (target.model)(pool),
            indexes,
            store,
            config,
            events: 0,
            started,
        })
    }

    pub fn target(&self) -> &'static Rebuildable {
        self.target
    }

    /// The shadow model (for comparisons before the swap).
    pub fn shadow(&self) -> &Arc<dyn PgProjection> {
        &self.shadow
    }

    /// Applies every shard up to `until` (absent shards: nothing). Returns the events applied.
    pub async fn catch_up_to(
        &mut self,
        until: &HashMap<Shard, Position>,
    ) -> Result<u64, ProjectionError> {
        let from = self.shadow.checkpoints().await?;
        let (shadow, store, batch) = (&self.shadow, &self.store, self.config.batch);
        let applied: Vec<u64> = futures::stream::iter(Shard::all())
            .map(|shard| {
                let after = from.get(&shard).copied().unwrap_or(Position::ZERO);
                let until = until.get(&shard).copied().unwrap_or(Position::ZERO);
                async move {
                    // Reads the next batch while the shadow applies this one.
                    let read = |after: Position| async move {
                        if after >= until {
                            return Ok(Vec::new());
                        }
                        let room = usize::try_from(until.get() - after.get()).unwrap_or(batch);
                        let mut events = store.read_shard(shard, after, batch.min(room)).await?;
                        events.retain(|e| e.position <= until);
                        Ok::<_, ProjectionError>(events)
                    };
                    let mut applied = 0u64;
                    let mut next = read(after).await?;
                    while let Some(last) = next.last().map(|e| e.position) {
                        let events = std::mem::take(&mut next);
                        let (done, ahead) = tokio::join!(shadow.apply(shard, &events), read(last));
                        done?;
                        next = ahead?;
                        applied += events.len() as u64;
                    }
                    Ok::<u64, ProjectionError>(applied)
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        let total = applied.iter().sum();
        self.events += total;
        Ok(total)
    }

    /// Catch-up rounds to the store's heads until a round is no bigger than the tail.
    pub async fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        let mut total = 0;
        loop {
            let heads = heads(self.store.as_ref()).await?;
            let applied = self.catch_up_to(&heads).await?;
            total += applied;
            if applied <= self.config.tail {
                return Ok(total);
            }
        }
    }

    /// Locks the live checkpoints (the live projector waits) and applies the tail, so the
    /// shadow holds at least what the live tables hold. Dropping the [`Held`] without
    /// swapping rolls back: nothing live changed.
    pub async fn hold(mut self) -> Result<Held, ProjectionError> {
        let client = connect(&self.live).await?;
        // Before the lock: the live projector does not wait for the index builds.
        shadow::build_indexes(&client, &std::mem::take(&mut self.indexes)).await?;
        client.batch_execute("BEGIN").await?;
        let name = checkpoint_name(self.target.name);
        let shards: Vec<i16> = Shard::all().map(|s| i16::from(s.index())).collect();
        client
            .execute(
                "INSERT INTO public.checkpoints (name, shard, position)
                 SELECT $1, s, 0 FROM unnest($2::smallint[]) AS s
                 ON CONFLICT (name, shard) DO NOTHING",
                &[&name, &shards],
            )
            .await?;
        let mut live = HashMap::new();
        for row in client
            .query(
                "SELECT shard, position FROM public.checkpoints WHERE name = $1
                 ORDER BY shard FOR UPDATE",
                &[&name],
            )
            .await?
        {
            let (shard, position): (i16, i64) = (row.get(0), row.get(1));
            if let Ok(shard) = Shard::try_from(i64::from(shard)) {
                live.insert(shard, Position::new(u64::try_from(position).unwrap_or(0)));
            }
        }
        let mut until = self.shadow.checkpoints().await?;
        for (shard, position) in &live {
            let at = until.entry(*shard).or_insert(Position::ZERO);
            *at = (*at).max(*position);
        }
        self.catch_up_to(&until).await?;
        Ok(Held {
            replay: self,
            client,
            live,
        })
    }

    /// prepare → catch up → hold → swap, and drop the leftovers.
    pub async fn run(
        target: &'static Rebuildable,
        live: tokio_postgres::Config,
        store: Arc<dyn EventStore>,
        config: ReplayConfig,
    ) -> Result<ReplayReport, ProjectionError> {
        let mut replay = Replay::prepare(target, live, store, config).await?;
        replay.catch_up().await?;
        replay.hold().await?.swap().await
    }
}

/// A rebuild whose live checkpoints are locked: the live tables do not move until
/// [`Held::swap`] or drop.
pub struct Held {
    replay: Replay,
    client: Client,
    live: HashMap<Shard, Position>,
}

impl Held {
    /// The live checkpoints, frozen while held.
    pub fn live_positions(&self) -> &HashMap<Shard, Position> {
        &self.live
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// Swaps the shadow tables in and commits; then drops the old tables.
    pub async fn swap(self) -> Result<ReplayReport, ProjectionError> {
        let target = self.replay.target;
        shadow::swap(&self.client, target.name, target.tables).await?;
        self.client.batch_execute("COMMIT").await?;
        let report = ReplayReport {
            events: self.replay.events,
            elapsed: self.replay.started.elapsed(),
        };
        shadow::drop_all(&self.client, target.name).await?;
        Ok(report)
    }
}

/// Every shard's head.
pub async fn heads(store: &dyn EventStore) -> Result<HashMap<Shard, Position>, ProjectionError> {
    let mut heads = HashMap::new();
    for shard in Shard::all() {
        heads.insert(shard, store.head(shard).await?);
    }
    Ok(heads)
}

/// A connection of its own, outside any pool: dropping it ends its session, so a held
/// transaction never outlives its rebuild.
async fn connect(config: &tokio_postgres::Config) -> Result<Client, ProjectionError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "replay connection ended");
        }
    });
    Ok(client)
}
