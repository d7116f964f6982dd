//! `orderflow audit`: an order's or a sku's history, read from the event store, for people
//! (a timeline: when, who, what, why) or tools (`--json`).
//!
//! It reads streams directly and folds them with the domain's own `evolve`, so what it shows
//! is what the write side decides on. An embedded `serve` keeps its events in its own memory:
//! there is nothing for a separate process to audit, and the command says so.

mod entry;
mod order;
mod sku;
#[cfg(test)]
mod tests;

use anyhow::Context;
use clap::{Args, Subcommand};
use orderflow_domain::{OrderNo, SkuId, StreamId, Timestamp};
use orderflow_infra::store::{EventStore, PgEventStore, PgStoreConfig, RecordedEvent};

pub use entry::Entry;
pub use order::{order_history, OrderHistory};
pub use sku::{sku_history, SkuHistory};

#[derive(Debug, Subcommand)]
pub enum Audit {
    /// An order's history as a timeline; `--as-of` shows its state at that time.
    Order(OrderArgs),
    /// A sku's stock ledger: every event with the running added/reserved/deducted/available.
    Sku(SkuArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// PostgreSQL holding the event store (what `serve --database-url` wrote).
    #[arg(long, env = "ORDERFLOW_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Shards spread over several databases, as for `serve`.
    #[arg(long, env = "ORDERFLOW_SHARD_MAP", hide_env_values = true)]
    pub shard_map: Option<String>,
    /// JSON for tools instead of the text timeline.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    pub order_no: String,
    /// Only what happened up to this time (RFC 3339, e.g. 2026-11-22T10:15:00Z), and the
    /// order's state then.
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SkuArgs {
    pub sku: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(audit: Audit) -> anyhow::Result<()> {
    match audit {
        Audit::Order(args) => {
            let order_no = OrderNo::parse(args.order_no).context("order_no")?;
            let as_of = args.as_of.as_deref().map(parse_time).transpose()?;
            let store = connect(&args.store).await?;
            let history = order_history(&store, &order_no, as_of).await;
            store.shutdown().await;
            print(&history?, args.store.json, OrderHistory::text)
        }
        Audit::Sku(args) => {
            let sku = SkuId::parse(args.sku).context("sku")?;
            let store = connect(&args.store).await?;
            let history = sku_history(&store, &sku).await;
            store.shutdown().await;
            print(&history?, args.store.json, SkuHistory::text)
        }
    }
}

/// Prints to stdout; a reader that stopped early (`| head`) is not an error.
fn print<T: serde::Serialize>(
    history: &T,
    json: bool,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    use std::io::Write;
    let rendered = if json {
        serde_json::to_string_pretty(history)? + "\n"
    } else {
        text(history)
    };
    match std::io::stdout().lock().write_all(rendered.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// The event store of a durable deployment. Connecting applies pending migrations, as
/// every orderflow process does; audit itself only reads.
async fn connect(args: &StoreArgs) -> anyhow::Result<PgEventStore> {
    let map = crate::cli::shard_map(args.database_url.as_deref(), args.shard_map.as_deref())?
        .context(
            "audit reads the event store: give --database-url (or ORDERFLOW_DATABASE_URL). \
             An embedded serve keeps its events in its own memory, so there is nothing to audit",
        )?;
    PgEventStore::connect(PgStoreConfig::new(map))
        .await
        .context("connecting to the event store")
}

/// `2026-11-22T10:15:00Z` (or with an offset) as a domain timestamp.
pub fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(text.trim()).with_context(|| {
        format!("--as-of must be an RFC 3339 time such as 2026-11-22T10:15:00Z, got {text:?}")
    })?;
    Ok(Timestamp::from_millis(t.timestamp_millis()))
}

/// Every event of a stream, oldest first.
async fn read_all(store: &dyn EventStore, stream: &StreamId) -> anyhow::Result<Vec<RecordedEvent>> {
    const PAGE: usize = 1_000;
    let mut events = Vec::new();
    loop {
        let page = store
            .read_stream(stream, events.len() as u64 + 1, PAGE)
            .await
            .with_context(|| format!("reading {stream}"))?;
        let done = page.len() < PAGE;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}
