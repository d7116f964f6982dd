//! What the clients saw: per RPC, the latency of every call (answer received − request sent,
//! real time) and how each call ended (OK or the gRPC code).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies from 1 µs to 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Default)]
pub struct Stats {
    /// A std Mutex: held for one histogram record, never across an await.
    by_rpc: Mutex<BTreeMap<&'static str, RpcStats>>,
}

struct RpcStats {
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

/// One RPC's figures, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct RpcSummary {
    pub rpc: &'static str,
    pub calls: u64,
    pub ok: u64,
    /// Refusals and failures by gRPC code (`FailedPrecondition`, `Aborted`, …).
    pub errors: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn record(&self, rpc: &'static str, took: Duration, outcome: Result<(), tonic::Code>) {
        let mut map = self.by_rpc.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(rpc).or_insert_with(|| RpcStats {
            latency: histogram(),
            ok: 0,
            errors: BTreeMap::new(),
        });
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        entry.latency.saturating_record(micros.max(1));
        match outcome {
            Ok(()) => entry.ok += 1,
            Err(code) => *entry.errors.entry(format!("{code:?}")).or_default() += 1,
        }
    }

    pub fn summary(&self) -> Vec<RpcSummary> {
        let map = self.by_rpc.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |micros: u64| micros as f64 / 1_000.0;
        map.iter()
            .map(|(rpc, s)| RpcSummary {
                rpc,
                calls: s.latency.len(),
                ok: s.ok,
                errors: s.errors.clone(),
                p50_ms: ms(s.latency.value_at_quantile(0.50)),
                p99_ms: ms(s.latency.value_at_quantile(0.99)),
                max_ms: ms(s.latency.max()),
            })
            .collect()
    }

    /// Calls answered so far, over every RPC.
    pub fn calls(&self) -> u64 {
        let map = self.by_rpc.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(|s| s.latency.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_outcomes_and_percentiles_per_rpc() {
        let stats = Stats::default();
        for ms in 1..=100 {
            stats.record("SubmitOrder", Duration::from_millis(ms), Ok(()));
        }
        stats.record("GrabOrder", Duration::from_millis(3), Ok(()));
        stats.record(
            "GrabOrder",
            Duration::from_millis(4),
            Err(tonic::Code::Aborted),
        );
        let summary = stats.summary();
        let submit = summary.iter().find(|s| s.rpc == "SubmitOrder").unwrap();
        assert_eq!((submit.calls, submit.ok), (100, 100));
        assert!((49.0..=51.0).contains(&submit.p50_ms), "{submit:?}");
        assert!((98.0..=100.5).contains(&submit.p99_ms), "{submit:?}");
        let grab = summary.iter().find(|s| s.rpc == "GrabOrder").unwrap();
        assert_eq!(grab.errors.get("Aborted"), Some(&1));
        assert_eq!(stats.calls(), 102);
    }
}
