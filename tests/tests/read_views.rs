//! The stock and catalog views end to end: the command side with every process manager on
//! Postgres + NATS (`spawn_app`), and beside it the read side (`ReadApp` on the same database,
//! publishing row changes on the app's NATS prefix) served over gRPC on its own port 0.
//!
//! - after a flash sale (with payments and cancellations) `GetStock` equals the sku's event
//!   log folded by the domain, and `ListReservations` pages every order's reservation with
//!   its state;
//! - a restock's consistency token makes `GetStock` read its own write;
//! - menus show price, availability and the listed flag; nearby merchants nearest first;
//! - riders nearby nearest first with their load; offers streamed, listed, closed on a grab;
//! - every RPC built here refuses a missing token, a stranger, and a malformed field.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
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
use tonic::transport::server::TcpIncoming;
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
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_flash_sale_the_stock_view_equals_the_event_log() -> anyhow::Result<()> {
    // Given a read side following a shop with 20 units, and analytics listening for its rows
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    let mut changes = app
        .nats
        .subscribe(&app.nats.subjects().views("stock_ledger", SKU))
        .await?;
    app.open_shop(SHOP, SKU, PRICE, 20).await?;

    // When 40 buyers submit one unit each at once, 5 of the created orders are paid and 3
    // cancelled
    let replies = futures::stream::iter(1..=40i64)
        .map(|buyer| {
            let client = app.buyer(buyer);
            tokio::spawn(async move {
                client
                    .submit_order(submit_request(rid(), buyer, SHOP, SKU, 1, PRICE))
                    .await
            })
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut order_nos = Vec::new();
    for reply in replies {
        order_nos.push(reply??.order_no);
    }
    let orders = app
        .wait_all_decided(&order_nos, Duration::from_secs(60))
        .await?;
    let created: Vec<_> = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Created)
        .collect();
    assert_eq!(created.len(), 20, "exactly the stock is sold");
    for order in &created[..5] {
        app.pay(order.order_no.as_str(), PRICE).await?;
    }
    for order in &created[5..8] {
        app.buyer(order.buyer.get())
            .cancel_order(pb::CancelOrderRequest {
                request_id: rid(),
                order_no: order.order_no.to_string(),
                reason: "changed my mind".into(),
            })
            .await?;
    }
    // (A paid order moves on to NOTIFIED at once: wait on the sku's log instead.)
    wait_until("5 deductions and 3 releases in the log", WAIT, || async {
        let level = app.stock(SKU).await?;
        Ok((level.deducted, level.released) == (5, 3))
    })
    .await?;
    let level = app.stock(SKU).await?;
    assert_eq!((level.deducted, level.released), (5, 3));

    // Then GetStock catches up with the log folded by the domain, identity included
    wait_until("the stock view to equal the event log", WAIT, || async {
        let view = get_stock(&read, &app, SKU).await?;
        Ok((
            view.added,
            view.available,
            view.reserved,
            view.deducted,
            view.released,
        ) == (
            level.added,
            level.available,
            level.reserved,
            level.deducted,
            level.released,
        ))
    })
    .await?;
    let view = get_stock(&read, &app, SKU).await?;
    assert_eq!(view.added, view.available + view.reserved + view.deducted);
    assert_eq!(view.merchant_id, SHOP);

    // And the reservations, paged 7 at a time, are exactly the decider's, state by state
    let (sku_state, _) = app.sku(SKU).await?;
    let expected: HashMap<String, (i64, ReservationState)> = sku_state
        .reservations()
        .map(|(no, r)| (no.to_string(), (r.quantity.get(), r.state)))
        .collect();
    let all = all_reservations(&read, &app, SKU, pb::ReservationState::Unspecified, 7).await?;
    assert_eq!(all.len(), expected.len());
    assert_eq!(all.len(), 20);
    let mut sorted: Vec<_> = all.iter().map(|r| r.order_no.clone()).collect();
    sorted.sort();
    assert_eq!(
        all.iter().map(|r| r.order_no.clone()).collect::<Vec<_>>(),
        sorted,
        "paged in order-number order, each once"
    );
    for r in &all {
        let (quantity, state) = expected[&r.order_no];
        let wire = match state {
            ReservationState::Reserved => pb::ReservationState::Reserved,
            ReservationState::Deducted => pb::ReservationState::Deducted,
            ReservationState::Released => pb::ReservationState::Released,
        };
        assert_eq!(
            (r.quantity, r.state),
            (quantity, wire as i32),
            "{}",
            r.order_no
        );
        assert!(r.expires_at.is_some());
    }
    let deducted = all_reservations(&read, &app, SKU, pb::ReservationState::Deducted, 2).await?;
    let released = all_reservations(&read, &app, SKU, pb::ReservationState::Released, 2).await?;
    assert_eq!((deducted.len(), released.len()), (5, 3));

    // And the ledger's row changes went out on `{prefix}.views.stock_ledger.{sku}`
    let first = tokio::time::timeout(WAIT, changes.next())
        .await
        .context("no stock_ledger row change published")?
        .context("subscription closed")?;
    let body: serde_json::Value = serde_json::from_slice(&first.payload)?;
    assert_eq!(
        (body["view"].as_str(), body["key"].as_str()),
        (Some("stock_ledger"), Some(SKU))
    );

    read.shutdown().await?;
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restock_token_reads_its_own_write() -> anyhow::Result<()> {
    // Given a shop with 3 units, seen by the read side
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 3).await?;
    // When 4 more are added
    let reply = app
        .merchant(SHOP)
        .restock(pb::RestockRequest {
            request_id: rid(),
            merchant_id: SHOP,
            sku_id: SKU.into(),
            quantity: 4,
        })
        .await?;
    // Then GetStock with the reply's token answers with them, at once and without polling
    let level = read
        .q()
        .get_stock(authed(
            &app,
            Some((Role::Merchant, "7")),
            pb::GetStockRequest {
                sku_id: SKU.into(),
                consistency_token: reply.consistency_token,
            },
        ))
        .await?
        .into_inner();
    assert_eq!((level.added, level.available), (7, 7));
    read.shutdown().await?;
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menus_show_availability_and_merchants_are_found_nearest_first() -> anyhow::Result<()> {
    // Given shop 7 at the fixture point with a dish of 5 units, and shop 8 ~2 km north with
    // a second dish delisted
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    let north = north_of_merchant(2_000.0);
    let m8 = app.merchant(8);
    m8.open_merchant(pb::OpenMerchantRequest {
        request_id: rid(),
        merchant_id: 8,
        name: "Noodle Bar".into(),
        location: Some(north),
    })
    .await?;
    for (sku, price) in [("noodles", 2_800), ("dumplings", 1_500)] {
        m8.list_dish(pb::ListDishRequest {
            request_id: rid(),
            merchant_id: 8,
            sku_id: sku.into(),
            name: format!("dish {sku}"),
            price: Some(money(price)),
        })
        .await?;
    }
    m8.restock(pb::RestockRequest {
        request_id: rid(),
        merchant_id: 8,
        sku_id: "noodles".into(),
        quantity: 9,
    })
    .await?;
    let delisted = m8
        .delist_dish(pb::DelistDishRequest {
            request_id: rid(),
            merchant_id: 8,
            sku_id: "dumplings".into(),
        })
        .await?;
    // And one order of 2 units of shop 7's dish
    let no = app.submit(1, SHOP, SKU, 2, PRICE).await?;
    app.wait_for_status(&no, OrderStatus::Created).await?;

    // When a buyer reads shop 7's menu, once the reservation is in the view
    wait_until("the menu to show the reservation", WAIT, || async {
        let menu = read
            .q()
            .get_menu(authed(
                &app,
                Some((Role::Buyer, "1")),
                pb::GetMenuRequest { merchant_id: SHOP },
            ))
            .await?
            .into_inner();
        Ok(menu.dishes.first().is_some_and(|d| d.available == 3))
    })
    .await?;
    let menu = read
        .q()
        .get_menu(authed(
            &app,
            Some((Role::Buyer, "1")),
            pb::GetMenuRequest { merchant_id: SHOP },
        ))
        .await?
        .into_inner();
    // Then it has the dish with its price and what is left
    assert_eq!(menu.name, format!("Shop {SHOP}"));
    assert_eq!(menu.dishes.len(), 1);
    let dish = &menu.dishes[0];
    assert_eq!(
        (
            dish.sku_id.as_str(),
            dish.price.as_ref().map(|p| p.minor_units),
            dish.available,
            dish.listed
        ),
        (SKU, Some(PRICE), 3, true)
    );

    // And shop 8's menu hides the delisted dish from a buyer but not from its merchant
    let _ = read
        .q()
        .get_stock(authed(
            &app,
            OPS,
            pb::GetStockRequest {
                sku_id: "dumplings".into(),
                consistency_token: delisted.consistency_token,
            },
        ))
        .await?;
    wait_until("shop 8 in the catalog", WAIT, || async {
        Ok(read
            .q()
            .get_menu(authed(&app, OPS, pb::GetMenuRequest { merchant_id: 8 }))
            .await
            .is_ok())
    })
    .await?;
    let for_buyer = read
        .q()
        .get_menu(authed(
            &app,
            Some((Role::Buyer, "1")),
            pb::GetMenuRequest { merchant_id: 8 },
        ))
        .await?
        .into_inner();
    let skus: Vec<_> = for_buyer.dishes.iter().map(|d| d.sku_id.as_str()).collect();
    assert_eq!(skus, ["noodles"]);
    assert_eq!(for_buyer.dishes[0].available, 9);
    let for_owner = read
        .q()
        .get_menu(authed(
            &app,
            Some((Role::Merchant, "8")),
            pb::GetMenuRequest { merchant_id: 8 },
        ))
        .await?
        .into_inner();
    let flags: Vec<_> = for_owner
        .dishes
        .iter()
        .map(|d| (d.sku_id.as_str(), d.listed))
        .collect();
    assert_eq!(flags, [("dumplings", false), ("noodles", true)]);

    // And nearby search finds shop 7 within 1 km, both within 3 km nearest first, one a page
    let nearby = |radius_m: i32, page_size: i32, page_token: String| {
        let mut q = read.q();
        let request = authed(
            &app,
            Some((Role::Buyer, "1")),
            pb::ListMerchantsNearbyRequest {
                location: Some(point(MERCHANT_LAT, MERCHANT_LNG)),
                radius_m,
                page_size,
                page_token,
            },
        );
        async move {
            q.list_merchants_nearby(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let near = nearby(1_000, 10, String::new()).await?;
    let ids: Vec<_> = near.merchants.iter().map(|m| m.merchant_id).collect();
    assert_eq!(ids, [SHOP]);
    assert_eq!(near.merchants[0].distance_m, 0);
    assert!(near.merchants[0].open);
    let first = nearby(3_000, 1, String::new()).await?;
    assert_eq!(first.merchants[0].merchant_id, SHOP);
    assert!(!first.next_page_token.is_empty());
    let second = nearby(3_000, 1, first.next_page_token).await?;
    assert_eq!(second.merchants.len(), 1);
    let m = &second.merchants[0];
    assert_eq!((m.merchant_id, m.name.as_str()), (8, "Noodle Bar"));
    assert!((1_990..=2_010).contains(&m.distance_m), "{}", m.distance_m);
    assert!(second.next_page_token.is_empty());

    read.shutdown().await?;
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stock_and_catalog_rpc_refuses_strangers() -> anyhow::Result<()> {
    // Given shop 7 with a dish, projected
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    wait_until("the dish in the stock view", WAIT, || async {
        Ok(get_stock(&read, &app, SKU).await.is_ok())
    })
    .await?;
    let reservations = || pb::ListReservationsRequest {
        sku_id: SKU.into(),
        state: 0,
        page_size: 0,
        page_token: String::new(),
    };
    let nearby = || pb::ListMerchantsNearbyRequest {
        location: Some(point(MERCHANT_LAT, MERCHANT_LNG)),
        radius_m: 1_000,
        page_size: 0,
        page_token: String::new(),
    };
    let menu = || pb::GetMenuRequest { merchant_id: SHOP };
    let q = read.q();

    // Without a token: UNAUTHENTICATED, everywhere
    let codes = [
        q.clone()
            .get_stock(authed(&app, None, stock_request(SKU)))
            .await
            .map(drop),
        q.clone()
            .list_reservations(authed(&app, None, reservations()))
            .await
            .map(drop),
        q.clone()
            .list_merchants_nearby(authed(&app, None, nearby()))
            .await
            .map(drop),
        q.clone()
            .get_menu(authed(&app, None, menu()))
            .await
            .map(drop),
    ];
    for (i, result) in codes.into_iter().enumerate() {
        assert_eq!(result.unwrap_err().code(), Code::Unauthenticated, "rpc {i}");
    }

    // Another merchant, a buyer, a rider: PERMISSION_DENIED on the ledger and reservations
    for who in [
        (Role::Merchant, "8"),
        (Role::Buyer, "1"),
        (Role::Rider, "3"),
    ] {
        let err = q
            .clone()
            .get_stock(authed(&app, Some(who), stock_request(SKU)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who:?}");
        let err = q
            .clone()
            .list_reservations(authed(&app, Some(who), reservations()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who:?}");
    }

    // Malformed fields: INVALID_ARGUMENT naming the field
    let err = q
        .clone()
        .get_stock(authed(&app, OPS, stock_request("not a sku")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("sku_id"), "{}", err.message());
    let err = q
        .clone()
        .list_reservations(authed(
            &app,
            OPS,
            pb::ListReservationsRequest {
                page_token: "forged".into(),
                ..reservations()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());
    let err = q
        .clone()
        .list_merchants_nearby(authed(
            &app,
            OPS,
            pb::ListMerchantsNearbyRequest {
                radius_m: 0,
                ..nearby()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("radius_m"), "{}", err.message());
    let err = q
        .clone()
        .get_menu(authed(&app, OPS, pb::GetMenuRequest { merchant_id: 0 }))
        .await
        .unwrap_err();
    assert!(err.message().contains("merchant_id"), "{}", err.message());

    // Unknown rows: NOT_FOUND, after authentication
    let err = q
        .clone()
        .get_stock(authed(&app, OPS, stock_request("nothing-here")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = q
        .clone()
        .get_menu(authed(&app, OPS, pb::GetMenuRequest { merchant_id: 999 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    drop(q);
    read.shutdown().await?;
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn riders_are_found_nearby_and_offers_appear_then_disappear() -> anyhow::Result<()> {
    // Given a shop and two riders online, 300 m and 800 m north of it, both seen by the view
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    app.rider_online(31, north_of_merchant(300.0), 2).await?;
    app.rider_online(32, north_of_merchant(800.0), 3).await?;
    let around_shop = |radius_m: i32, who: (Role, &str)| {
        let mut q = read.q();
        let request = authed(
            &app,
            Some(who),
            pb::NearbyRidersRequest {
                center: Some(pb::nearby_riders_request::Center::MerchantId(SHOP)),
                radius_m,
                limit: 10,
            },
        );
        async move { q.nearby_riders(request).await.map(|r| r.into_inner()) }
    };
    wait_until("both riders in the rider view", WAIT, || async {
        Ok(around_shop(1_000, (Role::Merchant, "7"))
            .await?
            .riders
            .len()
            == 2)
    })
    .await?;

    // Then the shop's merchant finds them nearest first, with their room
    let near = around_shop(1_000, (Role::Merchant, "7")).await?;
    let seen: Vec<_> = near
        .riders
        .iter()
        .map(|r| (r.rider_id, r.active_orders, r.capacity))
        .collect();
    assert_eq!(seen, [(31, 0, 2), (32, 0, 3)]);
    assert!((295..=305).contains(&near.riders[0].distance_m));
    // And ops find only the nearer one within 500 m of a point
    let by_point = read
        .q()
        .nearby_riders(authed(
            &app,
            OPS,
            pb::NearbyRidersRequest {
                center: Some(pb::nearby_riders_request::Center::Location(point(
                    MERCHANT_LAT,
                    MERCHANT_LNG,
                ))),
                radius_m: 500,
                limit: 10,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        by_point
            .riders
            .iter()
            .map(|r| r.rider_id)
            .collect::<Vec<_>>(),
        [31]
    );

    // When rider 31 watches its offers and a paid order is offered
    let mut watch = read
        .q()
        .watch_offers(authed(
            &app,
            Some((Role::Rider, "31")),
            pb::ListOffersRequest { rider_id: 31 },
        ))
        .await?
        .into_inner();
    let order_no = app.submit(42, SHOP, SKU, 1, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    app.pay(&order_no, PRICE).await?;

    // Then the watch streams the offer, with the shop as pickup and the buyer as dropoff
    let offer = tokio::time::timeout(WAIT, watch.message())
        .await
        .context("no offer streamed")??
        .context("offer stream ended")?;
    assert_eq!(
        (offer.order_no.as_str(), offer.merchant_id),
        (order_no.as_str(), SHOP)
    );
    let pickup = offer.pickup.clone().context("pickup")?;
    assert_eq!((pickup.lat, pickup.lng), (MERCHANT_LAT, MERCHANT_LNG));
    assert!(offer.dropoff.is_some() && offer.expires_at.is_some());
    // And ListOffers shows it to each rider offered
    let list = |rider: i64| {
        let mut q = read.q();
        let sub = rider.to_string();
        let request = authed(
            &app,
            Some((Role::Rider, sub.as_str())),
            pb::ListOffersRequest { rider_id: rider },
        );
        async move { q.list_offers(request).await.map(|r| r.into_inner().offers) }
    };
    let open = list(31).await?;
    assert_eq!(
        open.iter().map(|o| o.offer_id.as_str()).collect::<Vec<_>>(),
        [offer.offer_id.as_str()]
    );

    // When rider 31 grabs it
    app.rider(31)
        .grab_order(grab_request(31, &order_no, &offer.offer_id))
        .await?;
    app.wait_for_status(&order_no, OrderStatus::Delivering)
        .await?;

    // Then it is gone from every rider's offers, and rider 31 carries an order
    wait_until("the grabbed offer to close", WAIT, || async {
        Ok(list(31).await?.is_empty() && list(32).await?.is_empty())
    })
    .await?;
    wait_until("rider 31 to carry the order", WAIT, || async {
        let near = around_shop(1_000, (Role::Merchant, "7")).await?;
        Ok(near
            .riders
            .iter()
            .any(|r| r.rider_id == 31 && r.active_orders == 1))
    })
    .await?;

    // And strangers are refused: another rider's offers, a buyer or another shop's merchant
    // looking for riders, and anyone without a token
    let q = read.q();
    let err = q
        .clone()
        .list_offers(authed(
            &app,
            Some((Role::Rider, "32")),
            pb::ListOffersRequest { rider_id: 31 },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = q
        .clone()
        .watch_offers(authed(
            &app,
            Some((Role::Buyer, "42")),
            pb::ListOffersRequest { rider_id: 31 },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for who in [(Role::Buyer, "42"), (Role::Merchant, "8")] {
        let err = around_shop(1_000, who).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who:?}");
    }
    let err = q
        .clone()
        .list_offers(authed(&app, None, pb::ListOffersRequest { rider_id: 31 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = q
        .clone()
        .watch_offers(authed(&app, None, pb::ListOffersRequest { rider_id: 31 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = q
        .clone()
        .nearby_riders(authed(&app, None, pb::NearbyRidersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = q
        .clone()
        .nearby_riders(authed(&app, OPS, pb::NearbyRidersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    drop((q, watch));
    read.shutdown().await?;
    app.shutdown().await
}
