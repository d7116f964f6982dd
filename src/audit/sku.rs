//! A sku's stock ledger: every event with the running levels after it.

use std::fmt::Write;

use orderflow_command_service::execute::decode;
use orderflow_domain::sku::{Sku, SkuState};
use orderflow_domain::{Decider, SkuId};
use orderflow_infra::store::EventStore;
use serde::Serialize;

use super::{read_all, Entry};

#[derive(Debug, Serialize)]
pub struct SkuHistory {
    pub sku: String,
    pub events: Vec<LedgerEntry>,
}

#[derive(Debug, Serialize)]
pub struct LedgerEntry {
    #[serde(flatten)]
    pub entry: Entry,
    /// The levels after this event.
    pub added: i64,
    pub reserved: i64,
    pub deducted: i64,
    pub released: i64,
    pub available: i64,
}

pub async fn sku_history(store: &dyn EventStore, sku: &SkuId) -> anyhow::Result<SkuHistory> {
    let recorded = read_all(store, &sku.stream_id()).await?;
    let mut state = SkuState::default();
    let mut events = Vec::new();
    for (i, event) in recorded.iter().enumerate() {
        state = Sku::evolve(state, &decode::<Sku>(event)?);
        let level = state.stock();
        events.push(LedgerEntry {
            entry: Entry::new(event, &recorded[..i]),
            added: level.added,
            reserved: level.reserved,
            deducted: level.deducted,
            released: level.released,
            available: level.available,
        });
    }
    Ok(SkuHistory {
        sku: sku.to_string(),
        events,
    })
}

impl SkuHistory {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "sku {}: {} events", self.sku, self.events.len());
        let _ = writeln!(
            out,
            "{:>4}  {:<24}  {:<16} {:>7} {:>8} {:>8} {:>8} {:>9}  who / why",
            "#", "when", "what", "added", "reserved", "deducted", "released", "available"
        );
        for e in &self.events {
            let entry = &e.entry;
            let _ = writeln!(
                out,
                "{:>4}  {:<24}  {:<16} {:>7} {:>8} {:>8} {:>8} {:>9}  {}",
                entry.version,
                entry.at,
                entry.what,
                e.added,
                e.reserved,
                e.deducted,
                e.released,
                e.available,
                entry.who
            );
            let _ = writeln!(out, "      {}", entry.details);
            let _ = writeln!(out, "      why: {}", entry.why());
        }
        out
    }
}
