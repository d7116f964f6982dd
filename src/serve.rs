//! `orderflow serve`: the command side on one gRPC listener, with its process managers.
//!
//! Flags and environment are the contract of `shared/api/README.md`. Embedded (no database
//! and NATS URLs) keeps everything in memory and says so. SIGTERM or SIGINT drains in-flight
//! RPCs, stops the process managers (each saves its checkpoint) and exits 0.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use orderflow_command_service::{processes, server, CommandApp, CommandConfig};
use orderflow_domain::Shard;
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use orderflow_infra::duration::format_duration;
use orderflow_infra::store::PgStoreConfig;
use orderflow_query_service::ReadApp;

use crate::cli::redact;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC address.
    #[arg(long, env = "ORDERFLOW_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// PostgreSQL for the event store (all 32 shards); none = embedded, in memory.
    #[arg(long, env = "ORDERFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Shards spread over several databases: `0-15=postgres://…/a;16-31=postgres://…/b`.
    #[arg(long, env = "ORDERFLOW_SHARD_MAP")]
    pub shard_map: Option<String>,
    /// NATS with JetStream; none = embedded, in-process bus.
    #[arg(long, env = "ORDERFLOW_NATS_URL")]
    pub nats_url: Option<String>,
    /// Prefix of every subject and stream name.
    #[arg(long, env = "ORDERFLOW_NATS_PREFIX", default_value = "orderflow")]
    pub nats_prefix: String,
    /// HS256 secret of the bearer tokens (at least 32 bytes). Embedded mode generates one
    /// when absent and prints it.
    #[arg(long, env = "ORDERFLOW_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = CommandConfig::from_lookup(|name| std::env::var(name).ok())
        .context("business configuration")?;
    let shard_map = crate::cli::shard_map(args.database_url.as_deref(), args.shard_map.as_deref())?;
    let embedded = shard_map.is_none() && args.nats_url.is_none();
    let secret = match (&args.jwt_secret, embedded) {
        (Some(s), _) => s.parse::<JwtSecret>().context("--jwt-secret")?,
        (None, true) => {
            let generated = uuid::Uuid::new_v4().simple().to_string()
                + &uuid::Uuid::new_v4().simple().to_string();
            eprintln!("no --jwt-secret: generated one for this embedded run: {generated}");
            generated.parse::<JwtSecret>().context("generated secret")?
        }
        (None, false) => anyhow::bail!(
            "--jwt-secret (or ORDERFLOW_JWT_SECRET) is required with a database or NATS"
        ),
    };

    let mut builder = CommandApp::builder(JwtAuth::new(&secret))
        .config(config.clone())
        .nats_prefix(args.nats_prefix.clone());
    match (shard_map, &args.nats_url) {
        (Some(map), Some(nats)) => {
            builder = builder.postgres_nats(PgStoreConfig::new(map), nats.clone())
        }
        (None, None) => {
            eprintln!("EMBEDDED MODE: events, checkpoints and deadlines live in memory; nothing is durable.");
            builder = builder.embedded();
        }
        _ => anyhow::bail!(
            "give both --database-url and --nats-url (durable), or neither (embedded)"
        ),
    }
    print_config(&args, &config, embedded);

    let app = builder.build().await.context("starting the command side")?;
    processes::start(&app);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("orderflow serving gRPC on {}", listener.local_addr()?);
    // The read side (order projectors + QueryService) on the same listener.
    let read = {
        let builder =
            ReadApp::builder(app.auth().clone(), app.store().clone()).bus(app.bus().clone());
        match app.postgres() {
            Some(pg) => builder.postgres(pg.pool(Shard::of_id(0)).clone()),
            None => builder,
        }
        .start()
    };
    let (query, draining) = (read.query_service(), read.clone());
    let shutdown = async move {
        shutdown_signal().await;
        draining.begin_shutdown();
    };
    server::run_with(app, listener, shutdown, |routes| routes.add_service(query))
        .await
        .context("gRPC server")?;
    read.shutdown().await;
    eprintln!("orderflow stopped");
    Ok(())
}

/// The effective configuration, secrets hidden, so an operator sees what runs.
fn print_config(args: &ServeArgs, c: &CommandConfig, embedded: bool) {
    let url = |u: &Option<String>| u.as_deref().map_or_else(|| "(embedded)".to_owned(), redact);
    eprintln!("configuration:");
    eprintln!("  listen          {}", args.listen);
    eprintln!(
        "  database        {}",
        args.shard_map
            .as_deref()
            .map_or_else(|| url(&args.database_url), redact)
    );
    eprintln!(
        "  nats            {}  prefix {}",
        url(&args.nats_url),
        args.nats_prefix
    );
    eprintln!(
        "  jwt secret      {}",
        if args.jwt_secret.is_some() {
            "(set, hidden)"
        } else if embedded {
            "(generated)"
        } else {
            "(missing)"
        }
    );
    eprintln!(
        "  payment window  {}  reservation ttl {}  offer window {}  radius {} m  fanout {}  delivery sla {}  close after {}",
        format_duration(c.payment_window),
        format_duration(c.reservation_ttl),
        format_duration(c.offer_window),
        c.offer_radius_m,
        c.offer_fanout,
        format_duration(c.delivery_sla),
        format_duration(c.close_after),
    );
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    eprintln!("shutting down: draining in-flight commands and consumers");
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// buyer, merchant, rider, ops, admin or service.
    #[arg(long)]
    pub role: String,
    /// The subject: the buyer/merchant/rider id in decimal, or a service name.
    #[arg(long)]
    pub sub: String,
    /// How long the token is valid, e.g. 15m, 24h.
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    #[arg(long, env = "ORDERFLOW_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
}

/// `orderflow token`: mints a bearer token for grpcurl and BFF development.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let secret: JwtSecret = args.jwt_secret.parse().context("--jwt-secret")?;
    let role = args.role.parse().context("--role")?;
    let ttl: Duration = orderflow_infra::duration::parse_duration(&args.ttl).context("--ttl")?;
    let token = JwtAuth::new(&secret)
        .mint(role, &args.sub, ttl)
        .context("minting")?;
    println!("{token}");
    Ok(())
}
