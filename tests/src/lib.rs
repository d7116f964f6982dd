//! The one harness of the end-to-end tests in `tests/tests/`: [`spawn_app`] builds the
//! command side the binary runs, on the real adapters, and serves it on `127.0.0.1:0`:
//!
//! - a fresh PostgreSQL database ([`TestDatabase`]) and a unique NATS prefix (so its own
//!   JetStream streams), or the ones of an earlier app ([`AppOptions::reuse`], to restart);
//! - a [`ManualClock`] the tests advance: deadlines fire when the clock passes them, never
//!   after real seconds;
//! - every process manager running ([`processes::start`]): saga, rider index, notifier,
//!   deadline scheduler and firer;
//! - a tonic client, and a [`Client`] per role that attaches a token minted for it at the
//!   test clock's "now" (`app.buyer(42)`, `app.merchant(7)`, `app.rider(3)`, `app.ops()`,
//!   `app.payment_provider()`);
//! - the read side on the same listener ([`ReadApp`]: the order projectors into PostgreSQL
//!   and `QueryService`), with a [`QueryClient`] per role (`app.queries_as_buyer(42)`, …);
//! - readers that fold a stream with the domain's decider (what the store holds is what the
//!   tests assert on), and bounded waits for what process managers do asynchronously.
//!
//! Logs go to the test output only when `TEST_LOG` is set (`RUST_LOG` filters them).
//!
//! Every app must end with [`TestApp::shutdown`] (server, process managers, store, then the
//! JetStream streams). If a test panics first, `Drop` still deletes the streams.
#![forbid(unsafe_code)]

mod queries;

pub use queries::QueryClient;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use orderflow_command_service::processes::{self, Processes};
use orderflow_command_service::riders::decode_offer;
use orderflow_command_service::saga::RefundRequest;
use orderflow_command_service::{AppError, Clock, CommandApp, CommandConfig, ManualClock};
use orderflow_domain::order::{Order, OrderEvent, OrderState, OrderStatus, PlacedOrder};
use orderflow_domain::sku::{Sku, SkuEvent, SkuState, StockLevel};
use orderflow_domain::{Decider, DomainEvent, OrderNo, Role, Shard, SkuId, StreamId, Timestamp};
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::bus::{
    ConsumerConfig, EventBus, NatsBus, NatsBusConfig, Subjects, TransientSubscription,
};
use orderflow_infra::store::{EventStore, PgStoreConfig, RecordedEvent};
use orderflow_infra::testing::{nats_url, unique_name, TestDatabase};
use orderflow_projections::pg::SharedReads;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use orderflow_proto::v1::query_service_client::QueryServiceClient;
use orderflow_query_service::ReadApp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub use orderflow_proto::v1;

/// 2026-11-22T07:17:12.345Z: where every test clock starts.
pub const START: i64 = 1_795_331_832_345;
/// The merchant of the fixtures, and where it is.
pub const MERCHANT_LAT: f64 = 31.23;
pub const MERCHANT_LNG: f64 = 121.47;
pub const CURRENCY: &str = "CNY";
/// How long a wait for an asynchronous effect may take before the test fails. Generous:
/// two shared cores, and the deadline firer looks at the clock at most once a second.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long a token minted by a role client lives, on the test clock.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Page size when reading a stream back.
const PAGE: usize = 1_000;

// ---- spawning -------------------------------------------------------------------------

/// How [`spawn_app_with`] builds the app.
#[derive(Clone)]
pub struct AppOptions {
    pub config: CommandConfig,
    /// The clock; a fresh one at [`START`] by default. Pass the old app's to a restarted one.
    pub clock: Option<ManualClock>,
    /// Run on this database and prefix instead of fresh ones (a restart).
    pub backing: Option<Backing>,
    /// Connections and group-commit writers of the Postgres store.
    pub pool_size: usize,
    pub writers: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            config: CommandConfig::default(),
            clock: None,
            backing: None,
            // Two cores shared with other test runs: a small store.
            pool_size: 16,
            writers: 2,
        }
    }
}

impl AppOptions {
    pub fn config(mut self, config: CommandConfig) -> Self {
        self.config = config;
        self
    }

    /// The database, NATS prefix and clock of an app that was stopped with
    /// [`TestApp::stop_keeping_data`]: a new process of the same deployment.
    pub fn reuse(mut self, backing: Backing) -> Self {
        self.clock = Some(backing.clock.clone());
        self.backing = Some(backing);
        self
    }
}

/// Where an app keeps its data: enough to start another app on it.
#[derive(Clone)]
pub struct Backing {
    pub database_name: String,
    pub database_url: String,
    pub prefix: String,
    pub clock: ManualClock,
}

/// An app with the default options.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// An app on Postgres + NATS with every process manager, served on `127.0.0.1:0`.
/// Panics when a backend is unreachable: these tests need them.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    init_logs();
    let backing = match options.backing {
        Some(backing) => backing,
        None => {
            let database = TestDatabase::create().await;
            Backing {
                database_name: database.name,
                database_url: database.url,
                prefix: unique_name("e2e"),
                clock: options
                    .clock
                    .unwrap_or_else(|| ManualClock::at(Timestamp::from_millis(START))),
            }
        }
    };
    let secret = JwtSecret::new(b"the end-to-end tests' secret, 32+ bytes".to_vec())
        .expect("a valid secret");
    let auth = JwtAuth::new(&secret);
    let mut store = PgStoreConfig::single(backing.database_url.clone());
    store.pool_size = options.pool_size;
    store.writers_per_database = options.writers;
    let app = CommandApp::builder(auth.clone())
        .config(options.config)
        .clock(Arc::new(backing.clock.clone()))
        .nats_prefix(backing.prefix.clone())
        .postgres_nats(store, nats_url())
        .build()
        .await
        .expect("the command side starts on Postgres + NATS");
    let processes = processes::start(&app);
    let read = {
        let clock = backing.clock.clone();
        let pool = app
            .postgres()
            .expect("the app runs on Postgres")
            .pool(Shard::of_id(0))
            .clone();
        // The hot queries on two shared connections, as `serve` runs them.
        let shared = SharedReads::new(&backing.database_url, 2).expect("a valid database url");
        ReadApp::builder(auth.clone(), app.store().clone())
            .postgres(pool)
            .shared_reads(shared)
            .bus(app.bus().clone())
            .now(Arc::new(move || clock.now()))
            .start()
    };

    // A connection of our own to the same streams: to read the payments stream, subscribe
    // to offers, and delete everything at the end.
    let nats = NatsBus::connect(
        &nats_url(),
        Subjects::new(backing.prefix.clone()).expect("a valid prefix"),
        NatsBusConfig::default(),
    )
    .await
    .expect("tests need NATS with JetStream");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = {
        let (read, query) = (read.clone(), read.query_service());
        tokio::spawn(orderflow_command_service::server::run_with(
            app.clone(),
            listener,
            async move {
                let _ = stopped.await;
                // Long-polls answer and watches end, so the server's drain does not wait.
                read.begin_shutdown();
            },
            |routes| routes.add_service(query),
        ))
    };
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid uri")
        .connect()
        .await
        .expect("connect to the test server");
    TestApp {
        app,
        processes,
        read,
        clock: backing.clock.clone(),
        queries: QueryServiceClient::new(channel.clone()),
        client: CommandServiceClient::new(channel),
        addr,
        backing,
        nats,
        auth,
        stop: Some(stop),
        server: Some(server),
        cleaned_up: false,
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        // Several tests per process: the first install wins, the others are no-ops.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_test_writer()
            .try_init();
    }
}

pub struct TestApp {
    pub app: CommandApp,
    pub processes: Processes,
    /// The read side: order projectors into this app's database, and `QueryService`.
    pub read: ReadApp,
    pub clock: ManualClock,
    pub client: CommandServiceClient<Channel>,
    pub queries: QueryServiceClient<Channel>,
    pub addr: SocketAddr,
    pub backing: Backing,
    /// The harness's own connection to this app's streams.
    pub nats: NatsBus,
    auth: JwtAuth,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), AppError>>>,
    cleaned_up: bool,
}

impl TestApp {
    // ---- lifecycle --------------------------------------------------------------------

    /// Stops the server (drains RPCs), the process managers and the store, keeping the
    /// database and the streams for another app ([`AppOptions::reuse`]).
    pub async fn stop_keeping_data(mut self) -> anyhow::Result<Backing> {
        self.stop_server().await?;
        // Nothing to clean up: the next app owns the streams now.
        self.cleaned_up = true;
        Ok(self.backing.clone())
    }

    /// Stops everything, deletes this app's JetStream streams and drops its database. (A
    /// test that fails before this keeps its database, to look at; its streams go in `Drop`.)
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_server().await?;
        self.nats
            .delete_streams()
            .await
            .context("delete the test's streams")?;
        self.cleaned_up = true;
        drop_database(&self.backing.database_name).await
    }

    async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(WAIT, server)
                .await
                .context("the server did not stop in time")?
                .context("server task")?
                .context("server")?;
        }
        self.read.shutdown().await;
        Ok(())
    }

    // ---- time -------------------------------------------------------------------------

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the test clock on; whatever fell due fires within a second or so (the firer's
    /// longest idle look), so follow with a bounded wait for the effect.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    // ---- callers ----------------------------------------------------------------------

    /// A bearer token for `role`/`sub`, valid for an hour of the test clock from now.
    pub fn token(&self, role: Role, sub: &str) -> String {
        self.auth
            .mint_at(role, sub, self.clock.now(), TOKEN_TTL)
            .expect("a valid subject")
    }

    /// The token verifier of this app (a read side started beside it uses the same).
    pub fn auth(&self) -> &JwtAuth {
        &self.auth
    }

    pub fn as_role(&self, role: Role, sub: impl Into<String>) -> Client {
        Client {
            client: self.client.clone(),
            auth: self.auth.clone(),
            clock: self.clock.clone(),
            role,
            sub: sub.into(),
        }
    }

    pub fn buyer(&self, id: i64) -> Client {
        self.as_role(Role::Buyer, id.to_string())
    }

    pub fn merchant(&self, id: i64) -> Client {
        self.as_role(Role::Merchant, id.to_string())
    }

    pub fn rider(&self, id: i64) -> Client {
        self.as_role(Role::Rider, id.to_string())
    }

    pub fn ops(&self) -> Client {
        self.as_role(Role::Ops, "ops-alice")
    }

    /// The payment provider's callback identity (role service).
    pub fn payment_provider(&self) -> Client {
        self.as_role(Role::Service, "payments")
    }

    // ---- fixtures ---------------------------------------------------------------------

    /// Opens `merchant` at [`MERCHANT_LAT`]/[`MERCHANT_LNG`], lists `sku` at `price` and
    /// stocks `stock` units.
    pub async fn open_shop(
        &self,
        merchant: i64,
        sku: &str,
        price: i64,
        stock: i64,
    ) -> anyhow::Result<()> {
        let m = self.merchant(merchant);
        m.open_merchant(pb::OpenMerchantRequest {
            request_id: rid(),
            merchant_id: merchant,
            name: format!("Shop {merchant}"),
            location: Some(point(MERCHANT_LAT, MERCHANT_LNG)),
        })
        .await?;
        m.list_dish(pb::ListDishRequest {
            request_id: rid(),
            merchant_id: merchant,
            sku_id: sku.into(),
            name: format!("dish {sku}"),
            price: Some(money(price)),
        })
        .await?;
        m.restock(pb::RestockRequest {
            request_id: rid(),
            merchant_id: merchant,
            sku_id: sku.into(),
            quantity: stock,
        })
        .await?;
        Ok(())
    }

    /// `rider` online at `location` with room for `capacity` orders, and known to the
    /// rider-geo index (the notifier offers only to riders the index has).
    pub async fn rider_online(
        &self,
        rider: i64,
        location: pb::GeoPoint,
        capacity: i32,
    ) -> anyhow::Result<()> {
        self.rider(rider)
            .go_online(pb::GoOnlineRequest {
                request_id: rid(),
                rider_id: rider,
                location: Some(location),
                capacity,
            })
            .await?;
        let id = orderflow_domain::RiderId::new(rider)?;
        let index = self.processes.rider_index.clone();
        wait_until(&format!("rider {rider} in the geo index"), WAIT, || {
            let index = index.clone();
            async move { Ok(index.rider(id).is_some_and(|r| r.online)) }
        })
        .await
    }

    /// Submits `quantity` × `sku` for `buyer`; returns the order number (status CREATING).
    pub async fn submit(
        &self,
        buyer: i64,
        merchant: i64,
        sku: &str,
        quantity: i64,
        unit_price: i64,
    ) -> anyhow::Result<String> {
        let reply = self
            .buyer(buyer)
            .submit_order(submit_request(
                rid(),
                buyer,
                merchant,
                sku,
                quantity,
                unit_price,
            ))
            .await?;
        Ok(reply.order_no)
    }

    /// Confirms the payment of `order_no` for `amount` with a fresh txn id.
    pub async fn pay(&self, order_no: &str, amount: i64) -> anyhow::Result<()> {
        self.payment_provider()
            .confirm_payment(pay_request(rid(), order_no, &rid(), amount))
            .await?;
        Ok(())
    }

    // ---- reading the store ------------------------------------------------------------

    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.app.store()
    }

    /// Every event of a stream, oldest first.
    pub async fn read_all(&self, stream: &StreamId) -> anyhow::Result<Vec<RecordedEvent>> {
        read_all(self.store().as_ref(), stream).await
    }

    /// An order's events and its state folded by the domain's decider.
    pub async fn order(&self, order_no: &str) -> anyhow::Result<(OrderState, Vec<OrderEvent>)> {
        let stream = OrderNo::parse(order_no)?.stream_id();
        folded::<Order>(self.store().as_ref(), &stream).await
    }

    /// The order, which must exist.
    pub async fn placed(&self, order_no: &str) -> anyhow::Result<PlacedOrder> {
        let (state, _) = self.order(order_no).await?;
        state
            .order()
            .cloned()
            .ok_or_else(|| anyhow!("order {order_no} has no events"))
    }

    /// A sku's events and its state (listing, stock ledger) folded by the domain's decider.
    pub async fn sku(&self, sku: &str) -> anyhow::Result<(SkuState, Vec<SkuEvent>)> {
        let stream = SkuId::parse(sku)?.stream_id();
        folded::<Sku>(self.store().as_ref(), &stream).await
    }

    /// The sku's stock, after checking the ledger identity on what the store holds.
    pub async fn stock(&self, sku: &str) -> anyhow::Result<StockLevel> {
        let (state, _) = self.sku(sku).await?;
        let stock = state.stock();
        assert_ledger(&stock);
        Ok(stock)
    }

    /// Total events in the store over every shard.
    pub async fn total_events(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for shard in orderflow_domain::Shard::all() {
            total += self.store().head(shard).await?.get();
        }
        Ok(total)
    }

    // ---- waiting for process managers -------------------------------------------------

    /// Waits (bounded) until the order's stream folds to `status`; returns the order. Fails
    /// early if it reaches another terminal status.
    pub async fn wait_for_status(
        &self,
        order_no: &str,
        status: OrderStatus,
    ) -> anyhow::Result<PlacedOrder> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (state, events) = self.order(order_no).await?;
            let current = state.status();
            if current == Some(status) {
                return Ok(state.order().cloned().expect("an order with a status"));
            }
            if current.is_some_and(OrderStatus::is_terminal) {
                bail!("order {order_no} ended {current:?}, not {status}; events: {events:#?}");
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "order {order_no} still {current:?} after {WAIT:?}, not {status}; \
                     events: {events:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded by `within`) until every order is CREATED or FAILED (what the submit
    /// saga decides); returns their states. Each pass re-reads only the undecided ones.
    pub async fn wait_all_decided(
        &self,
        order_nos: &[String],
        within: Duration,
    ) -> anyhow::Result<Vec<PlacedOrder>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut pending: Vec<usize> = (0..order_nos.len()).collect();
        let mut decided: Vec<Option<PlacedOrder>> = vec![None; order_nos.len()];
        while !pending.is_empty() {
            let reads = futures::stream::iter(pending.iter().copied())
                .map(|i| async move { (i, self.placed(&order_nos[i]).await) })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await;
            let mut still = Vec::new();
            for (i, order) in reads {
                let order = order?;
                if order.status == OrderStatus::Creating {
                    still.push(i);
                } else {
                    decided[i] = Some(order);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} of {} orders still CREATING after {within:?} (e.g. {})",
                    pending.len(),
                    order_nos.len(),
                    order_nos[pending[0]]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(decided.into_iter().map(|o| o.expect("decided")).collect())
    }

    // ---- messages ---------------------------------------------------------------------

    /// Offers published to `rider` from now on (core NATS: subscribe before they are sent).
    pub async fn offers_to(&self, rider: i64) -> anyhow::Result<OfferInbox> {
        let subject = self.nats.subjects().rider_offers(rider.unsigned_abs());
        Ok(OfferInbox {
            rider,
            messages: self.nats.subscribe(&subject).await?,
        })
    }

    /// Every refund message stored on this app's payments stream (waits up to `within` for
    /// at least `at_least` of them).
    pub async fn refunds(
        &self,
        at_least: usize,
        within: Duration,
    ) -> anyhow::Result<Vec<RefundRequest>> {
        // A fresh durable consumer each time reads the whole stream from the start.
        let config = ConsumerConfig::new(
            unique_name("refunds"),
            self.nats.subjects().payment_refunds_all(),
        );
        let consumer = self.nats.consumer(config).await?;
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            for delivery in consumer.fetch(100, Duration::from_millis(200)).await? {
                out.push(serde_json::from_slice::<RefundRequest>(
                    &delivery.message.payload,
                )?);
                delivery.ack().await?;
            }
            if out.len() >= at_least || tokio::time::Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }
}

impl Drop for TestApp {
    /// A test that panicked never reached `shutdown`: delete its streams anyway, from a
    /// thread of its own (`Drop` cannot await, and the test's runtime may be going away).
    fn drop(&mut self) {
        if self.cleaned_up {
            return;
        }
        let nats = self.nats.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(async move {
                if let Err(e) =
                    tokio::time::timeout(Duration::from_secs(10), nats.delete_streams()).await
                {
                    eprintln!("cleanup of the test's streams timed out: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Drops a test database: the machine's disk is shared, and hundreds of runs add up.
async fn drop_database(name: &str) -> anyhow::Result<()> {
    let admin = std::env::var("ORDERFLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    // FORCE: pooled connections of the stopped app may linger a moment after shutdown.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("drop database {name}"))?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

// ---- role clients ---------------------------------------------------------------------

/// The command service as one caller: every request carries a token for its role and
/// subject, minted at the test clock's current time (so tokens never expire as the clock
/// moves on by hours).
#[derive(Clone)]
pub struct Client {
    pub client: CommandServiceClient<Channel>,
    auth: JwtAuth,
    clock: ManualClock,
    pub role: Role,
    pub sub: String,
}

macro_rules! rpcs {
    ($($rpc:ident($request:ident) -> $reply:ident;)*) => {
        impl Client {
            $(
                pub async fn $rpc(&self, request: pb::$request) -> Result<pb::$reply, Status> {
                    let mut client = self.client.clone();
                    client.$rpc(self.request(request)).await.map(tonic::Response::into_inner)
                }
            )*
        }
    };
}

rpcs! {
    open_merchant(OpenMerchantRequest) -> CommandReply;
    list_dish(ListDishRequest) -> CommandReply;
    delist_dish(DelistDishRequest) -> CommandReply;
    restock(RestockRequest) -> CommandReply;
    submit_order(SubmitOrderRequest) -> SubmitOrderReply;
    cancel_order(CancelOrderRequest) -> CommandReply;
    confirm_payment(ConfirmPaymentRequest) -> CommandReply;
    go_online(GoOnlineRequest) -> CommandReply;
    report_location(ReportLocationRequest) -> CommandReply;
    go_offline(GoOfflineRequest) -> CommandReply;
    grab_order(GrabOrderRequest) -> CommandReply;
    pick_up(PickUpRequest) -> CommandReply;
    confirm_delivery(ConfirmDeliveryRequest) -> CommandReply;
    compensate(CompensateRequest) -> CommandReply;
    close_order(CloseOrderRequest) -> CommandReply;
}

impl Client {
    /// `message` with `authorization: Bearer <token>`.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let token = self
            .auth
            .mint_at(self.role, &self.sub, self.clock.now(), TOKEN_TTL)
            .expect("a valid subject");
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
        request
    }
}

// ---- offers ---------------------------------------------------------------------------

/// Offers received by one rider on `{prefix}.riders.{rider_id}.offers`.
pub struct OfferInbox {
    pub rider: i64,
    messages: TransientSubscription,
}

impl OfferInbox {
    /// The next offer, within `within`.
    pub async fn next(&mut self, within: Duration) -> anyhow::Result<pb::Offer> {
        let message = tokio::time::timeout(within, self.messages.next())
            .await
            .map_err(|_| anyhow!("rider {} got no offer within {within:?}", self.rider))?
            .ok_or_else(|| anyhow!("offer subscription of rider {} closed", self.rider))?;
        Ok(decode_offer(&message.payload)?)
    }

    /// The next offer for `order_no` whose id is not `not`, skipping repeats of old ones
    /// (offers are at-least-once: a redelivered round is published again).
    pub async fn next_new(
        &mut self,
        order_no: &str,
        not: &[&str],
        within: Duration,
    ) -> anyhow::Result<pb::Offer> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let offer = self.next(left).await?;
            if offer.order_no == order_no && !not.contains(&offer.offer_id.as_str()) {
                return Ok(offer);
            }
        }
    }

    /// Fails if an offer arrives within `within`.
    pub async fn expect_none(&mut self, within: Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(within, self.messages.next()).await {
            Err(_) => Ok(()),
            Ok(None) => bail!("offer subscription of rider {} closed", self.rider),
            Ok(Some(m)) => bail!(
                "rider {} got an unexpected offer: {:?}",
                self.rider,
                decode_offer(&m.payload)
            ),
        }
    }
}

// ---- reading and checking -------------------------------------------------------------

/// Every event of `stream`, page by page.
pub async fn read_all(
    store: &dyn EventStore,
    stream: &StreamId,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let page = store
            .read_stream(stream, out.len() as u64 + 1, PAGE)
            .await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// A stream decoded with its aggregate's events and folded by its decider.
pub async fn folded<D>(
    store: &dyn EventStore,
    stream: &StreamId,
) -> anyhow::Result<(D::State, Vec<D::Event>)>
where
    D: Decider,
    D::Event: DomainEvent,
{
    let mut events = Vec::new();
    for recorded in read_all(store, stream).await? {
        events.push(
            D::Event::decode(
                &recorded.event_type,
                recorded.event_version,
                &recorded.payload,
            )
            .with_context(|| format!("{stream} v{}", recorded.stream_version))?,
        );
    }
    Ok((D::fold(&events), events))
}

/// The stock ledger identity: every unit added is available, reserved or deducted, and
/// nothing is negative (no oversell).
pub fn assert_ledger(stock: &StockLevel) {
    assert_eq!(
        stock.added,
        stock.available + stock.reserved + stock.deducted,
        "ledger identity broken: {stock:?}"
    );
    assert!(
        stock.available >= 0 && stock.reserved >= 0 && stock.deducted >= 0,
        "negative stock: {stock:?}"
    );
}

/// Polls `check` until it says true or `within` passes.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many of `events` satisfy `pred`.
pub fn count<E>(events: &[E], pred: impl Fn(&E) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

/// The order numbers of a list, checked distinct.
pub fn distinct(order_nos: &[String]) -> bool {
    order_nos.iter().collect::<HashSet<_>>().len() == order_nos.len()
}

// ---- requests -------------------------------------------------------------------------

/// A request id no other request uses.
pub fn rid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn money(minor_units: i64) -> pb::Money {
    pb::Money {
        currency_code: CURRENCY.into(),
        minor_units,
    }
}

pub fn point(lat: f64, lng: f64) -> pb::GeoPoint {
    pb::GeoPoint { lat, lng }
}

/// A point `metres` due north of the merchant (a degree of latitude is ~111.2 km).
pub fn north_of_merchant(metres: f64) -> pb::GeoPoint {
    point(MERCHANT_LAT + metres / 111_195.0, MERCHANT_LNG)
}

pub fn submit_request(
    request_id: String,
    buyer: i64,
    merchant: i64,
    sku: &str,
    quantity: i64,
    unit_price: i64,
) -> pb::SubmitOrderRequest {
    pb::SubmitOrderRequest {
        request_id,
        buyer_id: buyer,
        merchant_id: merchant,
        lines: vec![pb::OrderLine {
            sku_id: sku.into(),
            quantity,
            unit_price: Some(money(unit_price)),
        }],
        delivery_address: Some(pb::Address {
            text: "1 Bund Road".into(),
            location: Some(north_of_merchant(1_500.0)),
        }),
    }
}

pub fn pay_request(
    request_id: String,
    order_no: &str,
    txn: &str,
    amount: i64,
) -> pb::ConfirmPaymentRequest {
    pb::ConfirmPaymentRequest {
        request_id,
        order_no: order_no.into(),
        payment_txn_id: txn.into(),
        amount: Some(money(amount)),
    }
}

pub fn grab_request(rider: i64, order_no: &str, offer_id: &str) -> pb::GrabOrderRequest {
    pb::GrabOrderRequest {
        request_id: rid(),
        rider_id: rider,
        order_no: order_no.into(),
        offer_id: offer_id.into(),
    }
}
