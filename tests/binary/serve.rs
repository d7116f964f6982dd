//! The `orderflow` binary itself: `serve` started as a process on free ports, driven over
//! gRPC, scraped over HTTP, stopped with SIGTERM. (A test of the root package, so cargo
//! builds the binary first and hands its path over in `CARGO_BIN_EXE_orderflow`.)

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use orderflow_domain::Role;
use orderflow_infra::auth::JwtAuth;
use orderflow_proto::v1 as pb;
use orderflow_proto::v1::command_service_client::CommandServiceClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SECRET: &str = "binary-test-secret-of-at-least-32-bytes";
/// Every wait is bounded; none is a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `orderflow serve`, with the addresses it printed.
struct Served {
    child: Child,
    grpc: String,
    metrics: String,
}

async fn serve(extra: &[&str]) -> anyhow::Result<Served> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--jwt-secret", SECRET])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The machine's environment must not reconfigure the server under test.
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("ORDERFLOW_")) {
        command.env_remove(name);
    }
    let mut child = command.spawn().context("spawning orderflow serve")?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let (mut grpc, mut metrics) = (None, None);
    let addresses = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("orderflow serving gRPC on ") {
                grpc = Some(format!("http://{addr}"));
            }
            if let Some(addr) = line.strip_prefix("metrics on http://") {
                metrics = Some(addr.trim_end_matches("/metrics").to_owned());
            }
            if grpc.is_some() && metrics.is_some() {
                return Ok(());
            }
        }
        bail!("orderflow serve exited before printing its addresses")
    };
    tokio::time::timeout(PATIENCE, addresses).await??;
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Served {
        child,
        grpc: grpc.expect("found"),
        metrics: metrics.expect("found"),
    })
}

async fn wait_serving(grpc: &str) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(grpc.to_owned())?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel);
    for _ in 0..600 {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status;
        if status == ServingStatus::Serving as i32 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("health never answered SERVING")
}

/// `GET /metrics` over a plain HTTP/1.0 connection.
async fn scrape(metrics: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(metrics).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {metrics}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    anyhow::ensure!(response.starts_with("HTTP/1.0 200"), "{response}");
    Ok(response)
}

async fn sigterm_and_wait(mut served: Served) -> anyhow::Result<std::process::ExitStatus> {
    let pid = served.child.id().context("running")?;
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    anyhow::ensure!(killed.success(), "kill -TERM {pid}");
    Ok(tokio::time::timeout(PATIENCE, served.child.wait()).await??)
}

fn open_merchant(token: &str, merchant_id: i64) -> tonic::Request<pb::OpenMerchantRequest> {
    let mut request = tonic::Request::new(pb::OpenMerchantRequest {
        request_id: format!("open-{merchant_id}"),
        merchant_id,
        name: "Binary Bistro".into(),
        location: Some(pb::GeoPoint {
            lat: 31.23,
            lng: 121.47,
        }),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

#[tokio::test]
async fn serve_counts_commands_on_metrics_and_exits_0_on_sigterm() -> anyhow::Result<()> {
    // Given an embedded server, serving.
    let served = serve(&[]).await?;
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
