//! The ordered consumer: duplicates skipped, gaps waited out, failing events dead-lettered
//! and redriven, checkpoint saved on shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::Shard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Recorder;
use crate::bus::envelope::tests::sample_event;
use crate::bus::{
    dlq_headers, encode_event, redrive, CheckpointStore, ConsumerConfig, EventBus, EventHandler,
    HandlerError, MemoryCheckpointStore, OrderedConsumer, OrderedConsumerConfig, StreamKind,
};
use crate::store::{Position, RecordedEvent};
use crate::testing::bus::{in_process_bus, nats_bus, TestBus};

const STREAM: &str = "order-2026112200000000107";

fn events(n: u64) -> Vec<RecordedEvent> {
    (1..=n).map(|p| sample_event(STREAM, p)).collect()
}

fn fast_config(name: &str) -> OrderedConsumerConfig {
    OrderedConsumerConfig {
        fetch_wait: Duration::from_millis(100),
        retry_backoff: Duration::from_millis(10),
        gap_delay: Duration::from_millis(50),
        max_attempts: 3,
        checkpoint_interval: Duration::from_millis(50),
        ..OrderedConsumerConfig::new(name)
    }
}

async fn publish(bus: &dyn EventBus, event: &RecordedEvent) {
    let m = encode_event(bus.subjects(), event).expect("encode");
    bus.publish(m).await.expect("publish");
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn positions(r: &Recorder) -> Vec<u64> {
    let shard = sample_event(STREAM, 1).shard;
    r.seen
        .lock()
        .unwrap()
        .get(&shard)
        .map(|v| v.iter().map(|p| p.get()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn duplicates_are_skipped_and_gaps_wait_for_the_missing_event() {
    let bus = Arc::new(in_process_bus().await);
    let evs = events(4);
    // A retried publish landed late (3 before 2) and a re-send past the dedup window (2 again,
    // under another message id so the bus cannot drop it).
    for i in [0, 2, 1, 3] {
        publish(&*bus, &evs[i]).await;
    }
    let mut again = encode_event(bus.subjects(), &evs[1]).unwrap();
    again.msg_id = Some("resent".into());
    bus.publish(again).await.unwrap();

    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let recorder = Recorder::default();
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), fast_config("p"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run(recorder.clone(), stop.clone()));
    wait_until("4 events", Duration::from_secs(5), || recorder.total() >= 4).await;
    // Give a stray duplicate a chance to show up before stopping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(positions(&recorder), [1, 2, 3, 4]);
    let saved = checkpoints.load("p").await.unwrap();
    assert_eq!(saved.get(&evs[0].shard), Some(&Position::new(4)));
}

#[tokio::test]
async fn shutdown_saves_the_checkpoint_and_a_restart_continues() {
    let bus = Arc::new(in_process_bus().await);
    let evs = events(6);
    for e in &evs[..3] {
        publish(&*bus, e).await;
    }
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let recorder = Recorder::default();
    let stop = CancellationToken::new();
    let mut config = fast_config("p");
    config.checkpoint_interval = Duration::from_secs(60);
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config.clone())
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run(recorder.clone(), stop.clone()));
    wait_until("3 events", Duration::from_secs(5), || recorder.total() >= 3).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let shard = evs[0].shard;
    assert_eq!(
        checkpoints.load("p").await.unwrap().get(&shard),
        Some(&Position::new(3))
    );

    for e in &evs[3..] {
        publish(&*bus, e).await;
    }
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config)
        .await
        .unwrap();
    assert_eq!(consumer.last_applied(shard), Position::new(3));
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(recorder.clone(), stop.clone()));
    wait_until("6 events", Duration::from_secs(5), || recorder.total() >= 6).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(positions(&recorder), [1, 2, 3, 4, 5, 6]);
}

/// Fails on one position while `failing` is set; records what it handled.
#[derive(Clone)]
struct Flaky {
    failing: Arc<AtomicBool>,
    poison: Position,
    handled: Arc<Mutex<Vec<(u64, bool)>>>,
}

#[async_trait]
impl EventHandler for Flaky {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.position == self.poison && self.failing.load(Ordering::SeqCst) {
            return Err(format!("cannot apply position {}", event.position).into());
        }
        self.handled
            .lock()
            .unwrap()
            .push((event.position.get(), self.failing.load(Ordering::SeqCst)));
        Ok(())
    }
}

async fn dead_letter_then_redrive<B: TestBus + Clone>(bus: B) {
    let bus: Arc<B> = Arc::new(bus);
    let dyn_bus: Arc<dyn EventBus> = bus.clone();
    let evs = events(3);
    for e in &evs {
        publish(&*bus, e).await;
    }
    let flaky = Flaky {
        failing: Arc::new(AtomicBool::new(true)),
        poison: Position::new(2),
        handled: Arc::new(Mutex::new(Vec::new())),
    };
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(dyn_bus.clone(), checkpoints.clone(), fast_config("proj"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run(flaky.clone(), stop.clone()));
    // A bystander consumer: must not handle the redriven copy a second time.
    let bystander = Recorder::default();
    let bystander_stop = CancellationToken::new();
    let other = OrderedConsumer::new(dyn_bus.clone(), checkpoints.clone(), fast_config("other"))
        .await
        .unwrap();
    let other_task = tokio::spawn(other.run(bystander.clone(), bystander_stop.clone()));

    let handled = flaky.handled.clone();
    wait_until("1 and 3 handled", Duration::from_secs(10), || {
        handled.lock().unwrap().len() >= 2
    })
    .await;
    assert_eq!(*handled.lock().unwrap(), [(1, true), (3, true)]);

    // The dead letter holds the event, the error and where it came from.
    let dlq = dyn_bus
        .consumer(ConsumerConfig::new(
            "inspect",
            dyn_bus.subjects().dead_letter("proj"),
        ))
        .await
        .unwrap();
    let letters = dlq.fetch(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0].message;
    assert_eq!(
        letter.header(dlq_headers::ERROR),
        Some("cannot apply position 2")
    );
    assert_eq!(letter.header(dlq_headers::CONSUMER), Some("proj"));
    let original_subject = dyn_bus
        .subjects()
        .events(evs[1].shard, "order", "OrderSubmitted");
    assert_eq!(
        letter.header(dlq_headers::SUBJECT),
        Some(original_subject.as_str())
    );
    assert_eq!(crate::bus::decode_event(letter).unwrap(), evs[1]);
    letters[0].ack().await.unwrap();

    // Fixed: redrive, and the consumer handles it (out of order, by design).
    flaky.failing.store(false, Ordering::SeqCst);
    assert_eq!(redrive(&*dyn_bus, "proj", 100).await.unwrap(), 1);
    wait_until("redriven event handled", Duration::from_secs(10), || {
        handled.lock().unwrap().len() >= 3
    })
    .await;
    assert_eq!(*handled.lock().unwrap(), [(1, true), (3, true), (2, false)]);
    // Nothing left to redrive.
    assert_eq!(redrive(&*dyn_bus, "proj", 100).await.unwrap(), 0);

    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    bystander_stop.cancel();
    task.await.unwrap().unwrap();
    other_task.await.unwrap().unwrap();
    assert_eq!(
        positions(&bystander),
        [1, 2, 3],
        "the bystander saw each event once"
    );
    let shard: Shard = evs[0].shard;
    assert_eq!(
        checkpoints.load("proj").await.unwrap().get(&shard),
        Some(&Position::new(3))
    );
    // Everything acked on the bus, the redriven copy too (by each consumer's last ack-all).
    for name in ["proj", "other"] {
        let durable = OrderedConsumer::durable_name(name);
        let mut pending = u64::MAX;
        for _ in 0..50 {
            let info = dyn_bus.consumer_info(StreamKind::Events, &durable).await;
            pending = info.unwrap().expect("durable").ack_pending;
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pending, 0, "{durable}: messages left unacked");
    }
    let _ = dyn_bus
        .delete_consumer(StreamKind::DeadLetters, "inspect")
        .await;
    bus.cleanup().await;
}

#[tokio::test]
async fn failing_handler_dead_letters_then_redrive_in_process() {
    dead_letter_then_redrive(in_process_bus().await).await;
}

#[tokio::test]
async fn failing_handler_dead_letters_then_redrive_nats() {
    dead_letter_then_redrive(nats_bus().await).await;
}
