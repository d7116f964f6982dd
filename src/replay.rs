//! `orderflow replay <projection>`: rebuilds one PostgreSQL projection from position 0 into
//! shadow tables while the live service keeps answering, then swaps them in atomically
//! (`orderflow_projections::replay`, docs/read-side.md "Rebuild").

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use orderflow_domain::Shard;
use orderflow_infra::store::{PgEventStore, PgStoreConfig};
use orderflow_projections::replay::{self, Replay, ReplayConfig, CATALOG};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The projection to rebuild (`--list` names them).
    #[arg(required_unless_present = "list")]
    pub projection: Option<String>,
    /// Lists the projections that can be rebuilt.
    #[arg(long)]
    pub list: bool,
    /// PostgreSQL holding the event store and the read models (what `serve --database-url`
    /// wrote).
    #[arg(long, env = "ORDERFLOW_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Shards spread over several databases, as for `serve`; the read models live in shard
    /// 0's database.
    #[arg(long, env = "ORDERFLOW_SHARD_MAP", hide_env_values = true)]
    pub shard_map: Option<String>,
    /// Events read and applied per transaction.
    #[arg(long, default_value_t = ReplayConfig::default().batch)]
    pub batch: usize,
    /// Shards rebuilt at once.
    #[arg(long, default_value_t = ReplayConfig::default().concurrency)]
    pub concurrency: usize,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if args.list {
        for target in CATALOG {
            println!("{}\t{}", target.name, target.tables.join(", "));
        }
        return Ok(());
    }
    let name = args.projection.as_deref().unwrap_or_default();
    let target = replay::find(name).with_context(|| {
        let names: Vec<&str> = CATALOG.iter().map(|t| t.name).collect();
        format!("unknown projection {name:?}; one of: {}", names.join(", "))
    })?;
    let map = crate::cli::shard_map(args.database_url.as_deref(), args.shard_map.as_deref())?
        .context(
            "replay rebuilds PostgreSQL read models: give --database-url (or \
             ORDERFLOW_DATABASE_URL). An embedded serve keeps its models in its own memory",
        )?;
    let read_url = map.databases()[map.database_of(Shard::of_id(0))].clone();
    let live: tokio_postgres::Config = read_url.parse().context("--database-url")?;
    let store = Arc::new(
        PgEventStore::connect(PgStoreConfig::new(map))
            .await
            .context("connecting to the event store")?,
    );
    let config = ReplayConfig {
        batch: args.batch.max(1),
        concurrency: args.concurrency.max(1),
        ..ReplayConfig::default()
    };
    let outcome = Replay::run(target, live, store.clone(), config).await;
    store.shutdown().await;
    let report = outcome.with_context(|| format!("rebuilding {name}"))?;
    println!(
        "{name}: rebuilt from position 0 and swapped in: {} events in {:.2}s, {:.0} events/s",
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    );
    Ok(())
}
