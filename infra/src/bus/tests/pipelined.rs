//! The pipelined consumer: a batch's second stage overlaps the next batch's first, positions
//! move only once a batch's second stage is done, a crash with two batches in flight
//! redelivers both, and failures are retried through both stages then dead-lettered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::bus::envelope::tests::sample_event;
use crate::bus::{
    encode_event, CheckpointStore, ConsumerConfig, EventBus, MemoryCheckpointStore,
    OrderedConsumer, OrderedConsumerConfig, PipelinedHandler, SecondStage,
};
use crate::store::{Position, RecordedEvent};
use crate::testing::bus::in_process_bus;

const STREAM: &str = "order-2026112200000000107";

fn config(name: &str) -> OrderedConsumerConfig {
    OrderedConsumerConfig {
        // Long enough that a fetch running beside a first stage sees what the test publishes
        // right after it.
        fetch_wait: Duration::from_secs(2),
        ack_wait: Duration::from_millis(300),
        retry_backoff: Duration::from_millis(10),
        gap_delay: Duration::from_millis(50),
        max_attempts: 3,
        checkpoint_interval: Duration::from_millis(20),
        ..OrderedConsumerConfig::new(name)
    }
}

async fn publish(bus: &dyn EventBus, position: u64) {
    publish_as(bus, position, "OrderSubmitted").await;
}

async fn publish_as(bus: &dyn EventBus, position: u64, event_type: &str) {
    let mut event = sample_event(STREAM, position);
    event.event_type = event_type.to_owned();
    let m = encode_event(bus.subjects(), &event).expect("encode");
    bus.publish(m).await.expect("publish");
}

/// Records each batch's first and second stage (by positions). Second stages wait for the
/// gate; those of `poison` fail.
#[derive(Clone)]
struct Staged {
    started: Arc<Mutex<Vec<Vec<u64>>>>,
    finished: Arc<Mutex<Vec<Vec<u64>>>>,
    gate: Arc<Semaphore>,
    poison: Option<u64>,
}

impl Staged {
    fn new(open: bool, poison: Option<u64>) -> Self {
        let permits = if open { Semaphore::MAX_PERMITS } else { 0 };
        Staged {
            started: Arc::default(),
            finished: Arc::default(),
            gate: Arc::new(Semaphore::new(permits)),
            poison,
        }
    }

    fn started(&self) -> Vec<Vec<u64>> {
        self.started.lock().unwrap().clone()
    }

    fn finished(&self) -> Vec<Vec<u64>> {
        self.finished.lock().unwrap().clone()
    }
}

#[async_trait]
impl PipelinedHandler for Staged {
    fn wants(&self, _category: &str, event_type: &str) -> bool {
        event_type == "OrderSubmitted"
    }

    async fn start(&mut self, events: Arc<[RecordedEvent]>) -> SecondStage {
        let positions: Vec<u64> = events.iter().map(|e| e.position.get()).collect();
        self.started.lock().unwrap().push(positions.clone());
        let (gate, finished, poison) = (self.gate.clone(), self.finished.clone(), self.poison);
        Box::pin(async move {
            let _pass = gate.acquire().await.expect("gate never closed");
            finished.lock().unwrap().push(positions.clone());
            positions
                .iter()
                .map(|p| match poison {
                    Some(bad) if bad == *p => Err(format!("cannot finish {p}").into()),
                    _ => Ok(()),
                })
                .collect()
        })
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn saved(checkpoints: &MemoryCheckpointStore, name: &str) -> Option<Position> {
    let shard = sample_event(STREAM, 1).shard;
    checkpoints.load(name).await.unwrap().get(&shard).copied()
}

#[tokio::test]
async fn the_next_first_stage_overlaps_a_second_stage_whose_positions_wait_for_it() {
    let bus: Arc<dyn EventBus> = Arc::new(in_process_bus().await);
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let handler = Staged::new(false, None);
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config("pipe"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run_pipelined(handler.clone(), stop.clone()));

    publish(&*bus, 1).await;
    wait_until("batch 1 started", || handler.started().len() == 1).await;
    publish(&*bus, 2).await;
    // Batch 2's first stage runs while batch 1's second stage is held at the gate.
    wait_until("batch 2 started", || handler.started().len() == 2).await;
    assert_eq!(handler.started(), [vec![1], vec![2]]);
    assert!(handler.finished().is_empty());
    // Nothing is done, so no position moved and nothing was saved or acked.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(saved(&checkpoints, "pipe").await, None);

    // Open: both second stages finish, and shutdown lands both batches.
    handler.gate.add_permits(Semaphore::MAX_PERMITS);
    wait_until("both finished", || handler.finished().len() == 2).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut finished = handler.finished();
    finished.sort();
    assert_eq!(finished, [vec![1], vec![2]]);
    assert_eq!(saved(&checkpoints, "pipe").await, Some(Position::new(2)));
}

#[tokio::test]
async fn a_fetch_with_nothing_to_hand_over_lands_with_the_batch_in_flight() {
    let bus: Arc<dyn EventBus> = Arc::new(in_process_bus().await);
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let handler = Staged::new(false, None);
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config("pipe"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run_pipelined(handler.clone(), stop.clone()));
    publish(&*bus, 1).await;
    wait_until("batch 1 started", || handler.started().len() == 1).await;
    // A fetch of an event the handler does not want, while batch 1 is held: the pipeline
    // does not stop to land batch 1 before going on.
    publish_as(&*bus, 2, "OrderPaid").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(&*bus, 3).await;
    wait_until("batch 3 started", || handler.started().len() == 2).await;
    assert_eq!(handler.started(), [vec![1], vec![3]]);
    assert_eq!(saved(&checkpoints, "pipe").await, None);

    handler.gate.add_permits(Semaphore::MAX_PERMITS);
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(saved(&checkpoints, "pipe").await, Some(Position::new(3)));
}

#[tokio::test]
async fn a_crash_with_two_batches_in_flight_redelivers_both() {
    let bus: Arc<dyn EventBus> = Arc::new(in_process_bus().await);
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let held = Staged::new(false, None);
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config("pipe"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run_pipelined(held.clone(), CancellationToken::new()));
    publish(&*bus, 1).await;
    wait_until("batch 1 started", || held.started().len() == 1).await;
    publish(&*bus, 2).await;
    wait_until("batch 2 started", || held.started().len() == 2).await;

    // The process dies: the second stages in flight die with it (opening the gate later
    // finishes nothing), and nothing was acked.
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    held.gate.add_permits(Semaphore::MAX_PERMITS);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(held.finished().is_empty());
    assert_eq!(saved(&checkpoints, "pipe").await, None);

    // Restarted from the checkpoint: both events come again (after the ack wait) and land.
    let again = Staged::new(true, None);
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config("pipe"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run_pipelined(again.clone(), stop.clone()));
    wait_until("both finished again", || {
        again.finished().concat().len() == 2
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut finished = again.finished().concat();
    finished.sort_unstable();
    assert_eq!(finished, [1, 2]);
    assert_eq!(saved(&checkpoints, "pipe").await, Some(Position::new(2)));
}

#[tokio::test]
async fn a_failed_second_stage_is_retried_through_both_stages_then_dead_lettered() {
    let bus: Arc<dyn EventBus> = Arc::new(in_process_bus().await);
    for p in 1..=3 {
        publish(&*bus, p).await;
    }
    let checkpoints = Arc::new(MemoryCheckpointStore::new());
    let handler = Staged::new(true, Some(2));
    let stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(bus.clone(), checkpoints.clone(), config("pipe"))
        .await
        .unwrap();
    let task = tokio::spawn(consumer.run_pipelined(handler.clone(), stop.clone()));
    let dlq = bus
        .consumer(ConsumerConfig::new(
            "inspect",
            bus.subjects().dead_letter("pipe"),
        ))
        .await
        .unwrap();
    let letters = dlq.fetch(10, Duration::from_secs(5)).await.unwrap();
    stop.cancel();
    task.await.unwrap().unwrap();

    // One batch, then position 2 alone twice more (3 attempts in all), then its dead letter.
    assert_eq!(handler.started(), [vec![1, 2, 3], vec![2], vec![2]]);
    assert_eq!(letters.len(), 1);
    let letter = crate::bus::decode_event(&letters[0].message).unwrap();
    assert_eq!(letter.position, Position::new(2));
    assert_eq!(saved(&checkpoints, "pipe").await, Some(Position::new(3)));
}
