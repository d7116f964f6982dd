//! Helpers of `read_side.rs`: reading replies, calling every query, and a second
//! `order_detail` database for the killed-projector test.

use std::sync::Arc;

use orderflow_domain::{OrderNo, Shard, Timestamp};
use orderflow_infra::migrate;
use orderflow_infra::store::{ConsistencyToken, EventStore};
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::orders::{OrderDetailReader, OrderView, PgOrderDetail};
use orderflow_projections::{Projector, ProjectorConfig};
use orderflow_tests::v1 as pb;
use orderflow_tests::{wait_until, QueryClient, WAIT};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;

pub fn statuses(order: &pb::Order) -> Vec<pb::OrderStatus> {
    order.timeline.iter().map(|c| c.status()).collect()
}

pub fn numbers(reply: &pb::ListOrdersReply) -> Vec<String> {
    reply.orders.iter().map(|o| o.order_no.clone()).collect()
}

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    orderflow_proto::convert::to_proto::timestamp(t)
}

pub fn order_from_view(view: &OrderView) -> pb::Order {
    orderflow_query_service::convert::order(view)
}

/// Every query this build serves, about `order_no` (lists: of buyer 42 / merchant 7), as
/// `client`: the code each failed with (`None`: it succeeded).
pub async fn every_query(
    client: &QueryClient,
    order_no: &str,
) -> Vec<(&'static str, Option<Code>)> {
    let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
    vec![
        ("GetOrder", code(client.order(order_no).await.map(drop))),
        (
            "IsCreated",
            code(
                client
                    .is_created(pb::IsCreatedRequest {
                        order_no: order_no.into(),
                        wait_ms: 0,
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "WatchOrder",
            code(client.watch_order(order_no).await.map(drop)),
        ),
        (
            "ListBuyerOrders",
            code(
                client
                    .list_buyer_orders(pb::ListBuyerOrdersRequest {
                        buyer_id: 42,
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListSellerOrders",
            code(
                client
                    .list_seller_orders(pb::ListSellerOrdersRequest {
                        merchant_id: 7,
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "SearchOrders",
            code(
                client
                    .search_orders(pb::SearchOrdersRequest {
                        query: "noodles".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetOrderHistory",
            code(
                client
                    .get_order_history(pb::GetOrderHistoryRequest {
                        order_no: order_no.into(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetOrderAsOf",
            code(
                client
                    .get_order_as_of(pb::GetOrderAsOfRequest {
                        order_no: order_no.into(),
                        as_of: Some(prost_types::Timestamp {
                            seconds: 4_000_000_000,
                            nanos: 0,
                        }),
                    })
                    .await
                    .map(drop),
            ),
        ),
    ]
}

/// A second, empty `order_detail` (its own database), fed by the app's store.
pub struct Rebuild {
    database: TestDatabase,
    model: Arc<PgOrderDetail>,
}

/// A test transaction holding one `order_detail` row (inserted, not committed): a
/// projector's upsert of that order waits on it.
pub struct Blocker {
    client: tokio_postgres::Client,
}

impl Blocker {
    pub async fn rollback(self) -> anyhow::Result<()> {
        self.client.batch_execute("ROLLBACK").await?;
        Ok(())
    }
}

impl Rebuild {
    pub async fn new() -> anyhow::Result<Self> {
        let database = TestDatabase::create().await;
        let pool = database.pool(4);
        migrate::run(&pool, migrate::MIGRATIONS).await?;
        Ok(Rebuild {
            database,
            model: Arc::new(PgOrderDetail::new(pool)),
        })
    }

    pub async fn hold_row(&self, order_no: &str) -> anyhow::Result<Blocker> {
        let (client, connection) =
            tokio_postgres::connect(&self.database.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "BEGIN; INSERT INTO order_detail (order_no, buyer_id, merchant_id, status,
                    created_ms, updated_ms, version, doc, search)
                 VALUES ('{order_no}', 0, 0, 'HELD', 0, 0, 0, '{{}}', ''::tsvector)"
            ))
            .await?;
        Ok(Blocker { client })
    }

    /// A projector into this database, running (its task, and the projector for its
    /// applied positions).
    pub fn start(&self, store: Arc<dyn EventStore>) -> (JoinHandle<()>, Projector) {
        let projector = Projector::new(
            self.model.clone(),
            store,
            None,
            ProjectorConfig {
                batch: 256,
                publish: false,
            },
        );
        let run = projector.clone();
        let task = tokio::spawn(async move {
            let _ = run.run(CancellationToken::new()).await;
        });
        (task, projector)
    }

    /// Until some statement in this database waits on a lock.
    pub async fn wait_until_blocked(&self) -> anyhow::Result<()> {
        let (client, connection) =
            tokio_postgres::connect(&self.database.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let name = self.database.name.clone();
        wait_until("a projector waiting on the held row", WAIT, || {
            let (client, name) = (&client, name.clone());
            async move {
                let row = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE datname = $1 AND wait_event_type = 'Lock'",
                        &[&name],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0) > 0)
            }
        })
        .await
    }

    pub async fn get(&self, order_no: &str) -> anyhow::Result<Option<OrderView>> {
        Ok(self.model.get(&OrderNo::parse(order_no)?).await?)
    }
}

/// The consistency token of the last event of an order (read from the store).
pub async fn order_token(app: &orderflow_tests::TestApp, order_no: &str) -> anyhow::Result<String> {
    let events = app.read_all(&OrderNo::parse(order_no)?.stream_id()).await?;
    let last = events
        .last()
        .ok_or_else(|| anyhow::anyhow!("order {order_no} has no events"))?;
    Ok(ConsistencyToken::new(last.shard, last.position).to_string())
}

/// Until `projector` has applied every shard up to the store's head now.
pub async fn wait_caught_up(projector: &Projector, store: &dyn EventStore) -> anyhow::Result<()> {
    for shard in Shard::all() {
        let head = store.head(shard).await?;
        projector
            .applied()
            .wait_for(ConsistencyToken::new(shard, head), WAIT)
            .await?;
    }
    Ok(())
}
