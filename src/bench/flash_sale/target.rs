//! The system under test: the real command app (store, bus, relay, process managers) served
//! over gRPC on `127.0.0.1:0` in this process, with the read side's projectors following the
//! same store as `orderflow serve --role all` runs them (unless turned off), seeded through
//! its own API, and torn down afterwards (server drained, projectors and background tasks
//! stopped, NATS streams and the bench database deleted).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use orderflow_command_service::{processes, server, AppError, CommandApp};
use orderflow_domain::sku::{Sku, StockLevel};
use orderflow_domain::{Role, Shard, SkuId};
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::bus::Subjects;
use orderflow_infra::store::{PgEventStore, PgStoreConfig, ShardMap};
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use orderflow_query_service::ReadApp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::clients::authorized;
use orderflow::scratch::{ScratchDatabase, ScratchStreams};

pub const MERCHANT: i64 = 1;
pub const SKU: &str = "flash-latte";
pub const PRICE: i64 = 1_800;
/// The domain's largest single restock; more units are added in several restocks.
const MAX_RESTOCK: i64 = 1_000_000;

/// Where the bench's projectors run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projections {
    Off,
    /// On the command app's store and pool (`serve --role all`).
    Shared,
    /// On a store instance with a pool of this many connections (PostgreSQL only; embedded
    /// runs share the memory store).
    Own(usize),
}

pub struct Target {
    pub app: CommandApp,
    pub addr: SocketAddr,
    pub auth: JwtAuth,
    /// The bench database (Postgres runs only), dropped by [`Target::finish`].
    pub database: Option<ScratchDatabase>,
    /// The projectors (and the query handler they feed, not served here), when on.
    pub read: Option<ReadApp>,
    nats: Option<ScratchStreams>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), AppError>>>,
}

impl Target {
    /// Embedded without URLs; with both, a fresh database and a unique NATS prefix. With
    /// `projections`, every projector runs: memory read models embedded; on PostgreSQL in
    /// shard 0's database, row changes published on the app's bus, and either on the
    /// command app's store and pool as in `serve --role all` (`Projections::Shared`), or on
    /// a store instance and pool of their own as a `--role projections` process would
    /// (`Projections::Own(pool size)`).
    pub async fn start(
        database_url: Option<&str>,
        nats_url: Option<&str>,
        writers: Option<usize>,
        pool_size: Option<usize>,
        projections: Projections,
    ) -> anyhow::Result<Self> {
        // A random secret per run: tokens of one run are worthless anywhere else.
        let secret = JwtSecret::new(uuid::Uuid::new_v4().as_bytes().repeat(2))?;
        let auth = JwtAuth::new(&secret);
        let builder = CommandApp::builder(auth.clone()).order_no_node(1);
        let (app, database, nats) = match (database_url, nats_url) {
            (None, None) => (builder.embedded().build().await?, None, None),
            (Some(db_url), Some(nats_url)) => {
                let db = super::super::database::create(db_url).await?;
                let prefix = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
                let mut store = PgStoreConfig::new(ShardMap::single(&db.url));
                if let Some(w) = writers {
                    store.writers_per_database = w;
                    store.pool_size = store.pool_size.max(w + 2);
                }
                if let Some(size) = pool_size {
                    store.pool_size = size.max(store.writers_per_database + 2);
                }
                let subjects = Subjects::new(prefix.clone())?;
                let app = builder
                    .nats_prefix(prefix)
                    .postgres_nats(store, nats_url)
                    .build()
                    .await;
                // Created before the app may have failed: still drop it.
                let app = match app {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = db.finish(false).await;
                        return Err(e).context("starting the command app on Postgres + NATS");
                    }
                };
                (
                    app,
                    Some(db),
                    Some(ScratchStreams {
                        url: nats_url.to_owned(),
                        subjects,
                    }),
                )
            }
            _ => anyhow::bail!("give both --database-url and --nats-url, or neither (embedded)"),
        };
        // The saga, notifier and deadlines: without them no order ever leaves CREATING.
        processes::start(&app);
        let mut read_store = None;
        let read = match (projections, &database) {
            (Projections::Off, _) => None,
            (Projections::Own(size), Some(db)) => {
                let mut config = PgStoreConfig::new(ShardMap::single(&db.url));
                config.pool_size = size.max(config.writers_per_database + 2);
                let store = PgEventStore::connect(config)
                    .await
                    .context("the read side's store")?;
                let read = ReadApp::builder(auth.clone(), Arc::new(store.clone()))
                    .bus(app.bus().clone())
                    .postgres(store.pool(Shard::of_id(0)).clone())
                    .start();
                read_store = Some(store);
                Some(read)
            }
            _ => {
                let mut read =
                    ReadApp::builder(auth.clone(), app.store().clone()).bus(app.bus().clone());
                if let Some(pg) = app.postgres() {
                    read = read.postgres(pg.pool(Shard::of_id(0)).clone());
                }
                Some(read.start())
            }
        };

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let drain = {
            let read = read.clone();
            async move {
                let _ = rx.await;
                // Projectors finish their batch before the store stops.
                if let Some(read) = read {
                    read.shutdown().await;
                }
                if let Some(store) = read_store {
                    store.shutdown().await;
                }
            }
        };
        let server = tokio::spawn(server::run(app.clone(), listener, drain));
        Ok(Target {
            app,
            addr,
            auth,
            database,
            read,
            nats,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    pub fn kind(&self) -> &'static str {
        if self.database.is_some() {
            "postgres+nats"
        } else {
            "embedded"
        }
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await
            .context("connecting to the bench server")
    }

    pub fn token(&self, role: Role, sub: &str) -> anyhow::Result<String> {
        // Long enough for any bounded run.
        Ok(self.auth.mint(role, sub, Duration::from_secs(3600))?)
    }

    /// Merchant [`MERCHANT`] open with [`SKU`] listed and `units` in stock, all through gRPC.
    pub async fn seed(&self, units: i64) -> anyhow::Result<()> {
        let mut client = CommandServiceClient::new(self.channel().await?);
        let token = self.token(Role::Merchant, &MERCHANT.to_string())?;
        let location = Some(pb::GeoPoint {
            lat: 31.2397,
            lng: 121.4998,
        });
        client
            .open_merchant(authorized(
                pb::OpenMerchantRequest {
                    request_id: "seed-open".into(),
                    merchant_id: MERCHANT,
                    name: "Flash Coffee".into(),
                    location,
                },
                &token,
            )?)
            .await
            .context("OpenMerchant")?;
        client
            .list_dish(authorized(
                pb::ListDishRequest {
                    request_id: "seed-list".into(),
                    merchant_id: MERCHANT,
                    sku_id: SKU.into(),
                    name: "Flash latte".into(),
                    price: Some(super::clients::money(PRICE)),
                },
                &token,
            )?)
            .await
            .context("ListDish")?;
        let (mut left, mut i) = (units, 0);
        while left > 0 {
            let quantity = left.min(MAX_RESTOCK);
            client
                .restock(authorized(
                    pb::RestockRequest {
                        request_id: format!("seed-restock-{i}"),
                        merchant_id: MERCHANT,
                        sku_id: SKU.into(),
                        quantity,
                    },
                    &token,
                )?)
                .await
                .context("Restock")?;
            left -= quantity;
            i += 1;
        }
        Ok(())
    }

    /// The SKU's ledger as the store holds it (durable), not as its writer holds it.
    pub async fn ledger(&self) -> anyhow::Result<StockLevel> {
        let sku = SkuId::parse(SKU)?;
        let loaded = self
            .app
            .executor()
            .load::<Sku>(&sku.stream_id())
            .await
            .context("loading the sku")?;
        Ok(loaded.state.stock())
    }

    /// Drains the server and stops the app (background tasks, store). The database stays
    /// until [`Target::finish`], so the ceiling can run on it while it is quiet.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.context("server task")??;
        }
        Ok(())
    }

    /// Deletes the run's NATS streams and drops the bench database (unless `keep`).
    pub async fn finish(mut self, keep: bool) -> anyhow::Result<()> {
        self.stop().await?;
        let (streams, database) = (self.nats.take(), self.database.take());
        // The app's pools must be gone before the database is dropped.
        drop(self);
        Ok(orderflow::scratch::finish(streams, database, keep).await?)
    }
}
