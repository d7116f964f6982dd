//! The one harness of the command service's tests: an embedded app (memory store,
//! in-process bus) served on `127.0.0.1:0`, a tonic client, tokens per role, a manual clock,
//! and helpers that drive orders through states owned by other components (the saga, the
//! notifier) by executing domain commands directly.
#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::time::Duration;

use orderflow_command_service::{
    AppError, CommandApp, CommandAppBuilder, CommandMeta, Executed, ManualClock,
};
use orderflow_domain::order::{Order, OrderCommand, OrderEvent, OrderState, OrderStatus};
use orderflow_domain::rider::{Rider, RiderState};
use orderflow_domain::{Actor, FailureReason, OfferId, OrderNo, RiderId, Role, Shard, Timestamp};
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::store::{CommandId, CorrelationId};
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// 2026-11-22T07:17:12.345Z.
pub const START: i64 = 1_795_331_832_345;
pub const MERCHANT: i64 = 7;
pub const BUYER: i64 = 17;
pub const RIDER: i64 = 42;
pub const NOODLES: &str = "noodles-L";
pub const NOODLES_PRICE: i64 = 2_800;
pub const OFFER: &str = "offer-1";

pub struct TestApp {
    pub app: CommandApp,
    pub clock: ManualClock,
    pub client: CommandServiceClient<Channel>,
    pub channel: Channel,
    pub addr: SocketAddr,
    auth: JwtAuth,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), AppError>>>,
}

/// The embedded app (memory store, in-process bus).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|builder| builder.embedded()).await
}

/// An app whose backend `configure` chooses, served on `127.0.0.1:0`.
pub async fn spawn_app_with(
    configure: impl FnOnce(CommandAppBuilder) -> CommandAppBuilder,
) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        // Several tests per process: only the first install wins, the rest are no-ops.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let clock = ManualClock::at(Timestamp::from_millis(START));
    let auth =
        JwtAuth::new(&JwtSecret::new(b"a test secret of at least 32 bytes!!".to_vec()).unwrap());
    let builder = CommandApp::builder(auth.clone())
        .clock(std::sync::Arc::new(clock.clone()))
        .order_no_node(3);
    let app = configure(builder).build().await.expect("app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(orderflow_command_service::server::run(
        app.clone(),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test server");
    TestApp {
        app,
        clock,
        client: CommandServiceClient::new(channel.clone()),
        channel,
        addr,
        auth,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// A bearer token for `role`/`sub`, valid for an hour of the test clock.
    pub fn token(&self, role: Role, sub: &str) -> String {
        self.auth
            .mint_at(role, sub, self.clock.now_ts(), Duration::from_secs(3600))
            .unwrap()
    }

    /// `message` with `authorization: Bearer <token of role/sub>`.
    pub fn req<T>(&self, role: Role, sub: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let value = format!("Bearer {}", self.token(role, sub));
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    pub fn merchant<T>(&self, message: T) -> Request<T> {
        self.req(Role::Merchant, &MERCHANT.to_string(), message)
    }

    pub fn buyer<T>(&self, message: T) -> Request<T> {
        self.req(Role::Buyer, &BUYER.to_string(), message)
    }

    pub fn rider<T>(&self, id: i64, message: T) -> Request<T> {
        self.req(Role::Rider, &id.to_string(), message)
    }

    pub fn service<T>(&self, message: T) -> Request<T> {
        self.req(Role::Service, "payments", message)
    }

    pub fn ops<T>(&self, message: T) -> Request<T> {
        self.req(Role::Ops, "alice", message)
    }

    /// Every event in the store, over all shards: "nothing appended" means this is unchanged.
    pub async fn total_events(&self) -> u64 {
        let mut total = 0;
        for shard in Shard::all() {
            total += self.app.store().head(shard).await.unwrap().get();
        }
        total
    }

    pub async fn order(&self, order_no: &str) -> OrderState {
        let order_no = OrderNo::parse(order_no).unwrap();
        self.app
            .executor()
            .load::<Order>(&order_no.stream_id())
            .await
            .unwrap()
            .state
    }

    pub async fn order_events(&self, order_no: &str) -> usize {
        let order_no = OrderNo::parse(order_no).unwrap();
        self.app
            .store()
            .read_stream(&order_no.stream_id(), 1, 10_000)
            .await
            .unwrap()
            .len()
    }

    pub async fn rider_state(&self, id: i64) -> RiderState {
        self.app
            .executor()
            .load::<Rider>(&RiderId::new(id).unwrap().stream_id())
            .await
            .unwrap()
            .state
    }

    /// Runs a domain command on an order as another component would (saga, notifier).
    pub async fn drive(&self, order_no: &str, command: OrderCommand) -> Executed<OrderEvent> {
        let order_no = OrderNo::parse(order_no).unwrap();
        let meta = CommandMeta {
            command_id: CommandId::random(),
            correlation_id: CorrelationId::random(),
            causation_id: None,
            actor: Actor::system("test"),
            at: self.clock.now_ts(),
        };
        self.app
            .executor()
            .execute::<Order>(&order_no.stream_id(), &command, &meta)
            .await
            .unwrap()
    }

    /// Closes merchant [`MERCHANT`] (no RPC closes a shop: its back office would).
    pub async fn close_merchant(&self) {
        use orderflow_domain::merchant::{Merchant, MerchantCommand};
        let meta = CommandMeta {
            command_id: CommandId::random(),
            correlation_id: CorrelationId::random(),
            causation_id: None,
            actor: Actor::new(Role::Merchant, MERCHANT.to_string()),
            at: self.clock.now_ts(),
        };
        self.app
            .executor()
            .execute::<Merchant>(
                &orderflow_domain::MerchantId::new(MERCHANT)
                    .unwrap()
                    .stream_id(),
                &MerchantCommand::Close { at: meta.at },
                &meta,
            )
            .await
            .unwrap();
    }

    /// CREATING → CREATED, as the reservation saga would.
    pub async fn create(&self, order_no: &str) {
        let now = self.clock.now_ts();
        self.drive(
            order_no,
            OrderCommand::Create {
                payment_deadline: now.plus(Duration::from_secs(900)),
                at: now,
            },
        )
        .await;
    }

    /// PAID → NOTIFIED with offer [`OFFER`] to `riders`, as the notifier would.
    pub async fn notify(&self, order_no: &str, riders: &[i64]) {
        let now = self.clock.now_ts();
        self.drive(
            order_no,
            OrderCommand::NotifyRiders {
                offer_id: OfferId::parse(OFFER).unwrap(),
                round: 1,
                riders: riders.iter().map(|r| RiderId::new(*r).unwrap()).collect(),
                radius_m: 3_000,
                expires_at: now.plus(Duration::from_secs(30)),
                at: now,
            },
        )
        .await;
    }

    /// Stops the server (drain, background tasks, store) and returns `run`'s result.
    pub async fn stop(mut self) -> Result<(), AppError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }
}

/// `now()` of the manual clock without importing the trait in every test.
pub trait Now {
    fn now_ts(&self) -> Timestamp;
}

impl Now for ManualClock {
    fn now_ts(&self) -> Timestamp {
        orderflow_command_service::Clock::now(self)
    }
}

// ---- requests -------------------------------------------------------------------------

pub fn money(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "CNY".into(),
        minor_units,
    })
}

pub fn point() -> Option<pb::GeoPoint> {
    Some(pb::GeoPoint {
        lat: 31.23,
        lng: 121.47,
    })
}

pub fn open_merchant(request_id: &str) -> pb::OpenMerchantRequest {
    pb::OpenMerchantRequest {
        request_id: request_id.into(),
        merchant_id: MERCHANT,
        name: "Noodle Bar".into(),
        location: point(),
    }
}

pub fn list_dish(request_id: &str, sku: &str, price: i64) -> pb::ListDishRequest {
    pb::ListDishRequest {
        request_id: request_id.into(),
        merchant_id: MERCHANT,
        sku_id: sku.into(),
        name: format!("dish {sku}"),
        price: money(price),
    }
}

pub fn restock(request_id: &str, sku: &str, quantity: i64) -> pb::RestockRequest {
    pb::RestockRequest {
        request_id: request_id.into(),
        merchant_id: MERCHANT,
        sku_id: sku.into(),
        quantity,
    }
}

pub fn delist(request_id: &str, sku: &str) -> pb::DelistDishRequest {
    pb::DelistDishRequest {
        request_id: request_id.into(),
        merchant_id: MERCHANT,
        sku_id: sku.into(),
    }
}

pub fn submit(request_id: &str, buyer: i64, quantity: i64) -> pb::SubmitOrderRequest {
    pb::SubmitOrderRequest {
        request_id: request_id.into(),
        buyer_id: buyer,
        merchant_id: MERCHANT,
        lines: vec![pb::OrderLine {
            sku_id: NOODLES.into(),
            quantity,
            unit_price: money(NOODLES_PRICE),
        }],
        delivery_address: Some(pb::Address {
            text: "1 Bund Road".into(),
            location: point(),
        }),
    }
}

pub fn go_online(request_id: &str, rider: i64) -> pb::GoOnlineRequest {
    pb::GoOnlineRequest {
        request_id: request_id.into(),
        rider_id: rider,
        location: point(),
        capacity: 3,
    }
}

pub fn grab(request_id: &str, rider: i64, order_no: &str) -> pb::GrabOrderRequest {
    pb::GrabOrderRequest {
        request_id: request_id.into(),
        rider_id: rider,
        order_no: order_no.into(),
        offer_id: OFFER.into(),
    }
}

pub fn pay(request_id: &str, order_no: &str, txn: &str, amount: i64) -> pb::ConfirmPaymentRequest {
    pb::ConfirmPaymentRequest {
        request_id: request_id.into(),
        order_no: order_no.into(),
        payment_txn_id: txn.into(),
        amount: money(amount),
    }
}

// ---- fixtures -------------------------------------------------------------------------

/// Merchant 7 open, with [`NOODLES`] listed and 100 in stock.
pub async fn with_menu(t: &mut TestApp) {
    t.client
        .open_merchant(t.merchant(open_merchant("open-1")))
        .await
        .unwrap();
    t.client
        .list_dish(t.merchant(list_dish("list-1", NOODLES, NOODLES_PRICE)))
        .await
        .unwrap();
    t.client
        .restock(t.merchant(restock("restock-1", NOODLES, 100)))
        .await
        .unwrap();
}

/// A submitted order of buyer 17 (2 × noodles); returns its number.
pub async fn submitted_order(t: &mut TestApp, request_id: &str) -> String {
    let reply = t
        .client
        .submit_order(t.buyer(submit(request_id, BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    reply.order_no
}

/// An order of buyer 17 that is PAID (the saga and the payment provider played).
pub async fn paid_order(t: &mut TestApp, request_id: &str) -> String {
    let order_no = submitted_order(t, request_id).await;
    t.create(&order_no).await;
    t.client
        .confirm_payment(t.service(pay(
            &format!("pay-{request_id}"),
            &order_no,
            &format!("txn-{request_id}"),
            2 * NOODLES_PRICE,
        )))
        .await
        .unwrap();
    order_no
}

/// Asserts `result` failed with `code` and a message naming `needle`.
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "message {:?} should name {needle:?}",
        status.message()
    );
}

/// The saga's outcome of an order, waited for (bounded: the saga runs in the background).
pub async fn outcome(t: &TestApp, order_no: &str) -> (OrderStatus, Option<FailureReason>) {
    for _ in 0..1_000 {
        let state = t.order(order_no).await;
        let order = state.order().expect("the order exists");
        if order.status != OrderStatus::Creating {
            return (order.status, order.failure);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{order_no} still CREATING after 1,000 polls");
}
