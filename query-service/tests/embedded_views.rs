//! The stock, catalog and offer RPCs in the embedded mode: memory read models fed by a memory
//! event store, the handler called directly (the gRPC surface on Postgres + NATS is tested
//! end to end in `tests/tests/read_views`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::merchant::MerchantEvent;
use orderflow_domain::order::{OrderEvent, RidersNotified};
use orderflow_domain::sku::SkuEvent;
use orderflow_domain::{DomainEvent, OfferId, RiderId, Role, StreamId, Timestamp};
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::store::{
    AppendRequest, ConsistencyToken, EventStore, ExpectedVersion, MemoryEventStore, NewEvent,
};
use orderflow_infra::testing::store::metadata;
use orderflow_projections::testing::fixtures::{at, opened, order_no, submitted, T0};
use orderflow_projections::testing::{added, listed, reserved};
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::query_service_server::QueryService;
use orderflow_query_service::ReadApp;
use tonic::{Code, Request};

struct Harness {
    store: Arc<dyn EventStore>,
    app: ReadApp,
    auth: JwtAuth,
}

impl Harness {
    fn new() -> Self {
        let secret = JwtSecret::new(b"the embedded views tests' secret, 32+".to_vec()).unwrap();
        let auth = JwtAuth::new(&secret);
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let app = ReadApp::builder(auth.clone(), store.clone())
            // Offers expire at T0 + 30 s in these cases: "now" is before that.
            .now(Arc::new(|| Timestamp::from_millis(T0 + 1_000)))
            .start();
        Harness { store, app, auth }
    }

    async fn append<E: DomainEvent>(&self, stream: &StreamId, event: E) -> String {
        let outcome = self
            .store
            .append(AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::new(
                    event.event_type(),
                    event.event_version(),
                    event.encode().unwrap(),
                )],
                metadata: metadata(&command_id()),
            })
            .await
            .unwrap();
        ConsistencyToken::new(outcome.shard, outcome.last_position).to_string()
    }

    fn request<T>(&self, role: Role, sub: &str, body: T) -> Request<T> {
        let token = self
            .auth
            .mint_at(
                role,
                sub,
                Timestamp::from_millis(T0),
                Duration::from_secs(60),
            )
            .unwrap();
        let mut request = Request::new(body);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }
}

fn command_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("cmd-{}", N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn stock_and_menu_read_their_writes_in_memory() {
    // Given merchant 7 open with a dish of 10 units, 3 of them reserved
    let h = Harness::new();
    let m7 = orderflow_domain::MerchantId::new(7).unwrap();
    let merchant_token = h
        .append(&m7.stream_id(), MerchantEvent::from(opened("Noodle Bar")))
        .await;
    let sku = orderflow_domain::SkuId::parse("latte").unwrap().stream_id();
    h.append(&sku, SkuEvent::from(listed(7, "Latte", 1800)))
        .await;
    h.append(&sku, SkuEvent::from(added(10))).await;
    let token = h
        .append(&sku, SkuEvent::from(reserved(&order_no(0, 1), 3)))
        .await;
    // When the merchant reads its stock with the last write's token
    let level = QueryService::get_stock(
        h.app.handler(),
        h.request(
            Role::Merchant,
            "7",
            pb::GetStockRequest {
                sku_id: "latte".into(),
                consistency_token: token,
            },
        ),
    )
    .await
    .unwrap()
    .into_inner();
    // Then it sees the reservation, and the identity holds
    assert_eq!((level.added, level.available, level.reserved), (10, 7, 3));
    // And a buyer is refused the ledger but sees the menu's availability
    let refused = QueryService::get_stock(
        h.app.handler(),
        h.request(
            Role::Buyer,
            "1",
            pb::GetStockRequest {
                sku_id: "latte".into(),
                consistency_token: String::new(),
            },
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // (The merchant catalog is its own projection: wait for its write too.)
    let merchants = h
        .app
        .projection("merchant_catalog")
        .unwrap()
        .applied()
        .clone();
    merchants
        .wait_for(
            ConsistencyToken::parse(&merchant_token).unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let menu = QueryService::get_menu(
        h.app.handler(),
        h.request(Role::Buyer, "1", pb::GetMenuRequest { merchant_id: 7 }),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(menu.name, "Noodle Bar");
    assert_eq!(
        menu.dishes
            .iter()
            .map(|d| (d.sku_id.as_str(), d.available, d.listed))
            .collect::<Vec<_>>(),
        [("latte", 7, true)]
    );
    h.app.shutdown().await;
}

#[tokio::test]
async fn offers_are_listed_and_watched_in_memory() {
    // Given an order of merchant 7 offered to riders 3 and 4
    let h = Harness::new();
    let m7 = orderflow_domain::MerchantId::new(7).unwrap();
    h.append(&m7.stream_id(), MerchantEvent::from(opened("Noodle Bar")))
        .await;
    let no = order_no(0, 42);
    h.append(
        &no.stream_id(),
        OrderEvent::from(submitted(&no, 42, 7, "Tea", "1 Road", 0)),
    )
    .await;
    // A watch opened before the offer streams it when it comes
    let mut watch = QueryService::watch_offers(
        h.app.handler(),
        h.request(Role::Rider, "3", pb::ListOffersRequest { rider_id: 3 }),
    )
    .await
    .unwrap()
    .into_inner();
    let token = h
        .append(
            &no.stream_id(),
            OrderEvent::from(RidersNotified {
                offer_id: OfferId::parse("offer-1").unwrap(),
                round: 1,
                riders: vec![RiderId::new(3).unwrap(), RiderId::new(4).unwrap()],
                radius_m: 3000,
                expires_at: at(30_000),
                at: at(10),
            }),
        )
        .await;
    let streamed = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an offer within the bound")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(
        (
            streamed.offer_id.as_str(),
            streamed.order_no.as_str(),
            streamed.merchant_id
        ),
        ("offer-1", no.as_str(), 7)
    );
    // And rider 4 lists it once the view has it, rider 5 has nothing, rider 5 may not look
    // at rider 4's offers
    h.app
        .projection("rider_geo")
        .unwrap()
        .applied()
        .wait_for(
            ConsistencyToken::parse(&token).unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let list = |rider: i64, sub: &str| {
        QueryService::list_offers(
            h.app.handler(),
            h.request(Role::Rider, sub, pb::ListOffersRequest { rider_id: rider }),
        )
    };
    assert_eq!(list(4, "4").await.unwrap().into_inner().offers.len(), 1);
    assert!(list(5, "5").await.unwrap().into_inner().offers.is_empty());
    assert_eq!(
        list(4, "5").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // And the watch ends when the server shuts down
    h.app.begin_shutdown();
    assert!(tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the stream ends")
        .is_none());
    h.app.shutdown().await;
}
