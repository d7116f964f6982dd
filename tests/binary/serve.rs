//! One embedded `orderflow serve`.

use std::time::Duration;

use orderflow_domain::Role;
use orderflow_infra::auth::JwtAuth;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use orderflow_proto::v1::query_service_client::QueryServiceClient;
use tokio::process::Command;

use crate::{bearer, scrape, serve, sigterm_and_wait, wait_serving, SECRET};

pub fn open_merchant(token: &str, merchant_id: i64) -> tonic::Request<pb::OpenMerchantRequest> {
    bearer(
        token,
        pb::OpenMerchantRequest {
            request_id: format!("open-{merchant_id}"),
            merchant_id,
            name: "Binary Bistro".into(),
            location: Some(pb::GeoPoint {
                lat: 31.23,
                lng: 121.47,
            }),
        },
    )
}

#[tokio::test]
async fn serve_counts_commands_on_metrics_and_exits_0_on_sigterm() -> anyhow::Result<()> {
    // Given an embedded server, serving.
    let served = serve(&[], &[]).await?;
    wait_serving(&served.grpc).await?;
    let before = scrape(&served.metrics).await?;
    assert!(!before.contains("orderflow_commands_total{"), "{before}");

    // When a merchant opens its shop, and a stranger's token is refused.
    let auth = JwtAuth::new(&SECRET.parse()?);
    let merchant = auth.mint(Role::Merchant, "7", Duration::from_secs(600))?;
    let stranger = auth.mint(Role::Merchant, "8", Duration::from_secs(600))?;
    let mut client = CommandServiceClient::connect(served.grpc.clone()).await?;
    client.open_merchant(open_merchant(&merchant, 7)).await?;
    let refused = client
        .open_merchant(open_merchant(&stranger, 7))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // Then /metrics counts both by outcome, and saw the append.
    let after = scrape(&served.metrics).await?;
    assert!(
        after.contains(r#"orderflow_commands_total{command="OpenMerchant",outcome="ok"} 1"#),
        "{after}"
    );
    assert!(
        after.contains(
            r#"orderflow_commands_total{command="OpenMerchant",outcome="permission_denied"} 1"#
        ),
        "{after}"
    );
    assert!(
        after
            .contains(r#"orderflow_store_append_duration_seconds_count{op="append",outcome="ok"}"#),
        "{after}"
    );

    // And role all serves the query side on the same listener.
    let buyer = auth.mint(Role::Buyer, "42", Duration::from_secs(600))?;
    let mut queries = QueryServiceClient::connect(served.grpc.clone()).await?;
    let missing = queries
        .get_order(bearer(
            &buyer,
            pb::GetOrderRequest {
                order_no: "1970010100000200000000110".into(),
                consistency_token: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    // And SIGTERM drains and exits 0.
    let status = sigterm_and_wait(served).await?;
    assert!(status.success(), "{status:?}");
    Ok(())
}

#[tokio::test]
async fn a_bad_configuration_fails_at_start_naming_the_key() -> anyhow::Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(["serve", "--listen", "nowhere"])
        .env_remove("ORDERFLOW_LISTEN")
        .output()
        .await?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"listen = "nowhere" (from flag --listen)"#),
        "{stderr}"
    );
    Ok(())
}
