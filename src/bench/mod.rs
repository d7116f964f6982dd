//! `orderflow bench …`: throughput and latency percentiles, printed as a table (or `--json`).
//!
//! Figures come from here, never from timed assertions in tests. Every run is bounded in
//! time and count, and every Postgres run uses a fresh database that it drops at the end.

mod append;
mod ceiling;
mod cpu;
mod flash_sale;
mod query;
mod report;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Event store appends: single-event commands from 1, 16 and 256 concurrent appenders on
    /// distinct streams, 64 appenders on 4 hot streams, and the raw batched-INSERT ceiling.
    Append(append::AppendArgs),
    /// Issue 3 §9: one SKU, many buyers at once, through gRPC into the real command app
    /// (saga, single writer) with the projectors beside it; submits/s, latency, time to
    /// resolve, oversell, projection lag during the load (issue 4 §6), and the ceiling.
    FlashSale(flash_sale::FlashSaleArgs),
    /// Issue 4 §6: GetOrder and ListBuyerOrders from many gRPC clients on a seeded read
    /// model of --orders orders; queries/s, p50/p99/p999 per RPC, and the raw-query ceiling.
    Query(query::QueryArgs),
}

pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Append(args) => append::run(args).await,
        Bench::FlashSale(args) => flash_sale::run(args).await,
        Bench::Query(args) => query::run(args).await,
    }
}

mod database;
