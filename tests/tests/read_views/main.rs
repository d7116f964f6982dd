//! The stock and catalog views end to end: the command side with every process manager on
//! Postgres + NATS (`spawn_app`), and beside it the read side (`ReadApp` on the same database,
//! publishing row changes on the app's NATS prefix) served over gRPC on its own port 0.
//!
//! - after a flash sale (with payments and cancellations) `GetStock` equals the sku's event
//!   log folded by the domain, and `ListReservations` pages every order's reservation with
//!   its state, and the hourly statistics count it;
//! - a restock's consistency token makes `GetStock` read its own write;
//! - menus show price, availability and the listed flag; nearby merchants nearest first;
//! - riders nearby nearest first with their load; offers streamed, listed, closed on a grab;
//! - every RPC built here refuses a missing token, a stranger, and a malformed field.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use orderflow_command_service::server;
use orderflow_command_service::Clock;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::sku::ReservationState;
use orderflow_domain::Role;
use orderflow_infra::bus::{EventBus, NatsBus, NatsBusConfig, Subjects};
use orderflow_infra::testing::nats_url;
use orderflow_query_service::ReadApp;
use orderflow_tests::v1 as pb;
use orderflow_tests::v1::query_service_client::QueryServiceClient;
use orderflow_tests::*;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Request};

const SHOP: i64 = 7;
const SKU: &str = "flash-latte";
const PRICE: i64 = 1_800;

/// The read side of one test app, served on its own port.
struct ReadSide {
    read: ReadApp,
    client: QueryServiceClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ReadSide {
    async fn start(app: &TestApp) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config = app.backing.database_url.parse()?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig::default(),
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(8)
            .build()?;
        let bus = NatsBus::connect(
            &nats_url(),
            Subjects::new(app.backing.prefix.clone())?,
            NatsBusConfig::default(),
        )
        .await?;
        let clock = app.clock.clone();
        let read = ReadApp::builder(app.auth().clone(), app.store().clone())
            .postgres(pool)
            .bus(Arc::new(bus) as Arc<dyn EventBus>)
            // Tokens are minted at the test clock's time.
            .now(Arc::new(move || clock.now()))
            .start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(read.query_service())
                .serve_with_incoming_shutdown(server::incoming(listener), async move {
                    let _ = stopped.await;
                }),
        );
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        Ok(ReadSide {
            read,
            client: QueryServiceClient::new(channel),
            stop: Some(stop),
            server,
        })
    }

    async fn shutdown(mut self) -> anyhow::Result<()> {
        self.read.begin_shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, self.server)
            .await
            .context("the query server did not stop in time")???;
        self.read.shutdown().await;
        Ok(())
    }

    fn q(&self) -> QueryServiceClient<Channel> {
        self.client.clone()
    }
}

/// `message` with a bearer token for `role`/`sub` (or none when `role` is `None`).
fn authed<T>(app: &TestApp, who: Option<(Role, &str)>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some((role, sub)) = who {
        let token = app.token(role, sub);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
    }
    request
}

const OPS: Option<(Role, &str)> = Some((Role::Ops, "ops-alice"));

fn stock_request(sku: &str) -> pb::GetStockRequest {
    pb::GetStockRequest {
        sku_id: sku.into(),
        consistency_token: String::new(),
    }
}

async fn get_stock(read: &ReadSide, app: &TestApp, sku: &str) -> anyhow::Result<pb::StockLevel> {
    Ok(read
        .q()
        .get_stock(authed(app, OPS, stock_request(sku)))
        .await?
        .into_inner())
}

/// Every reservation of `sku` in `state`, walking pages of `page_size`.
async fn all_reservations(
    read: &ReadSide,
    app: &TestApp,
    sku: &str,
    state: pb::ReservationState,
    page_size: i32,
) -> anyhow::Result<Vec<pb::Reservation>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = read
            .q()
            .list_reservations(authed(
                app,
                Some((Role::Merchant, "7")),
                pb::ListReservationsRequest {
                    sku_id: sku.into(),
                    state: state.into(),
                    page_size,
                    page_token: page_token.clone(),
                },
            ))
            .await?
            .into_inner();
        assert!(page.reservations.len() <= page_size as usize);
        out.extend(page.reservations);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

mod catalog;
mod refusals;
mod riders;
mod stock;
