//! The command side assembled: event store, bus, the relay between them, the executor and
//! stock writers, the `CommandService` handler, and the background tasks (relay now; the
//! process managers — submit saga, rider notifier, deadlines, reaper — plug in through
//! [`CommandApp::spawn_background`]).
//!
//! Two ways to build it ([`CommandApp::builder`]):
//! - **embedded** (default): in-memory store, in-process bus, memory checkpoints, so the
//!   binary and the tests run anywhere;
//! - **Postgres + NATS** ([`CommandAppBuilder::postgres_nats`]): `PgEventStore`,
//!   `NatsBus`, relay checkpoints in Postgres.
//!
//! Shutdown ([`CommandApp::shutdown`], called by [`crate::server::run`] once the server has
//! stopped accepting and drained its in-flight RPCs): cancel the background tasks' token,
//! wait for each task to finish (the relay saves its checkpoints), then shut the Postgres
//! store down (it commits what is queued).

use std::future::Future;
use std::sync::{Arc, Mutex};

use orderflow_domain::Shard;
use orderflow_infra::auth::JwtAuth;
use orderflow_infra::bus::{
    BusError, CheckpointStore, EventBus, InProcessBus, MemoryCheckpointStore, NatsBus,
    NatsBusConfig, PgCheckpointStore, Relay, RelayConfig, Subjects, DEFAULT_PREFIX,
};
use orderflow_infra::store::{
    EventStore, MemoryEventStore, PgEventStore, PgStoreConfig, StoreError,
};
use orderflow_proto::v1::command_service_server::CommandServiceServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::CommandConfig;
use crate::execute::Executor;
use crate::service::order_numbers::InvalidNode;
use crate::service::{CommandHandler, OrderNumbers};
use crate::stock::StockWriters;

/// Why the command side could not start or serve. Separate from [`crate::CommandError`]:
/// that one answers RPCs and maps to gRPC codes; these never reach a client, only `main`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Node(#[from] InvalidNode),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Where events are stored and published.
enum Backend {
    Embedded,
    PostgresNats {
        /// Boxed: the configuration is large and the other variants are a pointer or two.
        store: Box<PgStoreConfig>,
        nats_url: String,
        nats: NatsBusConfig,
    },
    /// Ready-made adapters (tests, benches, a binary wiring its own).
    Parts {
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
    },
}

/// The adapters a backend connects to.
struct Adapters {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
    checkpoints: Arc<dyn CheckpointStore>,
    /// The Postgres store again, typed, to shut it down; `None` for other stores.
    pg: Option<PgEventStore>,
}

impl Backend {
    async fn connect(self, subjects: &Subjects) -> Result<Adapters, AppError> {
        Ok(match self {
            Backend::Embedded => Adapters {
                store: Arc::new(MemoryEventStore::new()),
                bus: Arc::new(InProcessBus::new(subjects.clone())),
                checkpoints: Arc::new(MemoryCheckpointStore::new()),
                pg: None,
            },
            Backend::PostgresNats {
                store,
                nats_url,
                nats,
            } => {
                let pg = PgEventStore::connect(*store).await?;
                let bus = NatsBus::connect(&nats_url, subjects.clone(), nats).await?;
                // The checkpoints table is migrated in every database; the relay's live in
                // the one holding shard 0.
                let checkpoints = PgCheckpointStore::new(pg.pool(Shard::of_id(0)).clone());
                Adapters {
                    store: Arc::new(pg.clone()),
                    bus: Arc::new(bus),
                    checkpoints: Arc::new(checkpoints),
                    pg: Some(pg),
                }
            }
            Backend::Parts {
                store,
                bus,
                checkpoints,
            } => Adapters {
                store,
                bus,
                checkpoints,
                pg: None,
            },
        })
    }
}

pub struct CommandAppBuilder {
    auth: JwtAuth,
    config: CommandConfig,
    clock: Arc<dyn Clock>,
    order_no_node: Option<u8>,
    nats_prefix: String,
    relay: RelayConfig,
    backend: Backend,
}

impl CommandAppBuilder {
    pub fn config(mut self, config: CommandConfig) -> Self {
        self.config = config;
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The node digit of order numbers (0..=9); drawn at random when not set. Give every
    /// command process of one deployment its own to make numbers unique by construction.
    pub fn order_no_node(mut self, node: u8) -> Self {
        self.order_no_node = Some(node);
        self
    }

    /// Prefix of every subject and stream name (`ORDERFLOW_NATS_PREFIX`).
    pub fn nats_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.nats_prefix = prefix.into();
        self
    }

    pub fn relay_config(mut self, relay: RelayConfig) -> Self {
        self.relay = relay;
        self
    }

    /// In-memory store and in-process bus (the default).
    pub fn embedded(mut self) -> Self {
        self.backend = Backend::Embedded;
        self
    }

    /// PostgreSQL event store (migrated on connect) and NATS JetStream bus.
    pub fn postgres_nats(mut self, store: PgStoreConfig, nats_url: impl Into<String>) -> Self {
        self.backend = Backend::PostgresNats {
            store: Box::new(store),
            nats_url: nats_url.into(),
            nats: NatsBusConfig::default(),
        };
        self
    }

    /// Adapters built elsewhere.
    pub fn with_parts(
        mut self,
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Self {
        self.backend = Backend::Parts {
            store,
            bus,
            checkpoints,
        };
        self
    }

    /// Connects the backend and starts the relay.
    pub async fn build(self) -> Result<CommandApp, AppError> {
        let subjects = Subjects::new(self.nats_prefix.clone())?;
        let order_numbers = match self.order_no_node {
            Some(node) => OrderNumbers::new(node)?,
            None => OrderNumbers::random_node(),
        };
        let Adapters {
            store,
            bus,
            checkpoints,
            pg,
        } = self.backend.connect(&subjects).await?;
        // Every append, whatever the write path, feeds the append latency metric.
        let store = orderflow_infra::telemetry::TimedEventStore::wrap(store);
        tracing::info!(node = order_numbers.node(), "order numbers issued on node");

        let executor = Executor::new(store.clone());
        let stock = StockWriters::new(executor.clone());
        let handler = CommandHandler::new(
            executor.clone(),
            stock.clone(),
            self.auth.clone(),
            self.clock.clone(),
            self.config.clone(),
            Arc::new(order_numbers),
        );
        let app = CommandApp {
            inner: Arc::new(Inner {
                store: store.clone(),
                bus: bus.clone(),
                executor,
                stock,
                handler,
                config: self.config,
                clock: self.clock,
                auth: self.auth,
                subjects,
                checkpoints: checkpoints.clone(),
                pg,
                background: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let relay = Relay::new(store, bus, checkpoints, self.relay);
        app.spawn_background("relay", |token| relay.run(token));
        Ok(app)
    }
}

/// The command side of one process. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct CommandApp {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
    executor: Executor,
    stock: StockWriters,
    handler: CommandHandler,
    config: CommandConfig,
    clock: Arc<dyn Clock>,
    auth: JwtAuth,
    subjects: Subjects,
    /// Where the relay and every process manager keep their per-shard checkpoints.
    checkpoints: Arc<dyn CheckpointStore>,
    /// Kept to shut it down (it commits its queue); `None` for other stores.
    pg: Option<PgEventStore>,
    /// Cancelled once the server has drained: every background task watches a child.
    background: CancellationToken,
    /// Named background tasks, joined on shutdown. A std Mutex: only held to push or take
    /// the list, never across an await.
    tasks: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl CommandApp {
    /// A builder for embedded mode; switch with [`CommandAppBuilder::postgres_nats`].
    pub fn builder(auth: JwtAuth) -> CommandAppBuilder {
        CommandAppBuilder {
            auth,
            config: CommandConfig::default(),
            clock: Arc::new(SystemClock),
            order_no_node: None,
            nats_prefix: DEFAULT_PREFIX.to_owned(),
            relay: RelayConfig::default(),
            backend: Backend::Embedded,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.inner.bus
    }

    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    pub fn stock(&self) -> &StockWriters {
        &self.inner.stock
    }

    pub fn config(&self) -> &CommandConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn auth(&self) -> &JwtAuth {
        &self.inner.auth
    }

    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    /// The Postgres event store when the app runs on Postgres (for adapters that keep their
    /// own tables beside the events: deadlines), `None` when embedded.
    pub fn postgres(&self) -> Option<&PgEventStore> {
        self.inner.pg.as_ref()
    }

    /// The checkpoint store of this deployment (memory when embedded, Postgres otherwise).
    pub fn checkpoints(&self) -> &Arc<dyn CheckpointStore> {
        &self.inner.checkpoints
    }

    /// The handler of `orderflow.v1.CommandService`.
    pub fn handler(&self) -> &CommandHandler {
        &self.inner.handler
    }

    /// The tonic service, to add to a server (the combined command + query listener).
    pub fn command_service(&self) -> CommandServiceServer<CommandHandler> {
        CommandServiceServer::new(self.inner.handler.clone())
    }

    /// A token cancelled when the app shuts down, for work started outside
    /// [`CommandApp::spawn_background`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.background.child_token()
    }

    /// Starts a named background task: the place for process managers (saga, notifier,
    /// deadlines, reaper). `start` receives a token cancelled on shutdown; the task should
    /// finish the message in hand, save its checkpoint and return. Its error is logged with
    /// its name; shutdown waits for it.
    pub fn spawn_background<F, Fut, E>(&self, name: impl Into<String>, start: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let name = name.into();
        let task_name = name.clone();
        let future = start(self.inner.background.child_token());
        let handle = tokio::spawn(async move {
            match future.await {
                Ok(()) => tracing::info!(task = %task_name, "background task stopped"),
                Err(e) => tracing::error!(task = %task_name, error = %e, "background task failed"),
            }
        });
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, handle));
    }

    /// The names of the background tasks started so far (for health and tests).
    pub fn background_tasks(&self) -> Vec<String> {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Cancels the background tasks, waits for every one, then shuts the Postgres store down.
    /// Call after the server has stopped taking and drained RPCs ([`crate::server::run`]
    /// does). Idempotent: a second call finds no task left.
    pub async fn shutdown(&self) {
        self.inner.background.cancel();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, handle) in tasks {
            if let Err(e) = handle.await {
                tracing::error!(task = %name, error = %e, "background task panicked");
            }
        }
        if let Some(pg) = &self.inner.pg {
            pg.shutdown().await;
        }
        tracing::info!("command side stopped");
    }
}
