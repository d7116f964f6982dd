//! The read side under load: how far its projectors lag the log while the city runs, and, at
//! the end, whether every order the read model serves (`GetOrder`, through gRPC) agrees with
//! the state folded from the order's own stream.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderflow_domain::order::PlacedOrder;
use orderflow_domain::Shard;
use orderflow_infra::store::EventStore;
use orderflow_proto::v1 as pb;
use orderflow_query_service::ReadApp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::api::{Api, Caller};
use super::audit::Audit;
use super::DemoError;

/// How often the lag is sampled (real time).
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// `GetOrder` calls at once when comparing.
const COMPARE_CONCURRENCY: usize = 32;
/// How long to wait (real time) for the projectors to reach the log's heads before comparing.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// Events the slowest projector was behind the log's heads, over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LagSummary {
    pub samples: usize,
    pub p50_events: u64,
    pub p99_events: u64,
    pub max_events: u64,
    /// After the drain, once the projectors had caught up (0 unless they never did).
    pub at_end_events: u64,
}

/// Samples the lag until `stop`.
pub fn sample_lag(
    read: ReadApp,
    store: Arc<dyn EventStore>,
    stop: CancellationToken,
) -> Arc<Mutex<Vec<u64>>> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let out = samples.clone();
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            match lag(&read, store.as_ref()).await {
                Ok(events) => out.lock().unwrap_or_else(|p| p.into_inner()).push(events),
                Err(e) => tracing::debug!(error = %e, "demo: cannot read the heads"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    });
    samples
}

/// The slowest projector's distance to the heads, in events (summed over shards).
async fn lag(read: &ReadApp, store: &dyn EventStore) -> Result<u64, DemoError> {
    let mut heads = Vec::new();
    for shard in Shard::all() {
        heads.push((shard, store.head(shard).await?.get()));
    }
    Ok(read
        .projections()
        .iter()
        .map(|p| {
            heads
                .iter()
                .map(|(shard, head)| head.saturating_sub(p.applied().position(*shard).get()))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0))
}

/// Waits (bounded) until every projector has applied the heads, then summarises the samples.
pub async fn lag_summary(
    read: &ReadApp,
    store: &dyn EventStore,
    samples: &Mutex<Vec<u64>>,
) -> Result<LagSummary, DemoError> {
    let limit = Instant::now() + CATCH_UP_LIMIT;
    let mut at_end = lag(read, store).await?;
    while at_end > 0 && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        at_end = lag(read, store).await?;
    }
    let mut sorted = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    sorted.sort_unstable();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    Ok(LagSummary {
        samples: sorted.len(),
        p50_events: at(0.5),
        p99_events: at(0.99),
        max_events: sorted.last().copied().unwrap_or(0),
        at_end_events: at_end,
    })
}

/// Orders whose read model differs from their stream's fold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Agreement {
    pub compared: u64,
    pub disagreeing: Vec<String>,
}

/// `GetOrder` (as ops) for every order of the log, compared field by field with its fold.
pub async fn compare(api: &Api, audit: &Audit) -> Agreement {
    let mut answers = futures::stream::iter(audit.orders.iter().map(|(no, folded)| async move {
        let got = api
            .get_order(
                Caller::Ops,
                pb::GetOrderRequest {
                    order_no: no.clone(),
                    consistency_token: String::new(),
                },
            )
            .await;
        match got {
            Ok(view) => differences(folded, &view).map(|d| format!("{no}: {d}")),
            Err(status) => Some(format!("{no}: {}", status.message())),
        }
    }))
    .buffer_unordered(COMPARE_CONCURRENCY);
    let mut out = Agreement::default();
    while let Some(answer) = answers.next().await {
        out.compared += 1;
        if let Some(d) = answer {
            out.disagreeing.push(d);
        }
    }
    out.disagreeing.sort();
    out
}

/// What differs between the fold and the view, if anything.
fn differences(folded: &PlacedOrder, view: &pb::Order) -> Option<String> {
    let status = pb::OrderStatus::from_str_name(&format!("ORDER_STATUS_{}", folded.status))
        .map_or(0, |s| s as i32);
    let mut diffs = Vec::new();
    if view.status != status {
        diffs.push(format!("status {:?} vs {}", view.status(), folded.status));
    }
    if view.late != folded.late {
        diffs.push(format!("late {} vs {}", view.late, folded.late));
    }
    let compensation = view.compensation.as_ref().map_or(0, |m| m.minor_units);
    let folded_compensation = folded.compensation.as_ref().map_or(0, |m| m.minor_units());
    if compensation != folded_compensation {
        diffs.push(format!(
            "compensation {compensation} vs {folded_compensation}"
        ));
    }
    let total = view.total.as_ref().map_or(0, |m| m.minor_units);
    if total != folded.total.minor_units() {
        diffs.push(format!("total {total} vs {}", folded.total.minor_units()));
    }
    if view.rider_id != folded.rider.map_or(0, |r| r.get()) {
        diffs.push(format!("rider {} vs {:?}", view.rider_id, folded.rider));
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}
