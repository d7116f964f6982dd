//! The query handler over memory read models fed by a memory event store, called directly
//! (the gRPC surface is tested end to end in `tests/tests/read_side.rs`).

use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::order::{OrderCreated, OrderEvent};
use orderflow_domain::{DomainEvent, Role, Timestamp};
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::store::{
    AppendRequest, ConsistencyToken, EventStore, ExpectedVersion, MemoryEventStore, NewEvent,
};
use orderflow_infra::testing::store::metadata;
use orderflow_projections::testing::fixtures::{at, order_no, submitted, T0};
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::query_service_server::QueryService;
use orderflow_query_service::{QueryConfig, ReadApp};
use tonic::{Code, Request};

struct Harness {
    store: Arc<dyn EventStore>,
    app: ReadApp,
    auth: JwtAuth,
}

impl Harness {
    fn new() -> Self {
        let secret = JwtSecret::new(b"the query handler tests' secret, 32+".to_vec()).unwrap();
        let auth = JwtAuth::new(&secret);
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let app = ReadApp::builder(auth.clone(), store.clone())
            .now(Arc::new(|| Timestamp::from_millis(T0)))
            // Short: one case waits for a token that never comes.
            .config(QueryConfig {
                consistency_bound: Duration::from_millis(200),
                ..QueryConfig::default()
            })
            .start();
        Harness { store, app, auth }
    }

    async fn append(&self, event: impl Into<OrderEvent>, no: &orderflow_domain::OrderNo) -> String {
        let event: OrderEvent = event.into();
        let outcome = self
            .store
            .append(AppendRequest {
                stream: no.stream_id(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::new(
                    event.event_type(),
                    event.event_version(),
                    event.encode().unwrap(),
                )],
                metadata: metadata(&uuid_like()),
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

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("cmd-{}", N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn get_order_with_a_token_reads_its_write_and_strangers_are_refused() {
    let h = Harness::new();
    let no = order_no(0, 42);
    h.append(submitted(&no, 42, 7, "Tea", "1 Road", 0), &no)
        .await;
    let token = h
        .append(
            OrderCreated {
                payment_deadline: at(900_000),
                at: at(5),
            },
            &no,
        )
        .await;
    let get = |role, sub: &str| {
        h.request(
            role,
            sub,
            pb::GetOrderRequest {
                order_no: no.to_string(),
                consistency_token: token.clone(),
            },
        )
    };
    let order = QueryService::get_order(h.app.handler(), get(Role::Buyer, "42"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.status, pb::OrderStatus::Created as i32);
    assert_eq!(order.timeline.len(), 2);
    let refused = QueryService::get_order(h.app.handler(), get(Role::Buyer, "43"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut anonymous = get(Role::Ops, "x");
    anonymous.metadata_mut().remove("authorization");
    let refused = QueryService::get_order(h.app.handler(), anonymous)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    h.app.shutdown().await;
}

#[tokio::test]
async fn a_token_never_reached_is_unavailable_saying_how_far_behind() {
    let h = Harness::new();
    let no = order_no(0, 42);
    h.append(submitted(&no, 42, 7, "Tea", "1 Road", 0), &no)
        .await;
    let shard = no.shard().index();
    let request = h.request(
        Role::Ops,
        "alice",
        pb::GetOrderRequest {
            order_no: no.to_string(),
            consistency_token: format!("v1.{shard}.1000"),
        },
    );
    let handler = orderflow_query_service::QueryHandler::clone(h.app.handler());
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        QueryService::get_order(&handler, request),
    )
    .await
    .expect("bounded")
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("behind"), "{}", status.message());
    h.app.shutdown().await;
}
