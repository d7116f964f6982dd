//! One function per role, each taking the shared configuration and the one shutdown token.
//!
//! | role | runs | needs |
//! |---|---|---|
//! | `all` | command side + projectors + `QueryService`, one listener | embedded or durable |
//! | `command` | `CommandService`, process managers, relay | embedded or durable |
//! | `projections` | the projectors (health and reflection on the listener) | durable |
//! | `query` | `QueryService` over the Postgres read models | durable |
//!
//! Every listener answers health (SERVING until shutdown) and reflection.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use orderflow_command_service::deadlines::SCHEDULER_CONSUMER;
use orderflow_command_service::riders::notifier::NOTIFIER_CONSUMER;
use orderflow_command_service::saga::{SETTLE_CONSUMER, SUBMIT_CONSUMER};
use orderflow_command_service::{processes, server, CommandApp};
use orderflow_domain::Shard;
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::bus::{EventBus, NatsBus, NatsBusConfig, RelayConfig, Subjects};
use orderflow_infra::store::{PgEventStore, PgStoreConfig, ShardMap};
use orderflow_query_service::ReadApp;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::config::{Backend, ServeConfig};
use crate::metrics::{with_command_metrics, LagSampler};

/// Command, projections and query in one process, on one listener.
pub async fn all(
    config: &ServeConfig,
    secret: JwtSecret,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = command_app(config, &secret).await?;
    let mut read =
        ReadApp::builder(JwtAuth::new(&secret), app.store().clone()).bus(app.bus().clone());
    // The read models live beside shard 0's events, where the migrations put their tables.
    // Projectors write on the store's pool; queries read on their own.
    if let (Some(pg), Backend::Durable { shard_map, .. }) = (app.postgres(), &config.backend) {
        read = read
            .postgres(pg.pool(Shard::of_id(0)).clone())
            .query_pool(read_pool(config, shard_map)?);
        if let Some(shared) = shared_reads(config, shard_map)? {
            read = read.shared_reads(shared);
        }
    }
    let read = read.start();
    let sampler = LagSampler::new(app.store().clone()).projections(read.projections());
    app.spawn_background("projection-lag", |token| sampler.run(token));

    let listener = bind(config).await?;
    let drain = {
        let read = read.clone();
        async move {
            shutdown.cancelled().await;
            // Long-polls answer now; projectors finish their batch before the store stops.
            read.shutdown().await;
        }
    };
    server::run_with(app, listener, drain, |routes| {
        with_command_metrics(routes.add_service(read.query_service()))
    })
    .await
    .context("gRPC server")
}

/// The write side: `CommandService` and every process manager.
pub async fn command(
    config: &ServeConfig,
    secret: JwtSecret,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = command_app(config, &secret).await?;
    let listener = bind(config).await?;
    server::run_with(
        app,
        listener,
        shutdown.cancelled_owned(),
        with_command_metrics,
    )
    .await
    .context("gRPC server")
}

/// The projectors alone, writing the Postgres read models and publishing their changes.
pub async fn projections(
    config: &ServeConfig,
    secret: JwtSecret,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (shard_map, nats_url) = durable(config, "projections")?;
    let store = PgEventStore::connect(PgStoreConfig::new(shard_map.clone()))
        .await
        .context("connecting to the event store")?;
    let subjects = Subjects::new(config.nats_prefix.clone())?;
    let bus: Arc<dyn EventBus> =
        Arc::new(NatsBus::connect(nats_url, subjects, NatsBusConfig::default()).await?);
    let read = ReadApp::builder(JwtAuth::new(&secret), Arc::new(store.clone()))
        .postgres(store.pool(Shard::of_id(0)).clone())
        .bus(bus)
        .start();
    let sampler = LagSampler::new(Arc::new(store.clone())).projections(read.projections());
    let sampling = tokio::spawn(sampler.run(shutdown.child_token()));

    let listener = bind(config).await?;
    let served = serve(listener, shutdown.cancelled_owned(), |routes| routes).await;
    read.shutdown().await;
    let _ = sampling.await;
    store.shutdown().await;
    served
}

/// `QueryService` alone, over the read models a `projections` process keeps.
pub async fn query(
    config: &ServeConfig,
    secret: JwtSecret,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (shard_map, _) = durable(config, "query")?;
    let store = PgEventStore::connect(PgStoreConfig::new(shard_map.clone()))
        .await
        .context("connecting to the event store")?;
    let queries = shutdown.child_token();
    let shared = shared_reads(config, shard_map)?;
    let (handler, following) = super::read::query_handler(
        JwtAuth::new(&secret),
        Arc::new(store.clone()),
        read_pool(config, shard_map)?,
        shared.clone(),
        queries.clone(),
    );
    let listener = bind(config).await?;
    let service = orderflow_proto::v1::query_service_server::QueryServiceServer::new(handler);
    let served = serve(listener, shutdown.cancelled_owned(), |routes| {
        routes.add_service(service)
    })
    .await;
    queries.cancel();
    let _ = following.await;
    if let Some(shared) = shared {
        shared.close().await;
    }
    store.shutdown().await;
    served
}

/// The command app, with its process managers and the lag sampler started.
async fn command_app(config: &ServeConfig, secret: &JwtSecret) -> anyhow::Result<CommandApp> {
    let mut builder = CommandApp::builder(JwtAuth::new(secret))
        .config(config.business.clone())
        .nats_prefix(config.nats_prefix.clone());
    builder = match &config.backend {
        Backend::Embedded => builder.embedded(),
        Backend::Durable {
            shard_map,
            nats_url,
        } => builder.postgres_nats(PgStoreConfig::new(*shard_map.clone()), nats_url.clone()),
    };
    let app = builder.build().await.context("starting the command side")?;
    let processes = processes::start(&app);
    let sampler = [
        RelayConfig::default().name.as_str(),
        SUBMIT_CONSUMER,
        SETTLE_CONSUMER,
        NOTIFIER_CONSUMER,
        SCHEDULER_CONSUMER,
    ]
    .into_iter()
    .fold(LagSampler::new(app.store().clone()), |sampler, name| {
        sampler.consumer(name, app.checkpoints().clone())
    })
    .deadlines(processes.deadlines.clone());
    app.spawn_background("consumer-lag", |token| sampler.run(token));
    Ok(app)
}

/// The queries' own pool on the read models' database (the one holding shard 0), of
/// `query_pool_size` connections.
fn read_pool(
    config: &ServeConfig,
    shard_map: &ShardMap,
) -> anyhow::Result<deadpool_postgres::Pool> {
    let url = &shard_map.databases()[shard_map.database_of(Shard::of_id(0))];
    orderflow_projections::pg::query_pool(url, config.query_pool_size).context("the query pool")
}

/// The hot queries' shared connections on the read models' database, `query_connections`
/// of them; none when that is 0 (every query on the pool).
fn shared_reads(
    config: &ServeConfig,
    shard_map: &ShardMap,
) -> anyhow::Result<Option<orderflow_projections::pg::SharedReads>> {
    if config.query_connections == 0 {
        return Ok(None);
    }
    let url = &shard_map.databases()[shard_map.database_of(Shard::of_id(0))];
    orderflow_projections::pg::SharedReads::new(url, config.query_connections)
        .map(Some)
        .context("the shared read connections")
}

/// The durable backend, or why `role` cannot run without it.
fn durable<'a>(config: &'a ServeConfig, role: &str) -> anyhow::Result<(&'a ShardMap, &'a str)> {
    match &config.backend {
        Backend::Durable {
            shard_map,
            nats_url,
        } => Ok((shard_map, nats_url)),
        Backend::Embedded => anyhow::bail!(
            "role {role} needs database_url and nats_url: embedded, the events live in one \
             process's memory, so only --role all (or command) can run"
        ),
    }
}

async fn bind(config: &ServeConfig) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding listen {}", config.listen))?;
    eprintln!("orderflow serving gRPC on {}", listener.local_addr()?);
    Ok(listener)
}

/// Health, reflection and `more` on `listener` until `shutdown`; then health turns
/// NOT_SERVING and the RPCs in flight finish.
async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    more: impl FnOnce(Routes) -> Routes,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(orderflow_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let routes = more(Routes::new(health_service).add_service(reflection));
    let signal = async move {
        shutdown.await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
    };
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            orderflow_command_service::server::incoming(listener),
            signal,
        )
        .await
        .context("gRPC server")
}
