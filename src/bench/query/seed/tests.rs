use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::Role;
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::store::MemoryEventStore;
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::orders::{ListSide, PgOrderDetail, PgOrderList};
use orderflow_projections::ProjectionModel;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::query_service_server::QueryService;
use orderflow_query_service::ReadApp;
use tokio_postgres::Client;

use super::*;
use crate::bench::flash_sale::clients::authorized;

/// The projectors' way: every shard's events through the adapters' `apply`, in batches of
/// 1,000 orders, as a projector catching up on a log would hand them over.
async fn seed_through_adapters(dataset: Dataset, pool: &Pool) {
    let models: Vec<Arc<dyn ProjectionModel>> = vec![
        Arc::new(PgOrderDetail::new(pool.clone())),
        Arc::new(PgOrderList::new(ListSide::Buyer, pool.clone())),
        Arc::new(PgOrderList::new(ListSide::Seller, pool.clone())),
    ];
    for shard in Shard::all() {
        let mut events = dataset.shard_events(shard);
        loop {
            let batch = events.next_batch(1_000);
            if batch.is_empty() {
                break;
            }
            for model in &models {
                model.apply(shard, &batch).await.unwrap();
            }
        }
    }
}

/// Every row of the three tables (every column, the search vector as text, the document as
/// its value: `json` keeps each writer's spelling) and every checkpoint, in a stable order.
async fn dump(client: &Client) -> Vec<String> {
    let queries = [
        "SELECT order_no, buyer_id, merchant_id, status, created_ms, updated_ms, version,
                doc::jsonb::text, search::text FROM order_detail ORDER BY order_no",
        "SELECT tableoid::regclass::text, part, owner_id, order_no, status, created_ms, version,
                doc::jsonb::text, '' FROM buyer_order ORDER BY part, owner_id, order_no",
        "SELECT tableoid::regclass::text, part, owner_id, order_no, status, created_ms, version,
                doc::jsonb::text, '' FROM seller_order ORDER BY part, owner_id, order_no",
        "SELECT name, shard, position, 0, '', 0, 0, '', '' FROM checkpoints ORDER BY name, shard",
        "SELECT merchant_id, name, search::text, 0, '', 0, 0, '', '' FROM order_detail_merchants",
    ];
    let mut rows = Vec::new();
    for q in queries {
        for row in client.simple_query(q).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = row {
                let cells: Vec<&str> = (0..row.len()).map(|i| row.get(i).unwrap_or("")).collect();
                rows.push(cells.join("|"));
            }
        }
    }
    rows
}

async fn client_of(db: &TestDatabase) -> Client {
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Given the bench's data set, when one database is seeded with COPY and another through the
/// projections' adapters (`apply`, what the projectors call), then the two hold the same rows
/// column for column (search vectors included) and the same checkpoints, and the
/// `QueryService` of each answers `GetOrder` identically for every order and
/// `ListBuyerOrders` / `ListSellerOrders` identically for every buyer and merchant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_seeding_reads_back_as_the_projectors_rows() {
    // More than one COPY chunk per shard for some shards would need > 320k orders; a chunk
    // boundary inside a shard is covered by `fold_new_orders`'s own tests.
    let dataset = Dataset { orders: 1_500 };
    let (copied, applied) = (TestDatabase::create().await, TestDatabase::create().await);
    for db in [&copied, &applied] {
        orderflow_infra::migrate::run_url(&db.url).await.unwrap();
    }
    let events = seed(dataset, &copied.pool(8)).await.unwrap();
    assert_eq!(
        events,
        1_500 * 2 + 500,
        "submitted + created each, paid every third"
    );
    seed_through_adapters(dataset, &applied.pool(8)).await;

    let (a, b) = (client_of(&copied).await, client_of(&applied).await);
    let (rows_copied, rows_applied) = (dump(&a).await, dump(&b).await);
    assert_eq!(rows_copied.len(), 3 * 1_500 + 3 * 32);
    assert_eq!(rows_copied, rows_applied);

    let secret = JwtSecret::new(vec![7u8; 32]).unwrap();
    let auth = JwtAuth::new(&secret);
    let ops = auth
        .mint(Role::Ops, "seed-test", Duration::from_secs(600))
        .unwrap();
    let app = |db: &TestDatabase| {
        ReadApp::builder(auth.clone(), Arc::new(MemoryEventStore::new()))
            .postgres(db.pool(4))
            .start()
    };
    let (app_copied, app_applied) = (app(&copied), app(&applied));
    let (q_copied, q_applied) = (app_copied.handler(), app_applied.handler());
    for i in 0..dataset.orders {
        let get = || {
            let request = pb::GetOrderRequest {
                order_no: dataset.order_no(i).as_str().to_owned(),
                consistency_token: String::new(),
            };
            authorized(request, &ops).unwrap()
        };
        let one = QueryService::get_order(q_copied, get())
            .await
            .unwrap()
            .into_inner();
        let other = QueryService::get_order(q_applied, get())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one, other, "order {i}");
        assert_eq!(one.order_no, dataset.order_no(i).as_str());
    }
    for buyer in 1..=dataset.buyers() as i64 {
        let list = || {
            let request = pb::ListBuyerOrdersRequest {
                buyer_id: buyer,
                page_size: 100,
                ..Default::default()
            };
            authorized(request, &ops).unwrap()
        };
        let one = QueryService::list_buyer_orders(q_copied, list())
            .await
            .unwrap()
            .into_inner();
        let other = QueryService::list_buyer_orders(q_applied, list())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.orders.len() as u64, ORDERS_PER_BUYER, "buyer {buyer}");
        assert_eq!(one, other, "buyer {buyer}");
    }
    for merchant in 1..=MERCHANTS {
        let list = || {
            let request = pb::ListSellerOrdersRequest {
                merchant_id: merchant,
                page_size: 100,
                ..Default::default()
            };
            authorized(request, &ops).unwrap()
        };
        let one = QueryService::list_seller_orders(q_copied, list())
            .await
            .unwrap()
            .into_inner();
        let other = QueryService::list_seller_orders(q_applied, list())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one, other, "merchant {merchant}");
    }
    app_copied.shutdown().await;
    app_applied.shutdown().await;
}
