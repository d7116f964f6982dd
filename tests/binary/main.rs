//! The `orderflow` binary itself: `serve` started as processes on free ports, driven over
//! gRPC, scraped over HTTP, stopped with SIGTERM. (A test of the root package, so cargo
//! builds the binary first and hands its path over in `CARGO_BIN_EXE_orderflow`.)
//!
//! - [`serve`]: one embedded process — metrics count commands, a bad key fails start-up,
//!   SIGTERM exits 0;
//! - [`roles`]: `command`, `projections` and `query` as three processes on Postgres + NATS.

mod roles;
mod serve;

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

pub const SECRET: &str = "binary-test-secret-of-at-least-32-bytes";
/// Every wait is bounded; none is a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `orderflow serve`, with the addresses it printed.
pub struct Served {
    child: Child,
    pub grpc: String,
    pub metrics: String,
}

/// `orderflow serve` with `extra` flags and `env`, on free ports, once it printed them.
pub async fn serve(extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Served> {
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
    command.envs(env.iter().copied());
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

pub async fn wait_serving(grpc: &str) -> anyhow::Result<()> {
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
pub async fn scrape(metrics: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(metrics).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {metrics}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    anyhow::ensure!(response.starts_with("HTTP/1.0 200"), "{response}");
    Ok(response)
}

pub async fn sigterm_and_wait(mut served: Served) -> anyhow::Result<std::process::ExitStatus> {
    let pid = served.child.id().context("running")?;
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    anyhow::ensure!(killed.success(), "kill -TERM {pid}");
    Ok(tokio::time::timeout(PATIENCE, served.child.wait()).await??)
}

/// `request` with `authorization: Bearer <token>`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}
