//! `orderflow demo`: a simulated city, driven through the real gRPC API in fast time.
//!
//! Starts the command app `serve` builds (embedded by default, or PostgreSQL + NATS), seeds a
//! city through the API (merchants list and stock dishes, riders go online), and drives a
//! simulated hour: buyers order, pay, cancel or walk away; riders move, report where they are,
//! receive offers on their subjects, grab, pick up and deliver, sometimes late; ops compensate
//! late orders; a flash sale hits one dish. Then the clock runs on until every order settled,
//! the whole log is read back, and the report checks the invariants (no oversell, the ledger
//! identity, every order settled as its scenario expects, counts add up).
//!
//! One module per concept: [`city`] (the map and its seeding), [`plan`] (who orders what and
//! when), [`buyers`], [`riders`], [`merchants`], [`ops`], [`clock`] (simulated time and the
//! driver), [`api`] and [`stats`] (the timed gRPC client), [`watch`] (the log followed live),
//! [`audit`] (the log read back), [`report`], [`chart`], [`progress`], [`system`] (the app).

pub mod api;
pub mod audit;
pub mod buyers;
pub mod chart;
pub mod city;
pub mod clock;
pub mod merchants;
pub mod ops;
pub mod plan;
pub mod progress;
pub mod readside;
pub mod report;
pub mod riders;
pub mod rng;
pub mod sim;
pub mod stats;
pub mod system;
pub mod watch;

mod run;

use std::path::PathBuf;

use clap::Args;

pub use report::Report;
pub use run::{run_demo, DemoOptions};
pub use system::Backend;

/// Why the demo could not run (a failed check is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the app: {0}")]
    App(#[from] orderflow_command_service::AppError),
    #[error("{rpc}: {status}")]
    Rpc {
        rpc: &'static str,
        status: tonic::Status,
    },
    #[error("event store: {0}")]
    Store(#[from] orderflow_infra::store::StoreError),
    #[error("bus: {0}")]
    Bus(#[from] orderflow_infra::bus::BusError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("configuration: {0}")]
    Config(#[from] orderflow_command_service::config::ConfigError),
    #[error("{0}")]
    Setup(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("run's database or streams: {0}")]
    Scratch(#[from] crate::scratch::ScratchError),
}

impl DemoError {
    pub fn rpc(rpc: &'static str, status: tonic::Status) -> Self {
        DemoError::Rpc { rpc, status }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// PostgreSQL server: the run gets a fresh database on it, dropped at the end (unless
    /// --keep). Give it with --nats-url; without both, everything runs in memory.
    #[arg(long, env = "ORDERFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// NATS with JetStream: the run gets a fresh prefix under --nats-prefix.
    #[arg(long, env = "ORDERFLOW_NATS_URL")]
    pub nats_url: Option<String>,
    #[arg(long, env = "ORDERFLOW_NATS_PREFIX", default_value = "orderflow")]
    pub nats_prefix: String,
    /// Merchants, each with 6–10 dishes.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub merchants: u64,
    /// Riders online, moving and reporting where they are.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub riders: u64,
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub buyers: u64,
    /// Orders of the hour, besides the flash sale's.
    #[arg(long, default_value_t = 6_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub orders: u64,
    /// Simulated minutes of orders (the clock then runs on until every order settled).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=24 * 60))]
    pub minutes: u32,
    /// Units of the flash-sale dish (0: no flash sale).
    #[arg(long, default_value_t = 300)]
    pub flash_units: u64,
    /// Submits for the flash-sale dish, within 30 simulated seconds.
    #[arg(long, default_value_t = 3_000)]
    pub flash_submits: u64,
    /// Seed of the city and the plan.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated seconds between two location reports of a moving rider.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub report_every: u64,
    /// At most this many simulated seconds per real second (the clock also waits while too
    /// many calls are unanswered). Default 60 embedded, 20 on PostgreSQL + NATS, whose process
    /// managers answer in hundreds of milliseconds: much faster and offer windows (30 simulated
    /// seconds) close before riders' grabs arrive.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Where the chart (SVG) goes.
    #[arg(long, default_value = "demo-orders.svg")]
    pub chart: PathBuf,
    /// Also write the report's numbers as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Keep the run's database and NATS streams (durable runs) to look at afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// `orderflow demo`: runs, prints the report, writes the chart (and JSON); fails when a
/// check failed.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;

    let backend = match (args.database_url, args.nats_url) {
        (None, None) => Backend::Embedded,
        (Some(database_url), Some(nats_url)) => Backend::Durable {
            database_url,
            nats_url,
            nats_prefix: args.nats_prefix,
        },
        _ => anyhow::bail!(
            "give both --database-url and --nats-url (durable), or neither (embedded)"
        ),
    };
    let durable = matches!(backend, Backend::Durable { .. });
    if !durable {
        eprintln!(
            "EMBEDDED MODE: events, checkpoints and deadlines live in memory; nothing is durable."
        );
    }
    let options = DemoOptions {
        backend,
        merchants: args.merchants as usize,
        riders: args.riders as usize,
        buyers: args.buyers as usize,
        orders: args.orders as usize,
        minutes: args.minutes,
        flash_units: args.flash_units as i64,
        flash_submits: args.flash_submits as usize,
        seed: args.seed,
        report_every: std::time::Duration::from_secs(args.report_every),
        speed: args.speed.unwrap_or(if durable { 20.0 } else { 60.0 }),
        keep: args.keep,
        config: orderflow_command_service::CommandConfig::from_lookup(|n| std::env::var(n).ok())?,
    };
    let progress = progress::Progress::new(!args.quiet && std::io::stdout().is_terminal());
    let report = run_demo(&options, &progress).await?;
    let title = format!(
        "orderflow demo: orders per simulated minute by final status ({} orders, seed {})",
        report.orders, report.seed
    );
    std::fs::write(&args.chart, chart::svg(&title, &report.per_minute))?;
    let chart_path = args.chart.display().to_string();
    report.print(Some(&chart_path));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("report as JSON: {}", path.display());
    }
    if !report.passed() {
        anyhow::bail!("a check failed: see the report above");
    }
    Ok(())
}
