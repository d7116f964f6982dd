//! `orderflow`: the one binary. Thin on purpose: it parses the command line, builds what the
//! libraries offer, and runs it. Everything it calls is tested through the libraries.
#![forbid(unsafe_code)]

mod audit;
mod bench;
mod cli;
mod config;
mod metrics;
mod replay;
mod serve;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the services allocate many small buffers per event
/// and free them on other threads, where glibc spent a quarter of the process's CPU
/// (flash-sale bench, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Migrate(args) => cli::migrate(args).await,
        cli::Command::Bench(bench) => bench::run(bench).await,
        cli::Command::Serve(args) => serve::run(args).await,
        cli::Command::Token(args) => serve::token(args),
        cli::Command::Audit(audit) => audit::run(audit).await,
        cli::Command::Demo(args) => orderflow::demo::run(args).await,
        cli::Command::Replay(args) => replay::run(args).await,
    }
}

/// Logs go to stderr so that command output (bench tables, `--json`) stays clean on stdout.
/// `RUST_LOG` overrides the default level.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,orderflow=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
