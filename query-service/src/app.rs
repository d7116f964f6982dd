//! The read side assembled: the order, stock, merchant, rider and ops-statistics read models,
//! their projector, and the `QueryService` handler over them.
//!
//! - **memory** ([`ReadAppBuilder::memory`], the embedded mode): memory read models, fed by
//!   the same event store the command side appends to (in process);
//! - **PostgreSQL** ([`ReadAppBuilder::postgres`]): the read-model tables of migrations 0004 and 0005
//!   in the given database (the one holding shard 0 when they share the event store's).
//!
//! Either way one projector runs every read model as a group (one task and subscription per
//! shard; on PostgreSQL one transaction per batch for all seven, shards' batches sharing one
//! under load), follows the event
//! store's shard logs (`docs/read-side.md` says why) and publishes row changes on the bus
//! when one is given; each read model keeps its own checkpoints and applied positions. Start
//! with [`ReadAppBuilder::start`]; stop with [`ReadApp::begin_shutdown`] when the server
//! starts draining (long-polls answer, streams end), then [`ReadApp::shutdown`] once it has
//! drained (the projector finishes the batch in hand — it commits or rolls back whole — and
//! returns).

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use orderflow_infra::auth::JwtAuth;
use orderflow_infra::bus::EventBus;
use orderflow_infra::store::EventStore;
use orderflow_projections::merchants::{
    MemoryMerchantCatalog, MerchantReader, PgMerchantCatalog, MERCHANT_CATALOG,
};
use orderflow_projections::orders::{
    ListSide, MemoryOrderDetail, MemoryOrderList, OrderDetailReader, OrderListReader,
    PgOrderDetail, PgOrderList, BUYER_ORDER, ORDER_DETAIL, SELLER_ORDER,
};
use orderflow_projections::pg::SharedReads;
use orderflow_projections::riders::{MemoryRiderGeo, PgRiderGeo, RiderReader, RIDER_GEO};
use orderflow_projections::stats::{MemoryMerchantHourly, PgMerchantHourly, StatsReader};
use orderflow_projections::stock::{MemoryStockLedger, PgStockLedger, StockReader, STOCK_LEDGER};
use orderflow_projections::{
    PgProjection, PgProjectionGroup, ProjectionGroup, ProjectionHandle, ProjectionModel, Projector,
    ProjectorConfig, Sequential,
};
use orderflow_proto::v1::query_service_server::QueryServiceServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::read_models::{CatalogViews, OrderViews, View};
use crate::service::{system_now, Now, QueryConfig, QueryHandler};

enum Backend {
    Memory,
    Postgres(Pool),
}

pub struct ReadAppBuilder {
    auth: JwtAuth,
    store: Arc<dyn EventStore>,
    bus: Option<Arc<dyn EventBus>>,
    now: Now,
    config: QueryConfig,
    projector: ProjectorConfig,
    backend: Backend,
    /// The readers' pool, when apart from the projectors' (`query_pool`).
    queries: Option<Pool>,
    /// The hot queries' shared connections, if any (`shared_reads`).
    shared: Option<SharedReads>,
}

impl ReadAppBuilder {
    /// Memory read models (the default).
    pub fn memory(mut self) -> Self {
        self.backend = Backend::Memory;
        self
    }

    /// PostgreSQL read models in `pool`'s database (migrated: `orderflow_infra::migrate`).
    /// Projectors and queries share `pool` unless [`ReadAppBuilder::query_pool`] is given.
    pub fn postgres(mut self, pool: Pool) -> Self {
        self.backend = Backend::Postgres(pool);
        self
    }

    /// The queries' own pool (same database as [`ReadAppBuilder::postgres`]'s), so readers
    /// never wait behind a projector's batch for a connection, nor projectors behind a burst
    /// of queries: `orderflow_projections::pg::query_pool`, sized by `query_pool_size`.
    pub fn query_pool(mut self, pool: Pool) -> Self {
        self.queries = Some(pool);
        self
    }

    /// Shared, pipelined connections (same database) for the hot queries: `GetOrder` (and
    /// `IsCreated`, `WatchOrder`) and list pages of the buyer and seller views; search and
    /// the other read models stay on the query pool. Closed by [`ReadApp::shutdown`].
    pub fn shared_reads(mut self, shared: SharedReads) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Where row changes are published (`{prefix}.views.{view}.{shard}`); none by default.
    pub fn bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The service clock (token expiry); the wall clock by default.
    pub fn now(mut self, now: Now) -> Self {
        self.now = now;
        self
    }

    pub fn config(mut self, config: QueryConfig) -> Self {
        self.config = config;
        self
    }

    pub fn projector_config(mut self, config: ProjectorConfig) -> Self {
        self.projector = config;
        self
    }

    /// Builds the read models and starts their projector: one for all of them, so one task
    /// and one subscription per shard; on PostgreSQL one transaction per batch for the seven
    /// projections, queued shards' batches sharing one (`PgProjectionGroup`), in memory one
    /// model after another.
    pub fn start(self) -> ReadApp {
        let (group, readers) = self.models();
        let projector = Projector::group(
            group,
            self.store.clone(),
            self.bus.clone(),
            self.projector.clone(),
        );
        // Each view waits on its own projection's applied positions.
        let applied = |name: &str| {
            projector
                .projection(name)
                .expect("every read model is a member of the group")
                .applied()
                .clone()
        };
        let orders = OrderViews {
            detail: View::new(readers.detail, applied(ORDER_DETAIL)),
            buyers: View::new(readers.buyers, applied(BUYER_ORDER)),
            sellers: View::new(readers.sellers, applied(SELLER_ORDER)),
        };
        let catalog = CatalogViews {
            stock: View::new(readers.stock, applied(STOCK_LEDGER)),
            merchants: View::new(readers.merchants, applied(MERCHANT_CATALOG)),
            riders: View::new(readers.riders, applied(RIDER_GEO)),
        };
        let queries = CancellationToken::new();
        let handler = QueryHandler::new(
            self.auth,
            self.now,
            orders,
            self.store,
            self.config,
            queries.clone(),
        )
        .with_catalog(catalog);
        let background = CancellationToken::new();
        let task = {
            let (p, token) = (projector.clone(), background.child_token());
            tokio::spawn(async move {
                let name = p.name().to_owned();
                if let Err(e) = p.run(token).await {
                    tracing::error!(projection = name, error = %e, "projector failed");
                }
            })
        };
        ReadApp {
            inner: Arc::new(Inner {
                handler,
                projector,
                stats: readers.stats,
                shared: self.shared.clone(),
                queries,
                background,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// The read models as one projection group (the projector's side) and their read ports
    /// (the queries' side).
    fn models(&self) -> (Arc<dyn ProjectionGroup>, Readers) {
        match &self.backend {
            Backend::Memory => {
                let detail = Arc::new(MemoryOrderDetail::new());
                let buyers = Arc::new(MemoryOrderList::new(ListSide::Buyer));
                let sellers = Arc::new(MemoryOrderList::new(ListSide::Seller));
                let stock = Arc::new(MemoryStockLedger::new());
                let merchants = Arc::new(MemoryMerchantCatalog::new());
                let riders = Arc::new(MemoryRiderGeo::new());
                // Ops statistics: no RPC reads them; they are served through `ReadApp::stats`.
                let stats = Arc::new(MemoryMerchantHourly::new());
                let members: Vec<Arc<dyn ProjectionModel>> = vec![
                    detail.clone(),
                    buyers.clone(),
                    sellers.clone(),
                    stock.clone(),
                    merchants.clone(),
                    riders.clone(),
                    stats.clone(),
                ];
                let readers = Readers {
                    detail,
                    buyers,
                    sellers,
                    stock,
                    merchants,
                    riders,
                    stats,
                };
                (Arc::new(Sequential::new(members)), readers)
            }
            Backend::Postgres(pool) => {
                // Each adapter twice: writing on the projectors' pool, reading on the
                // queries'.
                let queries = self.queries.as_ref().unwrap_or(pool);
                let members: Vec<Arc<dyn PgProjection>> = vec![
                    Arc::new(PgOrderDetail::new(pool.clone())),
                    Arc::new(PgOrderList::new(ListSide::Buyer, pool.clone())),
                    Arc::new(PgOrderList::new(ListSide::Seller, pool.clone())),
                    Arc::new(PgStockLedger::new(pool.clone())),
                    Arc::new(PgMerchantCatalog::new(pool.clone())),
                    Arc::new(PgRiderGeo::new(pool.clone())),
                    Arc::new(PgMerchantHourly::new(pool.clone())),
                ];
                let (mut detail, mut buyers, mut sellers) = (
                    PgOrderDetail::new(queries.clone()),
                    PgOrderList::new(ListSide::Buyer, queries.clone()),
                    PgOrderList::new(ListSide::Seller, queries.clone()),
                );
                if let Some(shared) = &self.shared {
                    detail = detail.with_shared_reads(shared.clone());
                    buyers = buyers.with_shared_reads(shared.clone());
                    sellers = sellers.with_shared_reads(shared.clone());
                }
                let readers = Readers {
                    detail: Arc::new(detail),
                    buyers: Arc::new(buyers),
                    sellers: Arc::new(sellers),
                    stock: Arc::new(PgStockLedger::new(queries.clone())),
                    merchants: Arc::new(PgMerchantCatalog::new(queries.clone())),
                    riders: Arc::new(PgRiderGeo::new(queries.clone())),
                    stats: Arc::new(PgMerchantHourly::new(queries.clone())),
                };
                (
                    Arc::new(PgProjectionGroup::new(pool.clone(), members)),
                    readers,
                )
            }
        }
    }
}

/// The read ports the queries answer from, one per read model.
struct Readers {
    detail: Arc<dyn OrderDetailReader>,
    buyers: Arc<dyn OrderListReader>,
    sellers: Arc<dyn OrderListReader>,
    stock: Arc<dyn StockReader>,
    merchants: Arc<dyn MerchantReader>,
    riders: Arc<dyn RiderReader>,
    stats: Arc<dyn StatsReader>,
}

/// The read side of one process. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct ReadApp {
    inner: Arc<Inner>,
}

struct Inner {
    handler: QueryHandler,
    /// Runs every read model (a group).
    projector: Projector,
    /// `merchant_hourly`, read by ops tools and analytics (no RPC in the contract).
    stats: Arc<dyn StatsReader>,
    /// The hot queries' shared connections, closed at shutdown.
    shared: Option<SharedReads>,
    /// Cancelled when the server starts draining: long-polls and streams end.
    queries: CancellationToken,
    /// Cancelled once the server has drained: projectors stop.
    background: CancellationToken,
    /// The projector's task, until shutdown takes it. A std Mutex: only held to take it,
    /// never across an await.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ReadApp {
    /// A builder for memory read models over `store`.
    pub fn builder(auth: JwtAuth, store: Arc<dyn EventStore>) -> ReadAppBuilder {
        ReadAppBuilder {
            auth,
            store,
            bus: None,
            now: system_now(),
            config: QueryConfig::default(),
            projector: ProjectorConfig::default(),
            backend: Backend::Memory,
            queries: None,
            shared: None,
        }
    }

    pub fn handler(&self) -> &QueryHandler {
        &self.inner.handler
    }

    /// The tonic service, to add to a server (`command_service::server::run_with`).
    pub fn query_service(&self) -> QueryServiceServer<QueryHandler> {
        QueryServiceServer::new(self.inner.handler.clone())
    }

    /// Ops statistics per merchant per hour (`merchant_hourly`): the contract has no RPC for
    /// them, so tools in this process read them here (analytics: its table or row changes).
    pub fn stats(&self) -> &Arc<dyn StatsReader> {
        &self.inner.stats
    }

    /// The projector running every read model (its stats; the position all have reached).
    pub fn projector(&self) -> &Projector {
        &self.inner.projector
    }

    /// Every read model's projection (names, applied positions).
    pub fn projections(&self) -> &[ProjectionHandle] {
        self.inner.projector.projections()
    }

    pub fn projection(&self, name: &str) -> Option<&ProjectionHandle> {
        self.inner.projector.projection(name)
    }

    /// The server is draining: answer long-polls now and end streams.
    pub fn begin_shutdown(&self) {
        self.inner.queries.cancel();
    }

    /// Stops the projector and waits for it, then closes the shared read connections (the
    /// server has drained: no query is in flight). Idempotent.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.inner.background.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "projector task panicked");
            }
        }
        if let Some(shared) = &self.inner.shared {
            shared.close().await;
        }
        tracing::info!("read side stopped");
    }
}
