//! The conformance suite of the event bus port: every adapter runs it.
//!
//! Each check is a plain async function over `&dyn EventBus`; [`bus_conformance_suite!`]
//! expands to one `#[tokio::test]` per check for an adapter, given an async factory that
//! returns a fresh, isolated bus (unique prefix, so unique streams) implementing [`TestBus`].
//!
//! ```ignore
//! orderflow_infra::bus_conformance_suite!(in_process, orderflow_infra::testing::bus::in_process_bus());
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::{Actor, Role, Shard, StreamId, Timestamp};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::bus::{
    encode_event, BatchEventHandler, BusError, CheckpointStore, ConsumerConfig, Delivery, EventBus,
    EventHandler, HandlerError, InProcessBus, MemoryCheckpointStore, NatsBus, NatsBusConfig,
    OrderedConsumer, OrderedConsumerConfig, OutgoingMessage, PipelinedHandler, SecondStage,
    StreamKind, Subjects, MSG_ID_HEADER,
};
use crate::store::{CommandId, CorrelationId, EventMetadata, Position, RecordedEvent};
use crate::testing::{nats_url, unique_name};

mod acks;
pub use acks::*;

/// A bus under test, and how to clean up after it.
#[async_trait]
pub trait TestBus: EventBus {
    /// Removes what the test created on a shared server (streams). Best effort.
    async fn cleanup(&self) {}
}

impl TestBus for InProcessBus {}

#[async_trait]
impl TestBus for NatsBus {
    async fn cleanup(&self) {
        if let Err(e) = self.delete_streams().await {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Subjects under a prefix no other test run uses.
pub fn unique_subjects() -> Subjects {
    Subjects::new(unique_name("t")).expect("unique names are valid prefixes")
}

/// A fresh in-process bus.
pub async fn in_process_bus() -> InProcessBus {
    InProcessBus::new(unique_subjects())
}

/// A NATS bus on the test server with its own streams. Panics if NATS is unreachable:
/// these tests need it, and `.ci/run` starts it.
pub async fn nats_bus() -> NatsBus {
    let url = nats_url();
    NatsBus::connect(&url, unique_subjects(), NatsBusConfig::default())
        .await
        .unwrap_or_else(|e| panic!("tests need NATS with JetStream at {url}: {e}"))
}

/// Expands to one `#[tokio::test]` per conformance check, in a module named `$module`, each
/// getting a fresh bus from the async expression `$factory` (of a type implementing
/// [`TestBus`]); the bus is cleaned up when the check passes.
#[macro_export]
macro_rules! bus_conformance_suite {
    ($module:ident, $factory:expr) => {
        $crate::bus_conformance_suite!(@checks $module, $factory;
            publish_then_consume_round_trip,
            repeated_message_id_is_stored_once,
            unacked_message_is_redelivered_after_ack_wait,
            nak_with_delay_redelivers_after_the_delay,
            max_deliver_stops_redelivery,
            two_durable_consumers_each_see_everything,
            durable_consumer_resumes_after_being_recreated,
            consumer_filter_selects_one_shard,
            publish_outside_every_stream_is_refused,
            transient_subscribers_get_their_subjects_only,
            ordered_consumer_skips_unwanted_events_in_position_order,
            ack_all_settles_every_message_below_it_nak_ed_ones_too,
            ack_all_from_an_older_delivery_is_ignored,
            consumer_starts_at_a_sequence_and_reports_its_state,
            ordered_consumer_never_acks_past_a_message_nak_ed_for_a_gap,
            ordered_consumer_after_a_crash_acks_nothing_until_the_pending_ones_return,
            ordered_consumer_takes_over_from_a_version_1_durable,
        );
    };
    (@checks $module:ident, $factory:expr; $($check:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let bus = $factory.await;
                    $crate::testing::bus::$check(&bus).await;
                    $crate::testing::bus::TestBus::cleanup(&bus).await;
                }
            )*
        }
    };
}

fn event_message(bus: &dyn EventBus, shard: u8, n: u32) -> OutgoingMessage {
    let shard = Shard::new(shard).expect("test shard");
    OutgoingMessage::new(
        bus.subjects().events(shard, "sku", "StockAdded"),
        format!("payload-{n}"),
    )
    .with_msg_id(format!("msg-{shard}-{n}"))
    .with_header("Orderflow-Position", n.to_string())
}

fn consumer(bus: &dyn EventBus, name: &str) -> ConsumerConfig {
    ConsumerConfig::new(name, bus.subjects().events_all())
}

/// Fetches until `n` deliveries arrived or `within` passed.
async fn fetch_n(
    consumer: &dyn crate::bus::DurableConsumer,
    n: usize,
    within: Duration,
) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let wait = deadline.saturating_duration_since(Instant::now());
        out.extend(
            consumer
                .fetch(n - out.len(), wait.min(Duration::from_secs(1)))
                .await
                .expect("fetch"),
        );
    }
    out
}

fn payloads(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(&d.message.payload).into_owned())
        .collect()
}

async fn ack_all(deliveries: &[Delivery]) {
    for d in deliveries {
        d.ack().await.expect("ack");
    }
}

pub async fn publish_then_consume_round_trip(bus: &dyn EventBus) {
    let ack = bus
        .publish(event_message(bus, 3, 1))
        .await
        .expect("publish");
    assert!(!ack.duplicate);
    let c = bus.consumer(consumer(bus, "rt")).await.expect("consumer");
    let got = fetch_n(&*c, 1, Duration::from_secs(5)).await;
    assert_eq!(payloads(&got), ["payload-1"]);
    let d = &got[0];
    assert_eq!(d.delivered, 1);
    assert_eq!(
        d.message.subject,
        bus.subjects()
            .events(Shard::new(3).unwrap(), "sku", "StockAdded")
    );
    assert_eq!(d.message.header(MSG_ID_HEADER), Some("msg-03-1"));
    assert_eq!(d.message.header("Orderflow-Position"), Some("1"));
    d.ack().await.expect("ack");
    // Acknowledged: nothing more comes.
    assert!(c
        .fetch(10, Duration::from_millis(300))
        .await
        .expect("fetch")
        .is_empty());
}

pub async fn repeated_message_id_is_stored_once(bus: &dyn EventBus) {
    let first = bus
        .publish(event_message(bus, 1, 7))
        .await
        .expect("publish");
    let again = bus
        .publish(event_message(bus, 1, 7))
        .await
        .expect("publish again");
    assert!(!first.duplicate);
    assert!(
        again.duplicate,
        "same Nats-Msg-Id within the window is a duplicate"
    );
    bus.publish(event_message(bus, 1, 8))
        .await
        .expect("publish");
    let c = bus
        .consumer(consumer(bus, "dedup"))
        .await
        .expect("consumer");
    let got = fetch_n(&*c, 3, Duration::from_secs(2)).await;
    assert_eq!(payloads(&got), ["payload-7", "payload-8"]);
    ack_all(&got).await;
}

pub async fn unacked_message_is_redelivered_after_ack_wait(bus: &dyn EventBus) {
    bus.publish(event_message(bus, 0, 1))
        .await
        .expect("publish");
    let mut config = consumer(bus, "ackwait");
    config.ack_wait = Duration::from_millis(500);
    let c = bus.consumer(config).await.expect("consumer");
    let first = fetch_n(&*c, 1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].delivered, 1);
    let started = Instant::now();
    // Not acknowledged: it comes back, counted, after the ack wait.
    let again = fetch_n(&*c, 1, Duration::from_secs(10)).await;
    assert_eq!(payloads(&again), ["payload-1"]);
    assert_eq!(again[0].delivered, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    ack_all(&again).await;
}

pub async fn nak_with_delay_redelivers_after_the_delay(bus: &dyn EventBus) {
    bus.publish(event_message(bus, 0, 1))
        .await
        .expect("publish");
    let c = bus.consumer(consumer(bus, "nak")).await.expect("consumer");
    let first = fetch_n(&*c, 1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    let started = Instant::now();
    first[0]
        .nak(Some(Duration::from_millis(700)))
        .await
        .expect("nak");
    assert!(
        c.fetch(1, Duration::from_millis(200))
            .await
            .expect("fetch")
            .is_empty(),
        "not before the delay"
    );
    let again = fetch_n(&*c, 1, Duration::from_secs(10)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivered, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    ack_all(&again).await;
}

pub async fn max_deliver_stops_redelivery(bus: &dyn EventBus) {
    bus.publish(event_message(bus, 0, 1))
        .await
        .expect("publish");
    bus.publish(event_message(bus, 0, 2))
        .await
        .expect("publish");
    let mut config = consumer(bus, "maxdeliver");
    config.max_deliver = Some(2);
    let c = bus.consumer(config).await.expect("consumer");
    let mut deliveries_of_1 = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        for d in c
            .fetch(10, Duration::from_millis(300))
            .await
            .expect("fetch")
        {
            if d.message.payload.as_ref() == b"payload-1" {
                deliveries_of_1 += 1;
                d.nak(None).await.expect("nak");
            } else {
                d.ack().await.expect("ack");
            }
        }
        if deliveries_of_1 >= 2 {
            break;
        }
    }
    assert_eq!(deliveries_of_1, 2);
    assert!(c
        .fetch(10, Duration::from_millis(800))
        .await
        .expect("fetch")
        .is_empty());
}

pub async fn two_durable_consumers_each_see_everything(bus: &dyn EventBus) {
    for n in 1..=5 {
        bus.publish(event_message(bus, 2, n))
            .await
            .expect("publish");
    }
    let a = bus.consumer(consumer(bus, "a")).await.expect("consumer a");
    let b = bus.consumer(consumer(bus, "b")).await.expect("consumer b");
    let got_a = fetch_n(&*a, 5, Duration::from_secs(5)).await;
    let got_b = fetch_n(&*b, 5, Duration::from_secs(5)).await;
    let want: Vec<String> = (1..=5).map(|n| format!("payload-{n}")).collect();
    assert_eq!(payloads(&got_a), want);
    assert_eq!(payloads(&got_b), want);
    ack_all(&got_a).await;
    ack_all(&got_b).await;
}

pub async fn durable_consumer_resumes_after_being_recreated(bus: &dyn EventBus) {
    for n in 1..=5 {
        bus.publish(event_message(bus, 2, n))
            .await
            .expect("publish");
    }
    {
        let c = bus
            .consumer(consumer(bus, "resume"))
            .await
            .expect("consumer");
        let got = fetch_n(&*c, 3, Duration::from_secs(5)).await;
        assert_eq!(payloads(&got), ["payload-1", "payload-2", "payload-3"]);
        ack_all(&got).await;
    }
    // Acks are sent asynchronously on NATS; give them a moment to land before rebinding.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = bus
        .consumer(consumer(bus, "resume"))
        .await
        .expect("consumer again");
    let got = fetch_n(&*c, 2, Duration::from_secs(5)).await;
    assert_eq!(payloads(&got), ["payload-4", "payload-5"]);
    assert!(got.iter().all(|d| d.delivered == 1));
    ack_all(&got).await;
    bus.delete_consumer(StreamKind::Events, "resume")
        .await
        .expect("delete consumer");
    assert!(matches!(
        bus.delete_consumer(StreamKind::Events, "resume").await,
        Err(BusError::ConsumerNotFound(_))
    ));
}

pub async fn consumer_filter_selects_one_shard(bus: &dyn EventBus) {
    for n in 1..=3 {
        bus.publish(event_message(bus, 4, n))
            .await
            .expect("publish");
        bus.publish(event_message(bus, 5, n + 10))
            .await
            .expect("publish");
    }
    let shard5 = bus.subjects().events_shard(Shard::new(5).unwrap());
    let c = bus
        .consumer(ConsumerConfig::new("shard5", shard5))
        .await
        .expect("consumer");
    let got = fetch_n(&*c, 4, Duration::from_secs(2)).await;
    assert_eq!(payloads(&got), ["payload-11", "payload-12", "payload-13"]);
    ack_all(&got).await;
}

pub async fn publish_outside_every_stream_is_refused(bus: &dyn EventBus) {
    let stray = format!("{}.nowhere.x", bus.subjects().prefix());
    let result = bus.publish(OutgoingMessage::new(stray, "x")).await;
    assert!(result.is_err(), "a durable publish nobody stores must fail");
    let bad = bus.publish(OutgoingMessage::new("a.*.b", "x")).await;
    assert!(bad.is_err());
}

pub async fn transient_subscribers_get_their_subjects_only(bus: &dyn EventBus) {
    let s = bus.subjects().clone();
    let mut sub = bus.subscribe(&s.rider_offers(7)).await.expect("subscribe");
    bus.publish_transient(OutgoingMessage::new(s.rider_offers(8), "not-yours"))
        .await
        .expect("publish");
    bus.publish_transient(OutgoingMessage::new(s.rider_offers(7), "offer").with_header("X", "1"))
        .await
        .expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an offer in time")
        .expect("subscription open");
    assert_eq!(got.payload.as_ref(), b"offer");
    assert_eq!(got.header("X"), Some("1"));
}

/// The one event type the interested handlers below want.
const WANTED: &str = "OrderPaid";

/// Records the positions it was handed; wants `order` / [`WANTED`] only.
#[derive(Clone, Default)]
struct Interested {
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Interested {
    fn record(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.event_type != WANTED {
            return Err(format!("handed an unwanted {}", event.event_type).into());
        }
        self.seen.lock().unwrap().push(event.position.get());
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Interested {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        category == "order" && event_type == WANTED
    }

    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.record(event)
    }
}

/// The same, taking whole batches.
#[derive(Clone, Default)]
struct InterestedInBatches(Interested);

#[async_trait]
impl BatchEventHandler for InterestedInBatches {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        EventHandler::wants(&self.0, category, event_type)
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>> {
        events.iter().map(|e| self.0.record(e)).collect()
    }
}

/// The same, in two stages.
#[derive(Clone, Default)]
struct InterestedInStages(Interested);

#[async_trait]
impl PipelinedHandler for InterestedInStages {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        EventHandler::wants(&self.0, category, event_type)
    }

    async fn start(&mut self, events: Arc<[RecordedEvent]>) -> SecondStage {
        let interested = self.0.clone();
        Box::pin(async move { events.iter().map(|e| interested.record(e)).collect() })
    }
}

fn order_event(position: u64, event_type: &str) -> RecordedEvent {
    let stream = StreamId::parse("order-2026112200000000107").expect("stream");
    RecordedEvent {
        shard: stream.shard(),
        position: Position::new(position),
        stream,
        stream_version: position,
        event_id: uuid::Uuid::new_v4(),
        event_type: event_type.to_owned(),
        event_version: 1,
        payload: serde_json::json!({ "n": position }).into(),
        metadata: EventMetadata {
            command_id: CommandId::parse(format!("cmd-{position}")).expect("id"),
            correlation_id: CorrelationId::parse("corr").expect("id"),
            causation_id: None,
            actor: Actor::new(Role::Buyer, "42"),
            occurred_at: Timestamp::from_millis(1_763_800_000_000),
        },
        recorded_at: Timestamp::from_millis(1_763_800_000_001),
    }
}

/// An ordered consumer that wants one event type still sees every position of the shard,
/// with `run`, `run_batched` and `run_pipelined`: events it does not want move its checkpoint without
/// being decoded (their bodies are not JSON here: decoding one would dead-letter it), and a
/// wanted event that arrives before a missing unwanted predecessor waits for it. Messages
/// without the routing headers (older publishers) are decoded and then judged.
pub async fn ordered_consumer_skips_unwanted_events_in_position_order<B>(bus: &B)
where
    B: EventBus + Clone,
{
    let bus: Arc<dyn EventBus> = Arc::new(bus.clone());
    let unwanted = "OrderSubmitted";
    let kinds = [
        unwanted, WANTED, unwanted, WANTED, WANTED, unwanted, unwanted,
    ];
    let events: Vec<RecordedEvent> = (1..=7)
        .map(|p| order_event(p, kinds[p as usize - 1]))
        .collect();
    let shard = events[0].shard;
    let message = |p: usize| {
        let mut m = encode_event(bus.subjects(), &events[p - 1]).expect("encode");
        match p {
            // Older publishers: no routing headers, a real body.
            5 | 6 => m.headers.retain(|k, _| !k.starts_with("Orderflow-")),
            // Unwanted, with the relay's headers: the body must never be read.
            1 | 3 | 7 => m.payload = "not json".into(),
            _ => {}
        }
        m
    };
    // 2 arrives late (a retried publish): 3 and 4 must wait for it.
    for p in [1, 3, 4, 2, 5, 6, 7] {
        bus.publish(message(p)).await.expect("publish");
    }

    let config = |name: &str| OrderedConsumerConfig {
        fetch_wait: Duration::from_millis(100),
        retry_backoff: Duration::from_millis(10),
        gap_delay: Duration::from_millis(50),
        max_attempts: 2,
        checkpoint_interval: Duration::from_millis(50),
        ..OrderedConsumerConfig::new(name)
    };
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let stop = CancellationToken::new();
    let one = Interested::default();
    let batched = InterestedInBatches::default();
    let staged = InterestedInStages::default();
    let consumer = |name: &'static str| {
        let (bus, checkpoints) = (bus.clone(), checkpoints.clone());
        async move {
            OrderedConsumer::new(bus, checkpoints, config(name))
                .await
                .expect("consumer")
        }
    };
    let single = tokio::spawn(consumer("wants-one").await.run(one.clone(), stop.clone()));
    let batch = tokio::spawn(
        consumer("wants-batch")
            .await
            .run_batched(batched.clone(), stop.clone()),
    );
    let pipe = tokio::spawn(
        consumer("wants-pipe")
            .await
            .run_pipelined(staged.clone(), stop.clone()),
    );
    let names = ["wants-one", "wants-batch", "wants-pipe"];
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in names {
        while checkpoints.load(name).await.expect("load").get(&shard) != Some(&Position::new(7)) {
            assert!(
                Instant::now() < deadline,
                "{name}: checkpoint never reached 7"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.cancel();
    single.await.expect("join").expect("run");
    batch.await.expect("join").expect("run_batched");
    pipe.await.expect("join").expect("run_pipelined");
    assert_eq!(*one.seen.lock().unwrap(), [2, 4, 5], "run");
    assert_eq!(*batched.0.seen.lock().unwrap(), [2, 4, 5], "run_batched");
    assert_eq!(*staged.0.seen.lock().unwrap(), [2, 4, 5], "run_pipelined");
    for name in names {
        let dlq = bus
            .consumer(ConsumerConfig::new(
                format!("{name}-dlq"),
                bus.subjects().dead_letter(name),
            ))
            .await
            .expect("dlq consumer");
        let letters = dlq
            .fetch(10, Duration::from_millis(200))
            .await
            .expect("fetch");
        assert!(letters.is_empty(), "{name}: nothing dead-lettered");
    }
}
