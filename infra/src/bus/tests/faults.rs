//! The relay under publish failures: acks that time out for messages the bus stores *later*
//! (after their successors), and refused hand-overs. The relay must resume from the last
//! contiguous ack, and the ordered consumer must still see each shard 1..n, once, in order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use orderflow_domain::Shard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{assert_each_shard_complete_in_order, Recorder};
use crate::bus::{
    BusError, ConsumerConfig, ConsumerInfo, DurableConsumer, EventBus, InProcessBus,
    MemoryCheckpointStore, OrderedConsumer, OrderedConsumerConfig, OutgoingMessage, PendingAck,
    Relay, RelayConfig, StreamKind, Subjects, TransientSubscription,
};
use crate::store::{EventStore, ExpectedVersion, MemoryEventStore, Position};
use crate::testing::bus::in_process_bus;
use crate::testing::store::{request, stream_in};

/// Every `late_every`-th publish: not stored now, its ack times out, and it is stored right
/// after the next publish (a "retried publish that landed out of order"). Every
/// `refuse_every`-th: refused at hand-over.
struct FlakyBus {
    inner: InProcessBus,
    count: AtomicU64,
    late_every: u64,
    refuse_every: u64,
    /// A std Mutex: only pushed to and drained, never held across an await.
    limbo: Mutex<Vec<OutgoingMessage>>,
}

#[async_trait]
impl EventBus for FlakyBus {
    fn subjects(&self) -> &Subjects {
        self.inner.subjects()
    }

    async fn start_publish(&self, message: OutgoingMessage) -> Result<PendingAck, BusError> {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n % self.refuse_every == 0 {
            return Err(BusError::unavailable("publish", "connection reset (test)"));
        }
        if n % self.late_every == 0 {
            self.limbo.lock().unwrap().push(message);
            return Ok(futures::future::ready(Err(BusError::Timeout { op: "publish" })).boxed());
        }
        let ack = self.inner.start_publish(message).await?;
        let late: Vec<_> = std::mem::take(&mut *self.limbo.lock().unwrap());
        for m in late {
            self.inner.publish(m).await?;
        }
        Ok(ack)
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn DurableConsumer>, BusError> {
        self.inner.consumer(config).await
    }

    async fn consumer_info(
        &self,
        stream: StreamKind,
        name: &str,
    ) -> Result<Option<ConsumerInfo>, BusError> {
        self.inner.consumer_info(stream, name).await
    }

    async fn delete_consumer(&self, stream: StreamKind, name: &str) -> Result<(), BusError> {
        self.inner.delete_consumer(stream, name).await
    }

    async fn publish_transient(&self, message: OutgoingMessage) -> Result<(), BusError> {
        self.inner.publish_transient(message).await
    }

    async fn subscribe(&self, filter: &str) -> Result<TransientSubscription, BusError> {
        self.inner.subscribe(filter).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_resumes_from_the_last_contiguous_ack_and_consumers_stay_in_order() {
    const SHARDS: [u8; 3] = [2, 9, 30];
    let store = Arc::new(MemoryEventStore::new());
    let inner = in_process_bus().await;
    let flaky = Arc::new(FlakyBus {
        inner: inner.clone(),
        count: AtomicU64::new(0),
        late_every: 97,
        refuse_every: 251,
        limbo: Mutex::new(Vec::new()),
    });
    let relay = Relay::new(
        store.clone(),
        flaky.clone(),
        Arc::new(MemoryCheckpointStore::new()),
        RelayConfig {
            shards: SHARDS.iter().map(|&s| Shard::new(s).unwrap()).collect(),
            window: 32,
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(50),
            ..RelayConfig::default()
        },
    );
    let stats = relay.stats();
    let stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(stop.clone()));

    let recorder = Recorder::default();
    let consumer_stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(
        Arc::new(inner.clone()),
        Arc::new(MemoryCheckpointStore::new()),
        OrderedConsumerConfig {
            gap_delay: Duration::from_millis(20),
            fetch_wait: Duration::from_millis(50),
            ..OrderedConsumerConfig::new("projector")
        },
    )
    .await
    .unwrap();
    let consumer_task = tokio::spawn(consumer.run(recorder.clone(), consumer_stop.clone()));

    for i in 0..1_500_usize {
        let shard = SHARDS[i % SHARDS.len()];
        let stream = stream_in(shard, &format!("s{}", i % 11));
        store
            .append(request(&stream, ExpectedVersion::Any, 1))
            .await
            .unwrap();
    }
    let mut heads = BTreeMap::new();
    for &s in &SHARDS {
        let shard = Shard::new(s).unwrap();
        heads.insert(shard, store.head(shard).await.unwrap());
    }
    let total: u64 = heads.values().map(|p: &Position| p.get()).sum();

    let deadline = Instant::now() + Duration::from_secs(30);
    while recorder.total() < total as usize {
        assert!(
            Instant::now() < deadline,
            "consumer saw {} of {total}",
            recorder.total()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    consumer_stop.cancel();
    consumer_task.await.unwrap().unwrap();
    stop.cancel();
    relay_task.await.unwrap().unwrap();

    assert!(
        stats.failures() >= 10,
        "failures injected: {}",
        stats.failures()
    );
    assert_each_shard_complete_in_order(&recorder.seen.lock().unwrap(), &heads);
    assert!(recorder.ids.lock().unwrap().values().all(|&n| n == 1));
    // Every event stored once: re-sends of stored ones were deduplicated.
    assert_eq!(inner.stream_len(StreamKind::Events) as u64, total);
}
