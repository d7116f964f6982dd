//! `orderflow serve`: every service in one process (`--role all`), or one role each
//! (`command`, `projections`, `query`) so they scale apart.
//!
//! Start-up: load and validate the layered configuration ([`crate::config`]), print it with
//! secrets hidden, say loudly when nothing is durable, bind the Prometheus listener, then
//! start the role. Each role has its own function taking the shared configuration and the
//! one shutdown token: SIGTERM or SIGINT cancels it, the gRPC server drains its in-flight
//! RPCs, the consumers finish the message in hand and save their checkpoints, the metrics
//! listener stops, and the process exits 0.

mod read;
mod roles;

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use orderflow_infra::auth::{JwtAuth, JwtSecret};
use tokio_util::sync::CancellationToken;

use crate::config::{Layers, Role, ServeConfig, ServeFlags};
use crate::metrics::MetricsServer;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub flags: ServeFlags,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config =
        ServeConfig::load(&args.flags, |name| std::env::var(name).ok()).context("configuration")?;
    eprint!("{config}");
    if config.embedded() {
        eprintln!(
            "EMBEDDED MODE: events, checkpoints, deadlines and read models live in memory; \
             nothing is durable. Give --database-url and --nats-url to keep them."
        );
    }
    let secret = jwt_secret(&config)?;

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    let recorder = crate::metrics::install()?;
    let metrics = MetricsServer::start(config.metrics_listen, recorder, shutdown.clone()).await?;
    eprintln!("metrics on http://{}/metrics", metrics.addr);

    let served = match config.role {
        Role::All => roles::all(&config, secret, shutdown.clone()).await,
        Role::Command => roles::command(&config, secret, shutdown.clone()).await,
        Role::Projections => roles::projections(&config, secret, shutdown.clone()).await,
        Role::Query => roles::query(&config, secret, shutdown.clone()).await,
    };
    // A role that failed to start must not leave the metrics listener holding the process.
    shutdown.cancel();
    metrics.stopped().await;
    served?;
    eprintln!("orderflow stopped");
    Ok(())
}

/// The configured secret, or (embedded only; the configuration refuses the other case) one
/// generated for this run and printed, so `orderflow token` can mint tokens for it.
fn jwt_secret(config: &ServeConfig) -> anyhow::Result<JwtSecret> {
    match &config.jwt_secret {
        Some(secret) => Ok(secret.clone()),
        None => {
            let generated = uuid::Uuid::new_v4().simple().to_string()
                + &uuid::Uuid::new_v4().simple().to_string();
            eprintln!("no jwt_secret: generated one for this embedded run: {generated}");
            generated.parse().context("generated secret")
        }
    }
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
    /// The same configuration file as `serve --config`; its `jwt_secret` is used.
    #[arg(long, env = "ORDERFLOW_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// HS256 secret, as `serve` takes it (flag > ORDERFLOW_JWT_SECRET > config file).
    #[arg(long)]
    pub jwt_secret: Option<String>,
}

/// `orderflow token`: mints a bearer token with the secret `serve` would use, resolved
/// through the same layers (file, environment, flag).
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let layers = Layers::load(
        args.config.as_deref(),
        |name| std::env::var(name).ok(),
        &[("jwt_secret", args.jwt_secret.clone())],
    )?;
    let secret: JwtSecret = layers
        .parse("jwt_secret", |s| s.parse::<JwtSecret>().map_err(|e| e.to_string()))?
        .context("no jwt_secret: give --jwt-secret, ORDERFLOW_JWT_SECRET or a --config file with one (an embedded serve prints the one it generated)")?;
    let role = args.role.parse().context("--role")?;
    let ttl: Duration = orderflow_infra::duration::parse_duration(&args.ttl).context("--ttl")?;
    let token = JwtAuth::new(&secret)
        .mint(role, &args.sub, ttl)
        .context("minting")?;
    println!("{token}");
    Ok(())
}
