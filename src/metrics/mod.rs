//! Prometheus metrics of `orderflow serve`: the recorder behind the `metrics` facade, the
//! `/metrics` listener, the per-RPC command counter, and the sampler of lags and backlogs.
//!
//! The metric names live in [`orderflow_infra::telemetry`] (documented in
//! `docs/operations.md`). The listener is ours, not the exporter's, so it binds before the
//! services start (an address in use fails start-up) and stops on the same shutdown token as
//! everything else.

mod sampler;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use orderflow_infra::telemetry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use sampler::LagSampler;

/// The gRPC path prefix of the commands counted by [`count_commands`].
const COMMAND_SERVICE_PATH: &str = "/orderflow.v1.CommandService/";

/// Latency buckets (seconds) from an in-memory append (tens of µs) to a slow group commit.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// How often histograms are compacted (the exporter leaves it to its owner without its own
/// HTTP listener).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder. Call once, before anything records.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(telemetry::APPEND_DURATION.to_owned()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(telemetry::COMMAND_DURATION.to_owned()),
            LATENCY_BUCKETS,
        )?
        .install_recorder()
        .context("installing the metrics recorder")?;
    telemetry::describe();
    Ok(handle)
}

/// The running `/metrics` listener.
pub struct MetricsServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `/metrics` until `shutdown` is cancelled.
    pub async fn start(
        addr: SocketAddr,
        handle: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics_listen {addr}"))?;
        let addr = listener.local_addr()?;
        let upkeep = {
            let (handle, shutdown) = (handle.clone(), shutdown.clone());
            async move {
                let mut tick = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tick.tick() => handle.run_upkeep(),
                    }
                }
            }
        };
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(render))
            .with_state(handle);
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned());
            let (served, ()) = tokio::join!(std::future::IntoFuture::into_future(served), upkeep);
            if let Err(e) = served {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
        Ok(MetricsServer { addr, task })
    }

    /// Waits for the listener to stop (after the shutdown token is cancelled).
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "metrics listener panicked");
        }
    }
}

async fn render(State(handle): State<PrometheusHandle>) -> String {
    handle.render()
}

/// An axum middleware over the gRPC routes: counts every `CommandService` RPC by name and
/// gRPC outcome, and times it. Measured at the wire, so refusals before any command runs
/// (bad token, invalid request) count too.
pub async fn count_commands(request: Request, next: Next) -> Response {
    let Some(rpc) = request
        .uri()
        .path()
        .strip_prefix(COMMAND_SERVICE_PATH)
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry::command_answered(&rpc, outcome(&response), started.elapsed());
    response
}

/// The gRPC outcome of a unary answer: a refusal is a trailers-only response, its
/// `grpc-status` in the headers; an answer has it in the trailers, and is `ok`.
fn outcome(response: &Response) -> &'static str {
    let code = response
        .headers()
        .get("grpc-status")
        .map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes()));
    code_name(code)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The gRPC routes with [`count_commands`] in front of them.
pub fn with_command_metrics(routes: tonic::service::Routes) -> tonic::service::Routes {
    routes
        .into_axum_router()
        .layer(axum::middleware::from_fn(count_commands))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_trailers_only_headers() {
        let mut response = Response::new(axum::body::Body::empty());
        assert_eq!(outcome(&response), "ok");
        response
            .headers_mut()
            .insert("grpc-status", "9".parse().unwrap());
        assert_eq!(outcome(&response), "failed_precondition");
    }
}
