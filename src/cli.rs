//! The command line: subcommands, their flags and environment variables.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use orderflow::redact::redact;

#[derive(Debug, Parser)]
#[command(
    name = "orderflow",
    version,
    about = "Event-sourced CQRS order backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Applies the event store's schema migrations to every database of the shard map.
    Migrate(MigrateArgs),
    /// Serves orderflow over gRPC: every role in one process, or one role (`--role`).
    #[command(after_help = SERVE_HELP)]
    Serve(crate::serve::ServeArgs),
    /// Mints a bearer token with the configured secret, for grpcurl and development.
    Token(crate::serve::TokenArgs),
    /// An order's or a sku's history from the event store (who did what, when, and why).
    #[command(subcommand)]
    Audit(crate::audit::Audit),
    /// A simulated city driven through the gRPC API in fast time, with a report at the end.
    Demo(orderflow::demo::DemoArgs),
    /// Rebuilds a projection from position 0 beside the live one, then swaps it in.
    Replay(crate::replay::ReplayArgs),
    /// Measures throughput and latency.
    #[command(subcommand)]
    Bench(crate::bench::Bench),
}

/// What `serve --help` adds after the flags: the keys without a flag, and the layering.
const SERVE_HELP: &str = "\
Business timings (environment; in the --config file as payment_window = \"15m\" etc.):
  ORDERFLOW_PAYMENT_WINDOW 15m, ORDERFLOW_RESERVATION_TTL 20m, ORDERFLOW_OFFER_WINDOW 30s,
  ORDERFLOW_OFFER_RADIUS_M 3000, ORDERFLOW_OFFER_FANOUT 5, ORDERFLOW_DELIVERY_SLA 30m,
  ORDERFLOW_CLOSE_AFTER 10m
Layers: defaults < --config file < ORDERFLOW_* environment < flags. See docs/operations.md.";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL holding the event store (all 32 shards), unless --shard-map is given.
    #[arg(long, env = "ORDERFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Shards spread over several databases: `0-15=postgres://…/a;16-31=postgres://…/b`.
    #[arg(long, env = "ORDERFLOW_SHARD_MAP")]
    pub shard_map: Option<String>,
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let map = shard_map(args.database_url.as_deref(), args.shard_map.as_deref())?
        .context("migrate needs --database-url or --shard-map (or ORDERFLOW_DATABASE_URL)")?;
    for url in map.databases() {
        let applied = orderflow_infra::migrate::run_url(url)
            .await
            .with_context(|| format!("migrating {}", redact(url)))?;
        if applied.is_empty() {
            println!("{}: up to date", redact(url));
        } else {
            println!("{}: applied {:?}", redact(url), applied);
        }
    }
    Ok(())
}

/// The shard map from the flags: an explicit map wins, else every shard in one database,
/// else none (embedded).
pub fn shard_map(
    database_url: Option<&str>,
    shard_map: Option<&str>,
) -> anyhow::Result<Option<orderflow_infra::store::ShardMap>> {
    use orderflow_infra::store::ShardMap;
    Ok(match (shard_map, database_url) {
        (Some(map), _) => Some(ShardMap::parse(map).context("--shard-map")?),
        (None, Some(url)) => Some(ShardMap::single(url)),
        (None, None) => None,
    })
}
