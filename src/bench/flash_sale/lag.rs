//! Projection lag during the flash sale (issue 4 §6: p99 ≤ 200 ms), measured while the
//! submits run, in two ways:
//!
//! - **time**, per submit: every `SubmitOrder` answer carries the consistency token of the
//!   event it appended (`v1.{shard}.{position}`). The client hands the token and the instant
//!   of the answer to the [`Probe`]; the probe records how long after the answer each
//!   projection's applied position (`Applied`, what read-your-writes and long-polls wait on)
//!   covered it, and when *every* projection had. Applied positions are checked every
//!   [`TICK`], so a figure is late by at most one tick (never early).
//! - **events**, sampled every [`SAMPLE`]: each shard's head minus each projection's applied
//!   position, summed over the shards: the committed events a projection has not applied yet.
//!
//! The probe is one task doing a few hundred comparisons per tick and one head query per
//! sample (on a connection of its own on PostgreSQL, not the app's pool).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use orderflow_domain::Shard;
use orderflow_infra::store::{ConsistencyToken, EventStore, Position};
use orderflow_projections::Applied;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::report;

/// How often applied positions are compared with the pending tokens.
pub const TICK: Duration = Duration::from_millis(2);
/// How often the backlog in events is sampled.
pub const SAMPLE: Duration = Duration::from_millis(25);
/// After the load, how long the probe waits for the last tokens to be applied.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Where the shard heads come from: the store (embedded: a memory read), or one query on a
/// connection of the probe's own (PostgreSQL: the app's pool is what is being measured).
pub enum Heads {
    Store(Arc<dyn EventStore>),
    Postgres(tokio_postgres::Client),
}

impl Heads {
    async fn read(&self) -> anyhow::Result<Vec<Position>> {
        let mut heads = vec![Position::ZERO; Shard::all().count()];
        match self {
            Heads::Store(store) => {
                for shard in Shard::all() {
                    heads[usize::from(shard.index())] = store.head(shard).await?;
                }
            }
            Heads::Postgres(client) => {
                for row in client
                    .query("SELECT shard, position FROM shard_heads", &[])
                    .await?
                {
                    let (shard, position): (i16, i64) = (row.get(0), row.get(1));
                    if let (Ok(i), Ok(p)) = (usize::try_from(shard), u64::try_from(position)) {
                        if let Some(head) = heads.get_mut(i) {
                            *head = Position::new(p);
                        }
                    }
                }
            }
        }
        Ok(heads)
    }
}

/// The clients' end: one per client, cheap to clone. Dropping every clone ends the load.
#[derive(Clone)]
pub struct Probe {
    tx: mpsc::UnboundedSender<(ConsistencyToken, Instant)>,
}

impl Probe {
    /// A submit was answered just now with `token` (ignored if it is not a token).
    pub fn answered(&self, token: &str) {
        if let Ok(token) = ConsistencyToken::parse(token) {
            // The probe outlives the clients; a send can only fail once it gave up.
            let _ = self.tx.send((token, Instant::now()));
        }
    }
}

/// One projection's lag.
pub struct ViewLag {
    pub name: &'static str,
    /// Answer → applied, per submit.
    pub time: Histogram<u64>,
    /// Committed events not yet applied, per sample.
    pub events: Histogram<u64>,
}

impl ViewLag {
    fn new(name: &'static str) -> Self {
        ViewLag {
            name,
            time: report::histogram(),
            events: count_histogram(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let ms = |q: f64| self.time.value_at_quantile(q) as f64 / 1000.0;
        let ev = |q: f64| self.events.value_at_quantile(q);
        json!({
            "name": self.name,
            "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": self.time.max() as f64 / 1000.0,
            "p50_events": ev(0.5), "p99_events": ev(0.99), "max_events": self.events.max(),
        })
    }
}

pub struct LagResult {
    /// Submits whose token the probe followed.
    pub tracked: u64,
    /// Of those, not applied by every projection within the drain limit after the load.
    pub not_applied: u64,
    /// Every projection: a submit counts when the last one has applied it; a sample counts
    /// the backlog of the projection furthest behind.
    pub all: ViewLag,
    pub views: Vec<ViewLag>,
    pub samples: u64,
    drain_limit: Duration,
}

impl LagResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "tracked": self.tracked,
            "not_applied": self.not_applied,
            "samples": self.samples,
            "tick_ms": TICK.as_secs_f64() * 1000.0,
            "sample_ms": SAMPLE.as_secs_f64() * 1000.0,
            "all": self.all.to_json(),
            "projections": self.views.iter().map(ViewLag::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        println!(
            "\nprojection lag during the load: submit answered → applied (ms, checked every \
             {} ms), and committed events not applied (sampled every {} ms, {} samples)",
            TICK.as_millis(),
            SAMPLE.as_millis(),
            self.samples
        );
        println!(
            "{:<18} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
            "projection", "p50 ms", "p99 ms", "max ms", "p50 ev", "p99 ev", "max ev"
        );
        for view in std::iter::once(&self.all).chain(&self.views) {
            let ms = |q: f64| view.time.value_at_quantile(q) as f64 / 1000.0;
            let ev = |q: f64| view.events.value_at_quantile(q);
            println!(
                "{:<18} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>10} {:>10}",
                view.name,
                ms(0.5),
                ms(0.99),
                view.time.max() as f64 / 1000.0,
                ev(0.5),
                ev(0.99),
                view.events.max()
            );
        }
        println!(
            "{} submits followed, {} not applied everywhere within {} s of the last answer",
            self.tracked,
            self.not_applied,
            self.drain_limit.as_secs()
        );
    }
}

fn count_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("static histogram bounds are valid")
}

/// Starts the probe over the projections' applied positions. Returns the clients' end and
/// the task that yields the result once every [`Probe`] is dropped and the tokens are
/// applied (or `drain_limit` has passed since).
pub fn start(
    projections: Vec<(&'static str, Applied)>,
    heads: Heads,
    drain_limit: Duration,
) -> (Probe, JoinHandle<anyhow::Result<LagResult>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(follow(projections, heads, rx, drain_limit));
    (Probe { tx }, task)
}

/// Tokens not yet covered, one min-heap of (position, answered) per shard.
type Pending = Vec<BinaryHeap<Reverse<(Position, Instant)>>>;

async fn follow(
    projections: Vec<(&'static str, Applied)>,
    heads: Heads,
    mut rx: mpsc::UnboundedReceiver<(ConsistencyToken, Instant)>,
    drain_limit: Duration,
) -> anyhow::Result<LagResult> {
    let shards = Shard::all().count();
    let mut result = LagResult {
        tracked: 0,
        not_applied: 0,
        all: ViewLag::new("(all)"),
        views: projections.iter().map(|(n, _)| ViewLag::new(n)).collect(),
        samples: 0,
        drain_limit,
    };
    // One pending set per projection, and one for "all of them" (the last index).
    let mut pending: Vec<Pending> = (0..=projections.len())
        .map(|_| (0..shards).map(|_| BinaryHeap::new()).collect())
        .collect();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_sample = Instant::now();
    let mut load_ended: Option<Instant> = None;
    loop {
        tick.tick().await;
        // Take every token handed over since the last tick.
        loop {
            match rx.try_recv() {
                Ok((token, at)) => {
                    result.tracked += 1;
                    let shard = usize::from(token.shard.index());
                    for set in &mut pending {
                        set[shard].push(Reverse((token.position, at)));
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    load_ended.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        let now = Instant::now();
        let mut left = 0;
        for shard in Shard::all() {
            let s = usize::from(shard.index());
            let mut slowest = None::<Position>;
            for (v, (_, applied)) in projections.iter().enumerate() {
                let at = applied.position(shard);
                slowest = Some(slowest.map_or(at, |p| p.min(at)));
                covered(&mut pending[v][s], at, now, &mut result.views[v].time);
            }
            let all = projections.len();
            if let Some(at) = slowest {
                covered(&mut pending[all][s], at, now, &mut result.all.time);
            }
            left += pending[all][s].len();
        }
        match load_ended {
            None if now >= next_sample => {
                next_sample = now + SAMPLE;
                let heads = heads.read().await?;
                result.samples += 1;
                let mut furthest = 0;
                for (v, (_, applied)) in projections.iter().enumerate() {
                    let behind: u64 = Shard::all()
                        .map(|s| {
                            let head = heads[usize::from(s.index())].get();
                            head.saturating_sub(applied.position(s).get())
                        })
                        .sum();
                    furthest = furthest.max(behind);
                    result.views[v].events.saturating_record(behind);
                }
                result.all.events.saturating_record(furthest);
            }
            None => {}
            Some(ended) if left == 0 || ended.elapsed() >= drain_limit => {
                result.not_applied = left as u64;
                return Ok(result);
            }
            Some(_) => {}
        }
    }
}

/// Pops the tokens `applied` covers and records how long after their answer that was.
fn covered(
    heap: &mut BinaryHeap<Reverse<(Position, Instant)>>,
    applied: Position,
    now: Instant,
    into: &mut Histogram<u64>,
) {
    while let Some(Reverse((position, answered))) = heap.peek().copied() {
        if position > applied {
            break;
        }
        heap.pop();
        report::record(into, now.saturating_duration_since(answered));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_infra::store::MemoryEventStore;

    fn shard(n: u8) -> Shard {
        Shard::new(n).unwrap()
    }

    /// A token counts for a projection once its applied position covers it, and for "all"
    /// once the slowest one does; a token never applied is reported as such.
    #[tokio::test]
    async fn a_token_counts_once_every_projection_covers_it() {
        let (fast, slow) = (Applied::new(), Applied::new());
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let (probe, task) = start(
            vec![("fast", fast.clone()), ("slow", slow.clone())],
            Heads::Store(store),
            Duration::from_millis(200),
        );
        probe.answered("v1.3.10");
        probe.answered("v1.4.1");
        probe.answered("not a token");
        fast.advance(shard(3), Position::new(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
        slow.advance(shard(3), Position::new(12));
        fast.advance(shard(4), Position::new(1));
        drop(probe);
        let result = task.await.unwrap().unwrap();
        assert_eq!(result.tracked, 2);
        // Shard 4's token was never applied by "slow".
        assert_eq!(result.not_applied, 1);
        assert_eq!(result.views[0].time.len(), 2);
        assert_eq!(result.views[1].time.len(), 1);
        assert_eq!(result.all.time.len(), 1);
        // "slow" and "all" covered the first token no earlier than 100 ms after its answer.
        assert!(result.all.time.max() >= 100_000);
        assert!(result.views[1].time.max() >= 100_000);
    }
}
