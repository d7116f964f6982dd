//! The gRPC server of the command side: `orderflow.v1.CommandService`,
//! `grpc.health.v1.Health` and server reflection on one listener.
//!
//! `run(app, listener, shutdown)`: serves until `shutdown` resolves; then health turns
//! NOT_SERVING, the server stops accepting and waits for the RPCs in flight (tonic's
//! graceful shutdown), and finally the app shuts its background tasks and store down.
//! Tests bind `127.0.0.1:0`; health answers SERVING as soon as `run` is polled.

use std::future::Future;

use orderflow_proto::v1::command_service_server::CommandServiceServer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::app::{AppError, CommandApp};
use crate::service::CommandHandler;

/// Serves the command side until `shutdown`, then drains and shuts the app down.
pub async fn run(
    app: CommandApp,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    run_with(app, listener, shutdown, |routes| routes).await
}

/// As [`run`], with more services on the same listener (the combined binary adds
/// `QueryService` here: `|routes| routes.add_service(query)`). Reflection describes every
/// service of `orderflow_proto::FILE_DESCRIPTOR_SET`, the query service included.
pub async fn run_with(
    app: CommandApp,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    more: impl FnOnce(Routes) -> Routes,
) -> Result<(), AppError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CommandServiceServer<CommandHandler>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(orderflow_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let routes = more(
        Routes::new(health_service)
            .add_service(reflection)
            .add_service(app.command_service()),
    );

    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "command service listening");
    let signal = {
        let health = health.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight commands");
            // Load balancers stop sending new work while the RPCs in flight finish.
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<CommandServiceServer<CommandHandler>>()
                .await;
        }
    };
    let served = tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), signal)
        .await;
    // Whether serving ended cleanly or not, the background tasks and the store still stop.
    app.shutdown().await;
    served.map_err(AppError::from)
}

/// The accepted connections of a gRPC listener, with Nagle's algorithm off: an answer is a few
/// small HTTP/2 frames (headers, data, trailers), often written apart, and with Nagle on a
/// frame written behind an unacknowledged one waits for the peer's (delayed) ACK. tonic sets
/// `TCP_NODELAY` only on listeners it binds itself; ours are bound by the caller (port 0 in
/// tests), so every server of the workspace takes its connections from here.
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
