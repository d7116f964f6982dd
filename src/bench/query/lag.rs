//! Projection lag while events are appended, in the same run as the query load: a few
//! appenders write new orders (submitted + created, one append each) through the event store
//! for as long as the readers run, and each measures the time from the append's answer until
//! all three order projections have applied it (their `Applied` positions, what
//! read-your-writes waits on). That is the lag a reader sees: store head − applied, in time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use orderflow_domain::DomainEvent;
use orderflow_infra::store::{
    AppendRequest, CommandId, ConsistencyToken, CorrelationId, EventMetadata, EventStore,
    ExpectedVersion, NewEvent,
};
use orderflow_projections::Applied;

use super::super::report;
use super::seed::{self, Dataset};

/// Appenders, each appending its next order once the last one is applied everywhere.
pub const APPENDERS: usize = 4;
/// An append not applied by then counts as a timeout, not a latency.
const APPLY_BOUND: Duration = Duration::from_secs(10);

pub struct LagResult {
    pub appended: u64,
    pub timeouts: u64,
    /// Append answered → applied by every order projection.
    pub lag: Histogram<u64>,
}

/// Appends new orders (numbered after the data set's, so no seeded row is touched) until
/// `deadline`, each after the previous one is applied by every projection in `applied`.
pub async fn run(
    store: Arc<dyn EventStore>,
    applied: Vec<Applied>,
    dataset: Dataset,
    deadline: Instant,
) -> anyhow::Result<LagResult> {
    let tasks: Vec<_> = (0..APPENDERS as u64)
        .map(|a| {
            let (store, applied) = (store.clone(), applied.clone());
            tokio::spawn(async move {
                let mut result = LagResult {
                    appended: 0,
                    timeouts: 0,
                    lag: report::histogram(),
                };
                // Order numbers dataset.orders + a, + a + APPENDERS, …: distinct per appender.
                let mut i = dataset.orders + a;
                while Instant::now() < deadline {
                    let outcome = store.append(request(dataset, i)?).await?;
                    let answered = Instant::now();
                    result.appended += 1;
                    let token = ConsistencyToken::new(outcome.shard, outcome.last_position);
                    let mut timed_out = false;
                    for projection in &applied {
                        timed_out |= projection.wait_for(token, APPLY_BOUND).await.is_err();
                    }
                    if timed_out {
                        result.timeouts += 1;
                    } else {
                        report::record(&mut result.lag, answered.elapsed());
                    }
                    i += APPENDERS as u64;
                }
                anyhow::Ok(result)
            })
        })
        .collect();
    let mut total = LagResult {
        appended: 0,
        timeouts: 0,
        lag: report::histogram(),
    };
    for task in tasks {
        let r = task.await??;
        total.appended += r.appended;
        total.timeouts += r.timeouts;
        // Same bounds on both sides: cannot fail.
        let _ = total.lag.add(&r.lag);
    }
    Ok(total)
}

/// Order `i`'s submitted and created events as one append on a new stream.
fn request(dataset: Dataset, i: u64) -> anyhow::Result<AppendRequest> {
    let no = dataset.order_no(i);
    let events = seed::order_events(&dataset, i)
        .into_iter()
        .take(2)
        .map(|e| {
            Ok(NewEvent::new(
                e.event_type(),
                e.event_version(),
                e.encode()?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(AppendRequest {
        stream: no.stream_id(),
        expected: ExpectedVersion::NO_STREAM,
        events,
        metadata: EventMetadata {
            command_id: CommandId::parse(format!("bench-lag-{i}"))?,
            correlation_id: CorrelationId::parse(format!("bench-lag-{i}"))?,
            causation_id: None,
            actor: orderflow_domain::Actor::system("bench-lag"),
            occurred_at: orderflow_domain::Timestamp::from_millis(seed::T0 + i as i64),
        },
    })
}
