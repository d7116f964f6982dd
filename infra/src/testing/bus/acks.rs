//! Conformance checks of ack-all consumers and consumer state (start sequence, ack floor,
//! pending count), and of the ordered consumer's one-ack-per-checkpoint on top of them: the
//! ack-all must never cover a message that is not done, and a version 1 durable (one ack per
//! message) is taken over from its ack floor.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{consumer, event_message, fetch_n, order_event, payloads, Interested, WANTED};
use crate::bus::{
    encode_event, AckPolicy, CheckpointStore, ConsumerConfig, EventBus, MemoryCheckpointStore,
    OrderedConsumer, OrderedConsumerConfig, StreamKind,
};
use crate::store::{Position, RecordedEvent};

fn ack_all_consumer(bus: &dyn EventBus, name: &str) -> ConsumerConfig {
    ConsumerConfig {
        ack_policy: AckPolicy::All,
        ack_wait: Duration::from_secs(5),
        ..consumer(bus, name)
    }
}

/// JetStream's ack-all: acking the third message settles the first two, the one nak'ed for
/// later included (which is why the ordered consumer must not ack past it).
pub async fn ack_all_settles_every_message_below_it_nak_ed_ones_too(bus: &dyn EventBus) {
    for n in 1..=4 {
        bus.publish(event_message(bus, 0, n))
            .await
            .expect("publish");
    }
    let c = bus
        .consumer(ack_all_consumer(bus, "ackall"))
        .await
        .expect("consumer");
    let got = fetch_n(&*c, 4, Duration::from_secs(5)).await;
    assert_eq!(payloads(&got).len(), 4);
    got[1]
        .nak(Some(Duration::from_millis(300)))
        .await
        .expect("nak");
    got[2].ack().await.expect("ack");
    // The nak'ed one never comes back; the fourth waits for its ack wait (5 s).
    assert!(
        c.fetch(10, Duration::from_millis(900))
            .await
            .expect("fetch")
            .is_empty(),
        "nothing below an ack-all is redelivered"
    );
    let info = wait_for_info(&*c, |i| i.ack_pending == 1).await;
    assert_eq!(info.ack_policy, AckPolicy::All);
    assert_eq!(info.ack_floor_stream, got[2].stream_sequence);
    assert_eq!(info.delivered, got[3].delivery_sequence);
    got[3].ack().await.expect("ack");
    wait_for_info(&*c, |i| i.ack_pending == 0).await;
}

/// An ack-all from a delivery older than the last ack-all's is ignored, even for a higher
/// stream sequence: the ordered consumer picks its carrier accordingly.
pub async fn ack_all_from_an_older_delivery_is_ignored(bus: &dyn EventBus) {
    for n in 1..=3 {
        bus.publish(event_message(bus, 0, n))
            .await
            .expect("publish");
    }
    let c = bus
        .consumer(ack_all_consumer(bus, "olderack"))
        .await
        .expect("consumer");
    let got = fetch_n(&*c, 3, Duration::from_secs(5)).await;
    assert_eq!(payloads(&got), ["payload-1", "payload-2", "payload-3"]);
    got[0].nak(None).await.expect("nak");
    let again = fetch_n(&*c, 1, Duration::from_secs(5)).await;
    assert_eq!(payloads(&again), ["payload-1"]);
    assert_eq!(again[0].delivered, 2);
    assert!(again[0].delivery_sequence > got[2].delivery_sequence);
    again[0].ack().await.expect("ack");
    got[2].ack().await.expect("ack");
    // Give the server time to apply both acks: the second must not count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = wait_for_info(&*c, |i| i.ack_floor_stream > 0).await;
    assert_eq!(info.ack_floor_stream, got[0].stream_sequence);
    assert_eq!(info.ack_floor_delivery, again[0].delivery_sequence);
    assert_eq!(info.ack_pending, 2);
}

/// A consumer created at a start sequence delivers from there, and its state says what it
/// delivered and what is acked.
pub async fn consumer_starts_at_a_sequence_and_reports_its_state(bus: &dyn EventBus) {
    let mut sequences = Vec::new();
    for n in 1..=4 {
        let ack = bus
            .publish(event_message(bus, 0, n))
            .await
            .expect("publish");
        sequences.push(ack.sequence);
    }
    assert_eq!(
        bus.consumer_info(StreamKind::Events, "fromseq")
            .await
            .expect("info"),
        None
    );
    let config = ConsumerConfig {
        start_sequence: Some(sequences[2]),
        ..consumer(bus, "fromseq")
    };
    let c = bus.consumer(config).await.expect("consumer");
    let got = fetch_n(&*c, 4, Duration::from_secs(2)).await;
    assert_eq!(payloads(&got), ["payload-3", "payload-4"]);
    let info = c.info().await.expect("info");
    assert_eq!(info.ack_policy, AckPolicy::Explicit);
    assert_eq!((info.delivered, info.ack_pending), (2, 2));
    // Nothing delivered is acked (JetStream says 0 here, the in-process bus the start - 1).
    assert!(info.ack_floor_stream < sequences[2]);
    for d in &got {
        d.ack().await.expect("ack");
    }
    let info = wait_for_info(&*c, |i| i.ack_pending == 0).await;
    assert_eq!(info.ack_floor_stream, sequences[3]);
    assert_eq!(
        bus.consumer_info(StreamKind::Events, "fromseq")
            .await
            .expect("info"),
        Some(info)
    );
}

/// Positions 1, 3, 2 on one shard: 3 is nak'ed for its gap, 2 is applied and checkpointed
/// while 3 waits out its nak delay. An ack-all of 2's message would settle 3's too, and 3
/// would never come back.
pub async fn ordered_consumer_never_acks_past_a_message_nak_ed_for_a_gap<B>(bus: &B)
where
    B: EventBus + Clone,
{
    let bus: Arc<dyn EventBus> = Arc::new(bus.clone());
    let events: Vec<RecordedEvent> = (1..=3).map(|p| order_event(p, WANTED)).collect();
    for p in [1, 3, 2] {
        publish(&*bus, &events[p - 1], None).await;
    }
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let config = OrderedConsumerConfig {
        gap_delay: Duration::from_millis(600),
        ..fast("gap")
    };
    let handler = Interested::default();
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config)
        .await
        .expect("consumer");
    let task = tokio::spawn(consumer.run(handler.clone(), stop.clone()));
    wait_for_checkpoint(&*checkpoints, "gap", &events[0], 3).await;
    stop.cancel();
    task.await.expect("join").expect("run");
    assert_eq!(*handler.seen.lock().unwrap(), [1, 2, 3]);
    // Everything acked in the end: the floor did move.
    let info = durable_info(&*bus, "gap").await;
    assert_eq!((info.ack_policy, info.ack_pending), (AckPolicy::All, 0));
    assert_eq!(info.ack_floor_stream, 3);
}

/// A consumer that crashed leaves messages pending on the bus that its successor has not
/// received. Here the successor first gets a re-sent copy of position 1 (applied: nothing was
/// checkpointed) and position 4 (a gap); an ack-all of the copy would settle positions 2 and
/// 3, which the bus holds for the crashed run, and the shard would wait for them forever.
pub async fn ordered_consumer_after_a_crash_acks_nothing_until_the_pending_ones_return<B>(bus: &B)
where
    B: EventBus + Clone,
{
    let bus: Arc<dyn EventBus> = Arc::new(bus.clone());
    let events: Vec<RecordedEvent> = (1..=4).map(|p| order_event(p, WANTED)).collect();
    for event in &events[..3] {
        publish(&*bus, event, None).await;
    }
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let crashed = Interested::default();
    let first = OrderedConsumer::new(
        bus.clone(),
        checkpoints.clone(),
        OrderedConsumerConfig {
            ack_wait: Duration::from_secs(1),
            // Never saves before the crash.
            checkpoint_interval: Duration::from_secs(60),
            ..fast("crash")
        },
    )
    .await
    .expect("consumer");
    let task = tokio::spawn(first.run(crashed.clone(), CancellationToken::new()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while crashed.seen.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "first run never saw 1..3");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;

    publish(&*bus, &events[0], Some("resent-past-the-dedup-window")).await;
    publish(&*bus, &events[3], None).await;
    let handler = Interested::default();
    let stop = CancellationToken::new();
    let second = OrderedConsumer::new(
        bus.clone(),
        checkpoints.clone(),
        OrderedConsumerConfig {
            ack_wait: Duration::from_secs(1),
            ..fast("crash")
        },
    )
    .await
    .expect("consumer");
    let task = tokio::spawn(second.run(handler.clone(), stop.clone()));
    wait_for_checkpoint(&*checkpoints, "crash", &events[0], 4).await;
    stop.cancel();
    task.await.expect("join").expect("run");
    assert_eq!(*handler.seen.lock().unwrap(), [1, 2, 3, 4]);
    let info = durable_info(&*bus, "crash").await;
    assert_eq!(info.ack_pending, 0);
}

/// A deployment upgraded from version 1 (a durable under the bare name, acked message by
/// message): the version 2 durable starts above the old one's ack floor instead of at the
/// stream's first message, and the old one is deleted.
pub async fn ordered_consumer_takes_over_from_a_version_1_durable<B>(bus: &B)
where
    B: EventBus + Clone,
{
    let bus: Arc<dyn EventBus> = Arc::new(bus.clone());
    let events: Vec<RecordedEvent> = (1..=4).map(|p| order_event(p, WANTED)).collect();
    for event in &events {
        publish(&*bus, event, None).await;
    }
    let old = bus
        .consumer(consumer(&*bus, "upgrade"))
        .await
        .expect("v1 consumer");
    let got = fetch_n(&*old, 4, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 4);
    // Version 1 handled 1 and 2: checkpoint saved, then acked. 3 and 4 are in flight.
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    checkpoints
        .save("upgrade", &[(events[0].shard, Position::new(2))])
        .await
        .expect("save");
    got[0].ack().await.expect("ack");
    got[1].ack().await.expect("ack");
    wait_for_info(&*old, |i| i.ack_floor_stream == got[1].stream_sequence).await;
    drop(old);

    let handler = Interested::default();
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), fast("upgrade"))
        .await
        .expect("consumer");
    assert_eq!(
        bus.consumer_info(StreamKind::Events, "upgrade")
            .await
            .expect("info"),
        None,
        "the version 1 durable is deleted"
    );
    let task = tokio::spawn(consumer.run(handler.clone(), stop.clone()));
    wait_for_checkpoint(&*checkpoints, "upgrade", &events[0], 4).await;
    stop.cancel();
    task.await.expect("join").expect("run");
    assert_eq!(*handler.seen.lock().unwrap(), [3, 4]);
    let info = durable_info(&*bus, "upgrade").await;
    assert_eq!(info.ack_policy, AckPolicy::All);
    assert_eq!(info.delivered, 2, "started above the old ack floor");
    assert_eq!(info.ack_pending, 0);
}

fn fast(name: &str) -> OrderedConsumerConfig {
    OrderedConsumerConfig {
        fetch_wait: Duration::from_millis(50),
        retry_backoff: Duration::from_millis(10),
        gap_delay: Duration::from_millis(50),
        checkpoint_interval: Duration::from_millis(20),
        ..OrderedConsumerConfig::new(name)
    }
}

async fn publish(bus: &dyn EventBus, event: &RecordedEvent, msg_id: Option<&str>) {
    let mut message = encode_event(bus.subjects(), event).expect("encode");
    if let Some(id) = msg_id {
        message.msg_id = Some(id.to_owned());
    }
    bus.publish(message).await.expect("publish");
}

async fn wait_for_checkpoint(
    checkpoints: &dyn CheckpointStore,
    name: &str,
    event: &RecordedEvent,
    position: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let saved = checkpoints.load(name).await.expect("load");
        if saved.get(&event.shard) == Some(&Position::new(position)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: checkpoint never reached {position} (at {saved:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_info(
    consumer: &dyn crate::bus::DurableConsumer,
    until: impl Fn(&crate::bus::ConsumerInfo) -> bool,
) -> crate::bus::ConsumerInfo {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = consumer.info().await.expect("info");
        if until(&info) || Instant::now() >= deadline {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ordered consumer's durable, once its acks have reached the bus.
async fn durable_info(bus: &dyn EventBus, name: &str) -> crate::bus::ConsumerInfo {
    let name = OrderedConsumer::durable_name(name);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = bus
            .consumer_info(StreamKind::Events, &name)
            .await
            .expect("info")
            .expect("the durable exists");
        if info.ack_pending == 0 || Instant::now() >= deadline {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
