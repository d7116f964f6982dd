//! The conformance suite of the event store port: every adapter runs it.
//!
//! Each case is a `pub async fn(store: Arc<dyn EventStore>)` that starts from an empty store;
//! [`store_conformance_suite!`](crate::store_conformance_suite) expands to one
//! `#[tokio::test]` per case for an adapter's factory:
//!
//! ```ignore
//! orderflow_infra::store_conformance_suite!(memory, async {
//!     std::sync::Arc::new(MemoryEventStore::new()) as std::sync::Arc<dyn EventStore>
//! });
//! ```
//!
//! A factory may install a trigger that makes the database refuse events of type
//! [`POISON_EVENT_TYPE`]; the concurrent-subscriber case then also sees real rollbacks
//! (the in-memory store accepts them, and the case holds either way).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::{Actor, Shard, StreamId, Timestamp};
use serde_json::json;

use crate::store::{
    AppendOutcome, AppendRequest, CommandId, CorrelationId, EventMetadata, EventStore,
    ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StoreLimits,
};

pub use super::store_claims::{
    a_claim_in_another_shard_is_refused, a_claim_points_to_its_first_stream,
    a_refused_append_records_no_claim, racing_claimants_write_once,
};
pub use super::store_group::{
    a_group_is_written_all_or_nothing, a_group_refused_by_the_database_leaves_nothing,
    a_retried_group_is_answered_and_a_partly_stored_one_refused, invalid_groups_are_refused,
    racing_copies_of_a_group_write_once,
};

/// Events of this type are refused by the trigger some factories install.
pub const POISON_EVENT_TYPE: &str = "conformance.poison";

/// Expands to one multi-threaded `#[tokio::test]` per conformance case, in a module named
/// `$module`, each getting a fresh store from the async expression `$factory`
/// (of type `Arc<dyn EventStore>`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($module:ident, $factory:expr) => {
        $crate::store_conformance_suite!(@cases $module, $factory;
            racing_appenders_one_winner_per_version,
            repeated_command_returns_the_first_outcome,
            a_repeat_the_version_check_lets_through_writes_nothing,
            concurrent_duplicates_append_once,
            same_command_on_another_stream_is_another_command,
            pipelined_chained_appends_keep_their_order,
            positions_and_versions_are_gap_free,
            read_stream_from_a_version,
            head_follows_commits,
            expected_version_any_and_no_stream,
            bad_input_is_refused_and_nothing_written,
            event_ids_are_unique,
            subscriber_never_skips_nor_repeats_under_concurrent_writers,
            catch_up_then_live,
            a_group_is_written_all_or_nothing,
            a_retried_group_is_answered_and_a_partly_stored_one_refused,
            invalid_groups_are_refused,
            racing_copies_of_a_group_write_once,
            a_group_refused_by_the_database_leaves_nothing,
            a_claim_points_to_its_first_stream,
            a_refused_append_records_no_claim,
            a_claim_in_another_shard_is_refused,
            racing_claimants_write_once,
        );
    };
    (@cases $module:ident, $factory:expr; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store: ::std::sync::Arc<dyn $crate::store::EventStore> = $factory.await;
                    $crate::testing::store::$case(store).await;
                }
            )*
        }
    };
}

// ---- helpers -------------------------------------------------------------------------

/// An order stream in the given shard (its id ends with the shard's two digits).
pub fn stream_in(shard: u8, name: &str) -> StreamId {
    StreamId::parse(format!("order-{name}x{shard:02}")).expect("test stream id")
}

pub fn metadata(command: &str) -> EventMetadata {
    EventMetadata {
        command_id: CommandId::parse(command).expect("test command id"),
        correlation_id: CorrelationId::parse(format!("corr-{command}")).expect("correlation"),
        causation_id: None,
        actor: Actor::system("conformance"),
        occurred_at: Timestamp::from_millis(1_700_000_000_000),
    }
}

pub fn event(n: u64) -> NewEvent {
    NewEvent::new("conformance.happened", 1, json!({ "n": n }))
}

pub fn request(stream: &StreamId, expected: ExpectedVersion, events: usize) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events: (0..events as u64).map(event).collect(),
        metadata: metadata(&CommandId::random().to_string()),
    }
}

fn v(n: u64) -> ExpectedVersion {
    ExpectedVersion::Exact(n)
}

async fn whole_shard(store: &dyn EventStore, shard: Shard) -> Vec<RecordedEvent> {
    store
        .read_shard(shard, Position::ZERO, 100_000)
        .await
        .expect("read shard")
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.get()).collect()
}

/// Reads `n` events from a subscription, failing the test if they take too long.
async fn take(sub: &mut crate::store::Subscription, n: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled after {} of {n}", out.len()));
        out.push(
            next.expect("subscription ended")
                .expect("subscription error"),
        );
    }
    out
}

/// True if the subscription yields nothing for a short while.
async fn stays_quiet(sub: &mut crate::store::Subscription) -> bool {
    tokio::time::timeout(Duration::from_millis(300), sub.next())
        .await
        .is_err()
}

// ---- concurrency ---------------------------------------------------------------------

/// 32 tasks race to append versions 1..=5 of one stream: exactly one wins each version, and
/// every loser learns the version it lost to.
pub async fn racing_appenders_one_winner_per_version(store: Arc<dyn EventStore>) {
    const TASKS: usize = 32;
    const VERSIONS: u64 = 5;
    let stream = stream_in(3, "race");
    let tasks = (0..TASKS).map(|_| {
        let store = Arc::clone(&store);
        let stream = stream.clone();
        tokio::spawn(async move {
            let mut won = Vec::new();
            for version in 0..VERSIONS {
                match store.append(request(&stream, v(version), 1)).await {
                    Ok(outcome) => {
                        assert_eq!(outcome.first_version, version + 1);
                        won.push(version + 1);
                    }
                    Err(StoreError::Conflict {
                        expected, actual, ..
                    }) => {
                        assert_eq!(expected, version);
                        assert!(actual > version, "lost to version {actual}");
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            won
        })
    });
    let mut winners: BTreeMap<u64, usize> = BTreeMap::new();
    for task in futures::future::join_all(tasks).await {
        for version in task.expect("task") {
            *winners.entry(version).or_default() += 1;
        }
    }
    let expected: BTreeMap<u64, usize> = (1..=VERSIONS).map(|v| (v, 1)).collect();
    assert_eq!(winners, expected, "exactly one winner per version");
    let events = store.read_stream(&stream, 1, 100).await.expect("read");
    assert_eq!(events.len(), VERSIONS as usize);
}

// ---- idempotency ---------------------------------------------------------------------

/// The same command id on the same stream returns the first outcome, writes nothing, and
/// wins over a now-stale expected version.
pub async fn repeated_command_returns_the_first_outcome(store: Arc<dyn EventStore>) {
    let stream = stream_in(5, "idem");
    let mut first = request(&stream, v(0), 2);
    first.metadata = metadata("cmd-1");
    let outcome = store.append(first.clone()).await.expect("first append");
    assert!(!outcome.deduplicated);

    let again = store.append(first.clone()).await.expect("repeat");
    assert_eq!(
        again,
        AppendOutcome {
            deduplicated: true,
            ..outcome
        }
    );

    store
        .append(request(&stream, v(2), 1))
        .await
        .expect("next command");
    // Expected version 0 is stale now, but the command was already done: same answer.
    let stale = store.append(first.clone()).await.expect("stale repeat");
    assert_eq!(stale.first_position, outcome.first_position);
    assert!(stale.deduplicated);

    // Even with different events (a retried command that re-decided): nothing written.
    let mut redecided = request(&stream, v(0), 1);
    redecided.metadata = metadata("cmd-1");
    assert!(
        store
            .append(redecided)
            .await
            .expect("redecided")
            .deduplicated
    );

    let events = store.read_stream(&stream, 1, 100).await.expect("read");
    assert_eq!(events.len(), 3);
    assert_eq!(
        store.head(stream.shard()).await.expect("head"),
        Position::new(3)
    );
}

/// A repeat that the concurrency check alone would let through (expected `Any`) is a repeat
/// all the same, also sent together with new appends (one batch, on PostgreSQL: decided
/// before the stored command is known, then again once the index has found it): the first
/// outcome, nothing written for it, the others written once.
pub async fn a_repeat_the_version_check_lets_through_writes_nothing(store: Arc<dyn EventStore>) {
    let stream = stream_in(9, "anyrepeat");
    let mut first = request(&stream, ExpectedVersion::Any, 1);
    first.metadata = metadata("cmd-any");
    let outcome = store.append(first.clone()).await.expect("first append");
    let again = store.append(first.clone()).await.expect("repeat");
    assert_eq!(
        again,
        AppendOutcome {
            deduplicated: true,
            ..outcome
        }
    );

    let mut batch = vec![first.clone()];
    batch.extend((0..4).map(|i| {
        request(
            &stream_in(9, &format!("fresh{i}")),
            ExpectedVersion::NO_STREAM,
            1,
        )
    }));
    let outcomes: Vec<AppendOutcome> = store
        .append_many(batch)
        .await
        .into_iter()
        .map(|r| r.expect("ok"))
        .collect();
    assert!(outcomes[0].deduplicated);
    assert_eq!(outcomes[0].first_position, outcome.first_position);
    assert!(outcomes[1..].iter().all(|o| !o.deduplicated));
    assert_eq!(store.read_stream(&stream, 1, 10).await.unwrap().len(), 1);
    let shard = whole_shard(store.as_ref(), stream.shard()).await;
    let positions: Vec<u64> = shard.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, vec![1, 2, 3, 4, 5]);
}

/// Eight copies of one command sent at once: one append, seven deduplicated, one answer.
pub async fn concurrent_duplicates_append_once(store: Arc<dyn EventStore>) {
    let stream = stream_in(6, "dups");
    let mut req = request(&stream, v(0), 1);
    req.metadata = metadata("cmd-dup");
    let outcomes = store.append_many(vec![req; 8]).await;
    let outcomes: Vec<AppendOutcome> = outcomes.into_iter().map(|r| r.expect("ok")).collect();
    assert_eq!(outcomes.iter().filter(|o| !o.deduplicated).count(), 1);
    assert!(outcomes
        .iter()
        .all(|o| o.first_position == outcomes[0].first_position));
    assert_eq!(store.read_stream(&stream, 1, 10).await.unwrap().len(), 1);
}

/// A command id is scoped to its stream.
pub async fn same_command_on_another_stream_is_another_command(store: Arc<dyn EventStore>) {
    let a = stream_in(7, "a");
    let b = stream_in(7, "b");
    let mut ra = request(&a, v(0), 1);
    ra.metadata = metadata("shared-cmd");
    let mut rb = request(&b, v(0), 1);
    rb.metadata = metadata("shared-cmd");
    let oa = store.append(ra).await.expect("a");
    let ob = store.append(rb).await.expect("b");
    assert!(!ob.deduplicated);
    assert_eq!(oa.first_position, Position::new(1));
    assert_eq!(ob.first_position, Position::new(2));
}

// ---- ordering ------------------------------------------------------------------------

/// One writer submits 50 appends with chained expected versions without waiting: all
/// succeed, in order.
pub async fn pipelined_chained_appends_keep_their_order(store: Arc<dyn EventStore>) {
    let stream = stream_in(9, "pipe");
    let requests = (0..50).map(|i| request(&stream, v(i), 1)).collect();
    let outcomes = store.append_many(requests).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap_or_else(|e| panic!("append {i}: {e}"));
        assert_eq!(outcome.first_version, i as u64 + 1);
        assert_eq!(outcome.first_position, Position::new(i as u64 + 1));
    }
}

/// Outcomes carry the right positions and versions; the shard's log is 1..=n in order; each
/// stream reads back in version order.
pub async fn positions_and_versions_are_gap_free(store: Arc<dyn EventStore>) {
    let shard = Shard::new(11).unwrap();
    let a = stream_in(11, "a");
    let b = stream_in(11, "b");
    let o1 = store.append(request(&a, v(0), 3)).await.expect("a1");
    let o2 = store.append(request(&b, v(0), 2)).await.expect("b1");
    let o3 = store.append(request(&a, v(3), 1)).await.expect("a2");
    assert_eq!((o1.first_position.get(), o1.last_position.get()), (1, 3));
    assert_eq!((o1.first_version, o1.last_version), (1, 3));
    assert_eq!((o2.first_position.get(), o2.last_position.get()), (4, 5));
    assert_eq!((o2.first_version, o2.last_version), (1, 2));
    assert_eq!((o3.first_position.get(), o3.last_position.get()), (6, 6));
    assert_eq!((o3.first_version, o3.last_version, o3.shard), (4, 4, shard));

    let log = whole_shard(&*store, shard).await;
    assert_eq!(positions(&log), (1..=6).collect::<Vec<_>>());
    let a_events = store.read_stream(&a, 1, 100).await.expect("read a");
    let versions: Vec<u64> = a_events.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    assert_eq!(positions(&a_events), vec![1, 2, 3, 6]);
    let first = &a_events[0];
    assert_eq!(first.event_type, "conformance.happened");
    assert_eq!(first.payload, json!({ "n": 0 }).into());
    assert_eq!(first.metadata.actor, Actor::system("conformance"));

    let page = store
        .read_shard(shard, Position::new(2), 3)
        .await
        .expect("page");
    assert_eq!(positions(&page), vec![3, 4, 5]);
    assert!(store
        .read_shard(shard, Position::new(6), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn read_stream_from_a_version(store: Arc<dyn EventStore>) {
    let s = stream_in(12, "from");
    store.append(request(&s, v(0), 5)).await.expect("append");
    let tail = store.read_stream(&s, 3, 100).await.expect("read");
    let versions: Vec<u64> = tail.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, vec![3, 4, 5]);
    let limited = store.read_stream(&s, 2, 2).await.expect("read");
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].stream_version, 2);
    assert!(store.read_stream(&s, 6, 10).await.unwrap().is_empty());
    let missing = stream_in(12, "never");
    assert!(store.read_stream(&missing, 1, 10).await.unwrap().is_empty());
}

pub async fn head_follows_commits(store: Arc<dyn EventStore>) {
    let shard = Shard::new(13).unwrap();
    assert_eq!(store.head(shard).await.unwrap(), Position::ZERO);
    let s = stream_in(13, "head");
    let o = store.append(request(&s, v(0), 4)).await.unwrap();
    assert_eq!(store.head(shard).await.unwrap(), o.last_position);
    assert_eq!(
        store.head(Shard::new(14).unwrap()).await.unwrap(),
        Position::ZERO
    );
}

pub async fn expected_version_any_and_no_stream(store: Arc<dyn EventStore>) {
    let s = stream_in(15, "any");
    store
        .append(request(&s, ExpectedVersion::Any, 1))
        .await
        .expect("any on new stream");
    store
        .append(request(&s, ExpectedVersion::Any, 1))
        .await
        .expect("any on existing stream");
    match store
        .append(request(&s, ExpectedVersion::NO_STREAM, 1))
        .await
    {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 2,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
}

// ---- bad input -----------------------------------------------------------------------

/// Every bad input of issue 2 is a typed error, and nothing is written.
pub async fn bad_input_is_refused_and_nothing_written(store: Arc<dyn EventStore>) {
    use orderflow_domain::stream::InvalidStreamId;
    assert_eq!(StreamId::parse(""), Err(InvalidStreamId::Empty));
    assert!(matches!(
        StreamId::parse(format!("sku-{}", "x".repeat(300))),
        Err(InvalidStreamId::TooLong(_))
    ));
    // An order stream whose id does not end with a shard 00..=31.
    assert!(matches!(
        StreamId::parse("order-12345699"),
        Err(InvalidStreamId::ShardMismatch(_))
    ));
    assert!(matches!(
        ExpectedVersion::try_from(-2),
        Err(StoreError::InvalidExpectedVersion(-2))
    ));
    assert!(CommandId::parse("").is_err());

    let s = stream_in(17, "bad");
    let limits = StoreLimits::default();
    let empty = request(&s, v(0), 0);
    assert!(matches!(
        store.append(empty).await,
        Err(StoreError::EmptyAppend)
    ));
    let too_many = request(&s, v(0), limits.max_events_per_append + 1);
    assert!(matches!(
        store.append(too_many).await,
        Err(StoreError::TooManyEvents { .. })
    ));
    let mut too_big = request(&s, v(0), 2);
    too_big.events[1].payload = json!({ "blob": "x".repeat(limits.max_payload_bytes) }).into();
    assert!(matches!(
        store.append(too_big).await,
        Err(StoreError::PayloadTooLarge { index: 1, .. })
    ));
    let mut no_type = request(&s, v(0), 1);
    no_type.events[0].event_type = String::new();
    assert!(matches!(
        store.append(no_type).await,
        Err(StoreError::InvalidEventType { index: 0 })
    ));
    for bad_version in [0, u16::MAX] {
        let mut bad = request(&s, v(0), 1);
        bad.events[0].event_version = bad_version;
        assert!(matches!(
            store.append(bad).await,
            Err(StoreError::InvalidEventVersion { index: 0 })
        ));
    }

    for shard in Shard::all() {
        assert_eq!(store.head(shard).await.unwrap(), Position::ZERO, "{shard}");
    }
    assert!(store.read_stream(&s, 1, 10).await.unwrap().is_empty());
}

/// An event id is stored once: a repeat within an append or of a stored event is refused
/// and nothing of that append is written.
pub async fn event_ids_are_unique(store: Arc<dyn EventStore>) {
    let s = stream_in(18, "ids");
    let mut twice = request(&s, v(0), 2);
    twice.events[1].event_id = twice.events[0].event_id;
    assert!(matches!(
        store.append(twice).await,
        Err(StoreError::DuplicateEventId(_))
    ));
    let stored = request(&s, v(0), 1);
    let stored_id = stored.events[0].event_id;
    store.append(stored).await.expect("append");
    let other = stream_in(18, "other");
    let mut reuse = request(&other, v(0), 2);
    reuse.events[1].event_id = stored_id;
    match store.append(reuse).await {
        Err(StoreError::DuplicateEventId(id)) => assert_eq!(id, stored_id),
        other => panic!("expected DuplicateEventId, got {other:?}"),
    }
    assert!(store.read_stream(&other, 1, 10).await.unwrap().is_empty());
    assert_eq!(
        store.head(s.shard()).await.unwrap(),
        Position::new(1),
        "nothing of the refused appends was written"
    );
}

// ---- subscriptions -------------------------------------------------------------------

/// Eight writers append concurrently to many streams of one shard, with conflicts (and,
/// where the factory installed the poison trigger, real rollbacks) mixed in. A subscriber
/// opened before and one opened midway each see exactly positions 1..=n, in order, once,
/// and exactly the events whose appends succeeded.
pub async fn subscriber_never_skips_nor_repeats_under_concurrent_writers(
    store: Arc<dyn EventStore>,
) {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 40;
    let shard = Shard::new(21).unwrap();
    let mut early = store.subscribe(shard, Position::ZERO);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut written = Vec::new();
                let mut versions = [0u64; 4];
                for i in 0..APPENDS {
                    let slot = (i % 4) as usize;
                    let stream = stream_in(21, &format!("w{w}s{slot}"));
                    // Every 7th append expects a wrong version, every 5th is poison.
                    let expected = if i % 7 == 3 {
                        v(versions[slot] + 9)
                    } else {
                        v(versions[slot])
                    };
                    let events = 1 + (i % 3) as usize;
                    let mut req = request(&stream, expected, events);
                    if i % 5 == 2 {
                        req.events[0].event_type = POISON_EVENT_TYPE.to_owned();
                    }
                    let ids: Vec<_> = req.events.iter().map(|e| e.event_id).collect();
                    match store.append(req).await {
                        Ok(o) => {
                            versions[slot] = o.last_version;
                            written.extend(ids);
                        }
                        Err(StoreError::Conflict { .. }) => assert_eq!(i % 7, 3),
                        Err(e) => assert_eq!(i % 5, 2, "unexpected error: {e}"),
                    }
                }
                written
            })
        })
        .collect();
    // Open the second subscription while the writers are still going.
    let early_part = take(&mut early, 20).await;
    let mut late = store.subscribe(shard, Position::ZERO);
    let mut written = HashSet::new();
    for writer in futures::future::join_all(writers).await {
        written.extend(writer.expect("writer"));
    }
    let head = store.head(shard).await.expect("head").get();
    assert_eq!(
        head as usize,
        written.len(),
        "head counts every committed event"
    );
    let mut early_rest = take(&mut early, written.len() - early_part.len()).await;
    let mut early_all = early_part;
    early_all.append(&mut early_rest);
    let late_all = take(&mut late, written.len()).await;
    for (seen, sub) in [(early_all, &mut early), (late_all, &mut late)] {
        assert_eq!(positions(&seen), (1..=head).collect::<Vec<_>>());
        let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, written, "exactly the committed events");
        assert!(stays_quiet(sub).await, "nothing after the last event");
    }
}

/// Events stored before the subscription and appended after it arrive in one sequence,
/// with nothing missed or repeated at the switch; a subscription from a position starts
/// right after it.
pub async fn catch_up_then_live(store: Arc<dyn EventStore>) {
    let shard = Shard::new(25).unwrap();
    let s = stream_in(25, "live");
    store.append(request(&s, v(0), 10)).await.expect("before");
    let mut from_start = store.subscribe(shard, Position::ZERO);
    let mut from_four = store.subscribe(shard, Position::new(4));
    let first = take(&mut from_start, 5).await;
    assert_eq!(positions(&first), vec![1, 2, 3, 4, 5]);
    for i in 0..10 {
        store
            .append(request(&s, v(10 + i), 1))
            .await
            .expect("after");
    }
    let rest = take(&mut from_start, 15).await;
    assert_eq!(positions(&rest), (6..=20).collect::<Vec<_>>());
    let from4 = take(&mut from_four, 16).await;
    assert_eq!(positions(&from4), (5..=20).collect::<Vec<_>>());
    assert!(stays_quiet(&mut from_start).await);
    store.append(request(&s, v(20), 2)).await.expect("later");
    assert_eq!(positions(&take(&mut from_start, 2).await), vec![21, 22]);
    let mut at_head = store.subscribe(shard, Position::new(22));
    assert!(stays_quiet(&mut at_head).await);
}
