//! Latency histograms and the printed result of a scenario.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// Microsecond latencies, up to one minute, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    // Saturate instead of failing on a pathological outlier beyond a minute.
    h.saturating_record(us);
}

/// One line of a bench table.
#[derive(Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub concurrency: usize,
    pub operations: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Per-operation latency; `None` where the scenario measures only throughput.
    pub latency: Option<Histogram<u64>>,
}

impl ScenarioResult {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, q: f64) -> Option<f64> {
        self.latency
            .as_ref()
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "scenario": self.name,
            "concurrency": self.concurrency,
            "operations": self.operations,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "per_second": self.per_second().round(),
            "p50_ms": self.percentile_ms(0.50),
            "p99_ms": self.percentile_ms(0.99),
            "p999_ms": self.percentile_ms(0.999),
            "max_ms": self.latency.as_ref().map(|h| h.max() as f64 / 1000.0),
        })
    }
}

pub fn print_table(title: &str, results: &[ScenarioResult]) {
    println!("\n{title}");
    println!(
        "{:<34} {:>5} {:>10} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "scenario", "conc", "ops", "errors", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    for r in results {
        println!(
            "{:<34} {:>5} {:>10} {:>7} {:>10.0} {:>9} {:>9} {:>9}",
            r.name,
            r.concurrency,
            r.operations,
            r.errors,
            r.per_second(),
            ms(r.percentile_ms(0.50)),
            ms(r.percentile_ms(0.99)),
            ms(r.latency.as_ref().map(|h| h.max() as f64 / 1000.0)),
        );
    }
}
