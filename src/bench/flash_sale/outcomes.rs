//! Watching the log for the orders' outcomes: every shard is read from the start, then
//! followed, counting `OrderCreated`, `OrderFailed` and `OrderRefused` (by reason) until
//! every accepted submit has one, or a time limit passes.
//!
//! It runs only after the last submit was answered, so reading some 300,000 events never
//! competes with the submits for the two cores. That costs nothing in precision: when an
//! order was resolved is taken from the outcome event's `recorded_at` (the store's clock),
//! not from when this reader happened to see it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_domain::Shard;
use orderflow_infra::store::{EventStore, Position};

const PAGE: usize = 2_000;
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub struct Outcomes {
    pub created: u64,
    /// `OrderFailed` and `OrderRefused` by reason (`OUT_OF_STOCK`, …).
    pub failed: BTreeMap<String, u64>,
    /// Of those, refused as they were submitted (`OrderRefused`: no saga round).
    pub refused: u64,
    /// The latest `recorded_at` (Unix ms) among the outcomes seen.
    pub last_recorded_ms: Option<i64>,
    /// Every accepted submit had an outcome before the limit.
    pub complete: bool,
    /// How long reading took until complete (or the limit).
    pub read_for: Duration,
}

impl Outcomes {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn resolved(&self) -> u64 {
        self.created + self.failed_total()
    }
}

/// Reads until `expected` orders have an outcome or `limit` has passed.
pub async fn wait_for(
    store: &Arc<dyn EventStore>,
    expected: u64,
    limit: Duration,
) -> anyhow::Result<Outcomes> {
    let started = Instant::now();
    let mut cursors = vec![Position::ZERO; Shard::all().count()];
    let mut out = Outcomes::default();
    loop {
        for (shard, cursor) in Shard::all().zip(cursors.iter_mut()) {
            loop {
                let page = store.read_shard(shard, *cursor, PAGE).await?;
                let Some(last) = page.last() else { break };
                *cursor = last.position;
                for event in &page {
                    let counted = match event.event_type.as_str() {
                        "OrderCreated" => {
                            out.created += 1;
                            true
                        }
                        kind @ ("OrderFailed" | "OrderRefused") => {
                            out.refused += u64::from(kind == "OrderRefused");
                            let fields = event.payload.decode::<serde_json::Value>();
                            let reason = fields.as_ref().ok().and_then(|f| f["reason"].as_str());
                            *out.failed
                                .entry(reason.unwrap_or("?").to_owned())
                                .or_default() += 1;
                            true
                        }
                        _ => false,
                    };
                    if counted {
                        let at = event.recorded_at.as_millis();
                        out.last_recorded_ms = Some(out.last_recorded_ms.map_or(at, |m| m.max(at)));
                    }
                }
                if page.len() < PAGE {
                    break;
                }
            }
        }
        out.read_for = started.elapsed();
        if out.resolved() >= expected {
            out.complete = true;
            return Ok(out);
        }
        if out.read_for >= limit {
            return Ok(out);
        }
        tokio::time::sleep(POLL).await;
    }
}
