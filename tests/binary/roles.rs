//! `command`, `projections` and `query` as three processes sharing one Postgres database and
//! one NATS prefix: an order submitted to the first is read back from the third.

use std::time::Duration;

use orderflow_domain::Role;
use orderflow_infra::auth::JwtAuth;
use orderflow_infra::testing::{nats_url, unique_name, TestDatabase};
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use orderflow_proto::v1::query_service_client::QueryServiceClient;

use crate::serve::open_merchant;
use crate::{bearer, scrape, serve, sigterm_and_wait, wait_serving, SECRET};

fn cny(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "CNY".into(),
        minor_units,
    })
}

#[tokio::test]
async fn roles_in_separate_processes_serve_one_deployment() -> anyhow::Result<()> {
    // Given the three roles on one database and one NATS prefix.
    let db = TestDatabase::create().await;
    let (nats, prefix) = (nats_url(), unique_name("ofroles"));
    let env = [
        ("ORDERFLOW_DATABASE_URL", db.url.as_str()),
        ("ORDERFLOW_NATS_URL", nats.as_str()),
        ("ORDERFLOW_NATS_PREFIX", prefix.as_str()),
    ];
    // The command side first: connecting migrates the database the others read.
    let command = serve(&["--role", "command"], &env).await?;
    wait_serving(&command.grpc).await?;
    let projections = serve(&["--role", "projections"], &env).await?;
    let query = serve(&["--role", "query"], &env).await?;
    wait_serving(&projections.grpc).await?;
    wait_serving(&query.grpc).await?;

    // When a merchant stocks a dish and a buyer orders it through the command process.
    let auth = JwtAuth::new(&SECRET.parse()?);
    let merchant = auth.mint(Role::Merchant, "7", Duration::from_secs(600))?;
    let buyer = auth.mint(Role::Buyer, "42", Duration::from_secs(600))?;
    let mut commands = CommandServiceClient::connect(command.grpc.clone()).await?;
    commands.open_merchant(open_merchant(&merchant, 7)).await?;
    commands
        .list_dish(bearer(
            &merchant,
            pb::ListDishRequest {
                request_id: "list".into(),
                merchant_id: 7,
                sku_id: "latte".into(),
                name: "Latte".into(),
                price: cny(1500),
            },
        ))
        .await?;
    commands
        .restock(bearer(
            &merchant,
            pb::RestockRequest {
                request_id: "restock".into(),
                merchant_id: 7,
                sku_id: "latte".into(),
                quantity: 10,
            },
        ))
        .await?;
    let submitted = commands
        .submit_order(bearer(
            &buyer,
            pb::SubmitOrderRequest {
                request_id: "submit".into(),
                buyer_id: 42,
                merchant_id: 7,
                lines: vec![pb::OrderLine {
                    sku_id: "latte".into(),
                    quantity: 2,
                    unit_price: cny(1500),
                }],
                delivery_address: Some(pb::Address {
                    text: "1 Bund Road".into(),
                    location: Some(pb::GeoPoint {
                        lat: 31.24,
                        lng: 121.49,
                    }),
                }),
            },
        ))
        .await?
        .into_inner();

    // Then the query process answers it, read-your-writes with the submit's token, and sees
    // the saga create it.
    let mut queries = QueryServiceClient::connect(query.grpc.clone()).await?;
    let order = queries
        .get_order(bearer(
            &buyer,
            pb::GetOrderRequest {
                order_no: submitted.order_no.clone(),
                consistency_token: submitted.consistency_token.clone(),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(order.order_no, submitted.order_no);
    assert_eq!(order.total, cny(3000));
    let mut created = false;
    for _ in 0..20 {
        let reply = queries
            .is_created(bearer(
                &buyer,
                pb::IsCreatedRequest {
                    order_no: submitted.order_no.clone(),
                    wait_ms: 3_000,
                },
            ))
            .await?
            .into_inner();
        if reply.state == pb::CreationState::Created as i32 {
            created = true;
            break;
        }
    }
    assert!(
        created,
        "the order never showed CREATED on the query process"
    );

    // And the projections process reports each projector's lag.
    let metrics = scrape(&projections.metrics).await?;
    assert!(
        metrics.contains("orderflow_projection_lag_events{projector="),
        "{metrics}"
    );

    // And each process drains and exits 0 on SIGTERM.
    for served in [query, projections, command] {
        let status = sigterm_and_wait(served).await?;
        assert!(status.success(), "{status:?}");
    }
    Ok(())
}
