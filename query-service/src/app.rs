//! The read side assembled: the order, stock, merchant, rider and ops-statistics projectors and the `QueryService` handler
//! over their read models.
//!
//! - **memory** ([`ReadAppBuilder::memory`], the embedded mode): memory read models, fed by
//!   the same event store the command side appends to (in process);
//! - **PostgreSQL** ([`ReadAppBuilder::postgres`]): the read-model tables of migrations 0004 and 0005
//!   in the given database (the one holding shard 0 when they share the event store's).
//!
//! Either way the projectors follow the event store's shard logs (`docs/read-side.md` says
//! why) and publish row changes on the bus when one is given. Start with
//! [`ReadAppBuilder::start`]; stop with [`ReadApp::begin_shutdown`] when the server starts
//! draining (long-polls answer, streams end), then [`ReadApp::shutdown`] once it has drained
//! (projectors finish the batch in hand — it commits or rolls back whole — and return).

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use orderflow_infra::auth::JwtAuth;
use orderflow_infra::bus::EventBus;
use orderflow_infra::store::EventStore;
use orderflow_projections::merchants::{MemoryMerchantCatalog, MerchantReader, PgMerchantCatalog};
use orderflow_projections::orders::{
    ListSide, MemoryOrderDetail, MemoryOrderList, OrderDetailReader, OrderListReader,
    PgOrderDetail, PgOrderList,
};
use orderflow_projections::riders::{MemoryRiderGeo, PgRiderGeo, RiderReader};
use orderflow_projections::stats::{MemoryMerchantHourly, PgMerchantHourly, StatsReader};
use orderflow_projections::stock::{MemoryStockLedger, PgStockLedger, StockReader};
use orderflow_projections::{ProjectionModel, Projector, ProjectorConfig};
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

    /// Where row changes are published (`{prefix}.views.{view}.{key}`); none by default.
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

    /// Builds the read models and starts their projectors.
    pub fn start(self) -> ReadApp {
        let (detail, buyers, sellers) = self.models();
        let projector = |model: Arc<dyn ProjectionModel>| {
            Projector::new(
                model,
                self.store.clone(),
                self.bus.clone(),
                self.projector.clone(),
            )
        };
        let (stock, merchants, riders) = self.catalog_models();
        // Ops statistics: no RPC reads them; they are served through `ReadApp::stats`.
        let (stats_model, stats) = self.stats_model();
        let projectors = vec![
            projector(detail.0),
            projector(buyers.0),
            projector(sellers.0),
            projector(stock.0),
            projector(merchants.0),
            projector(riders.0),
            projector(stats_model),
        ];
        let orders = OrderViews {
            detail: View::new(detail.1, projectors[0].applied().clone()),
            buyers: View::new(buyers.1, projectors[1].applied().clone()),
            sellers: View::new(sellers.1, projectors[2].applied().clone()),
        };
        let catalog = CatalogViews {
            stock: View::new(stock.1, projectors[3].applied().clone()),
            merchants: View::new(merchants.1, projectors[4].applied().clone()),
            riders: View::new(riders.1, projectors[5].applied().clone()),
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
        let tasks = projectors
            .iter()
            .map(|p| {
                let (p, token) = (p.clone(), background.child_token());
                let name = p.name();
                let task = tokio::spawn(async move {
                    if let Err(e) = p.run(token).await {
                        tracing::error!(projection = name, error = %e, "projector failed");
                    }
                });
                (name, task)
            })
            .collect();
        ReadApp {
            inner: Arc::new(Inner {
                handler,
                projectors,
                stats,
                queries,
                background,
                tasks: Mutex::new(tasks),
            }),
        }
    }

    /// The catalog views (`stock_ledger`, `merchant_catalog`, `rider_geo`): each model and
    /// read port.
    #[allow(clippy::type_complexity)]
    fn catalog_models(
        &self,
    ) -> (
        (Arc<dyn ProjectionModel>, Arc<dyn StockReader>),
        (Arc<dyn ProjectionModel>, Arc<dyn MerchantReader>),
        (Arc<dyn ProjectionModel>, Arc<dyn RiderReader>),
    ) {
        match &self.backend {
            Backend::Memory => {
                let stock = Arc::new(MemoryStockLedger::new());
                let merchants = Arc::new(MemoryMerchantCatalog::new());
                let riders = Arc::new(MemoryRiderGeo::new());
                (
                    (stock.clone(), stock),
                    (merchants.clone(), merchants),
                    (riders.clone(), riders),
                )
            }
            Backend::Postgres(pool) => {
                let queries = self.queries.as_ref().unwrap_or(pool);
                (
                    (
                        Arc::new(PgStockLedger::new(pool.clone())),
                        Arc::new(PgStockLedger::new(queries.clone())),
                    ),
                    (
                        Arc::new(PgMerchantCatalog::new(pool.clone())),
                        Arc::new(PgMerchantCatalog::new(queries.clone())),
                    ),
                    (
                        Arc::new(PgRiderGeo::new(pool.clone())),
                        Arc::new(PgRiderGeo::new(queries.clone())),
                    ),
                )
            }
        }
    }

    /// The ops statistics (`merchant_hourly`): model and read port.
    fn stats_model(&self) -> (Arc<dyn ProjectionModel>, Arc<dyn StatsReader>) {
        match &self.backend {
            Backend::Memory => {
                let stats = Arc::new(MemoryMerchantHourly::new());
                (stats.clone(), stats)
            }
            Backend::Postgres(pool) => {
                let queries = self.queries.as_ref().unwrap_or(pool);
                (
                    Arc::new(PgMerchantHourly::new(pool.clone())),
                    Arc::new(PgMerchantHourly::new(queries.clone())),
                )
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn models(
        &self,
    ) -> (
        (Arc<dyn ProjectionModel>, Arc<dyn OrderDetailReader>),
        (Arc<dyn ProjectionModel>, Arc<dyn OrderListReader>),
        (Arc<dyn ProjectionModel>, Arc<dyn OrderListReader>),
    ) {
        match &self.backend {
            Backend::Memory => {
                let detail = Arc::new(MemoryOrderDetail::new());
                let buyers = Arc::new(MemoryOrderList::new(ListSide::Buyer));
                let sellers = Arc::new(MemoryOrderList::new(ListSide::Seller));
                (
                    (detail.clone(), detail),
                    (buyers.clone(), buyers),
                    (sellers.clone(), sellers),
                )
            }
            Backend::Postgres(pool) => {
                // The same adapter twice: writing on the projectors' pool, reading on the
                // queries'.
                let queries = self.queries.as_ref().unwrap_or(pool);
                (
                    (
                        Arc::new(PgOrderDetail::new(pool.clone())),
                        Arc::new(PgOrderDetail::new(queries.clone())),
                    ),
                    (
                        Arc::new(PgOrderList::new(ListSide::Buyer, pool.clone())),
                        Arc::new(PgOrderList::new(ListSide::Buyer, queries.clone())),
                    ),
                    (
                        Arc::new(PgOrderList::new(ListSide::Seller, pool.clone())),
                        Arc::new(PgOrderList::new(ListSide::Seller, queries.clone())),
                    ),
                )
            }
        }
    }
}

/// The read side of one process. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct ReadApp {
    inner: Arc<Inner>,
}

struct Inner {
    handler: QueryHandler,
    projectors: Vec<Projector>,
    /// `merchant_hourly`, read by ops tools and analytics (no RPC in the contract).
    stats: Arc<dyn StatsReader>,
    /// Cancelled when the server starts draining: long-polls and streams end.
    queries: CancellationToken,
    /// Cancelled once the server has drained: projectors stop.
    background: CancellationToken,
    /// A std Mutex: only held to take the list, never across an await.
    tasks: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
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

    /// Every running projector (names, applied positions, stats).
    pub fn projectors(&self) -> &[Projector] {
        &self.inner.projectors
    }

    pub fn projector(&self, name: &str) -> Option<&Projector> {
        self.inner.projectors.iter().find(|p| p.name() == name)
    }

    /// The server is draining: answer long-polls now and end streams.
    pub fn begin_shutdown(&self) {
        self.inner.queries.cancel();
    }

    /// Stops the projectors and waits for each. Idempotent.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.inner.background.cancel();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, task) in tasks {
            if let Err(e) = task.await {
                tracing::error!(projection = name, error = %e, "projector task panicked");
            }
        }
        tracing::info!("read side stopped");
    }
}
