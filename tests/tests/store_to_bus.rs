//! The write path's plumbing end to end, on the real adapters: commands decided by the
//! domain and appended through the executor to the PostgreSQL event store (32 shards over
//! two databases), relayed to NATS JetStream, and consumed by a durable ordered consumer
//! that decodes them back into domain events. Half-way through, the relay is stopped and a
//! new one starts in another store instance (another "process"), from the checkpoint.
//!
//! What must hold: every event arrives, once, in position order per shard; what arrives is
//! what was stored (same ids, same metadata); the relay's checkpoint ends at every head.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orderflow_command_service::{CommandMeta, Executor};
use orderflow_domain::merchant::{Merchant, MerchantCommand, MerchantEvent};
use orderflow_domain::{Actor, DomainEvent, GeoPoint, MerchantId, Name, Role, Shard, Timestamp};
use orderflow_infra::bus::{
    CheckpointStore, EventBus, EventHandler, HandlerError, OrderedConsumer, OrderedConsumerConfig,
    PgCheckpointStore, Relay, RelayConfig,
};
use orderflow_infra::store::{
    CommandId, CorrelationId, EventStore, PgEventStore, PgStoreConfig, Position, RecordedEvent,
    ShardMap,
};
use orderflow_infra::testing::bus::nats_bus;
use orderflow_infra::testing::TestDatabase;
use tokio_util::sync::CancellationToken;

const WRITERS: i64 = 8;
const MERCHANTS_PER_WRITER: i64 = 30;
const RENAMES: i64 = 2;

/// What the consumer saw: per shard, the positions in arrival order, and every event.
#[derive(Clone, Default)]
struct Seen {
    positions: Arc<Mutex<BTreeMap<Shard, Vec<Position>>>>,
    events: Arc<Mutex<Vec<(RecordedEvent, MerchantEvent)>>>,
}

#[async_trait]
impl EventHandler for Seen {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), HandlerError> {
        // Decoding is part of the contract: what a consumer gets must read back as the
        // domain event that was decided.
        let decoded =
            MerchantEvent::decode(&event.event_type, event.event_version, &event.payload)?;
        self.positions
            .lock()
            .unwrap()
            .entry(event.shard)
            .or_default()
            .push(event.position);
        self.events.lock().unwrap().push((event.clone(), decoded));
        Ok(())
    }
}

fn meta(command_id: String, merchant: i64) -> CommandMeta {
    CommandMeta {
        command_id: CommandId::parse(command_id).unwrap(),
        correlation_id: CorrelationId::parse(format!("corr-{merchant}")).unwrap(),
        causation_id: None,
        actor: Actor::new(Role::Merchant, merchant.to_string()),
        at: Timestamp::from_millis(1_700_000_000_000 + merchant),
    }
}

async fn write_merchants(store: Arc<dyn EventStore>, writer: i64) {
    let executor = Executor::new(store);
    for i in 0..MERCHANTS_PER_WRITER {
        let id = writer * 1_000 + i + 1;
        let stream = MerchantId::new(id).unwrap().stream_id();
        let open = MerchantCommand::Open {
            name: Name::parse(format!("Shop {id}")).unwrap(),
            location: GeoPoint::new(31.2, 121.4).unwrap(),
            at: Timestamp::from_millis(1),
        };
        executor
            .execute::<Merchant>(&stream, &open, &meta(format!("open-{id}"), id))
            .await
            .unwrap();
        for r in 0..RENAMES {
            let rename = MerchantCommand::Rename {
                name: Name::parse(format!("Shop {id} v{r}")).unwrap(),
                at: Timestamp::from_millis(2 + r),
            };
            executor
                .execute::<Merchant>(&stream, &rename, &meta(format!("rename-{id}-{r}"), id))
                .await
                .unwrap();
        }
    }
}

async fn heads(store: &dyn EventStore) -> BTreeMap<Shard, Position> {
    let mut out = BTreeMap::new();
    for shard in Shard::all() {
        let head = store.head(shard).await.unwrap();
        if head > Position::ZERO {
            out.insert(shard, head);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_stored_event_reaches_consumers_once_in_order_across_a_relay_handover() {
    let (a, b) = (TestDatabase::create().await, TestDatabase::create().await);
    let map = ShardMap::parse(&format!("0-15={};16-31={}", a.url, b.url)).unwrap();
    let store_1 = PgEventStore::connect(PgStoreConfig::new(map.clone()))
        .await
        .unwrap();
    let store_2 = PgEventStore::connect(PgStoreConfig::new(map))
        .await
        .unwrap();
    let nats = nats_bus().await;
    let bus: Arc<dyn EventBus> = Arc::new(nats.clone());
    let checkpoints: Arc<dyn CheckpointStore> = Arc::new(PgCheckpointStore::new(a.pool(4)));

    let seen = Seen::default();
    let consumer_stop = CancellationToken::new();
    let consumer = OrderedConsumer::new(
        bus.clone(),
        checkpoints.clone(),
        OrderedConsumerConfig::new("e2e-reader"),
    )
    .await
    .unwrap();
    let consumer_task = tokio::spawn(consumer.run(seen.clone(), consumer_stop.clone()));

    // Relay #1 in "process" 1, while the writers go.
    let relay_config = RelayConfig {
        checkpoint_every: 50,
        ..RelayConfig::default()
    };
    let stop_1 = CancellationToken::new();
    let relay_1 = Relay::new(
        Arc::new(store_1.clone()),
        bus.clone(),
        checkpoints.clone(),
        relay_config.clone(),
    );
    let relay_1_stats = relay_1.stats();
    let relay_1 = tokio::spawn(relay_1.run(stop_1.clone()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_merchants(Arc::new(store_1.clone()), w)))
        .collect();

    // Hand over half-way: stop relay #1 (it saves its checkpoint) and start relay #2 in
    // "process" 2, on the same databases, from that checkpoint.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_1.cancel();
    relay_1.await.unwrap().unwrap();
    let handed_over = relay_1_stats.published();
    assert!(
        handed_over > 0,
        "relay #1 should have published before the handover"
    );
    let stop_2 = CancellationToken::new();
    let relay_2 = Relay::new(
        Arc::new(store_2.clone()),
        bus.clone(),
        checkpoints.clone(),
        relay_config,
    );
    let relay_2_stats = relay_2.stats();
    let relay_2 = tokio::spawn(relay_2.run(stop_2.clone()));

    for w in writers {
        w.await.unwrap();
    }
    let heads = heads(&store_1).await;
    let total: u64 = heads.values().map(|p| p.get()).sum();
    assert_eq!(
        total,
        (WRITERS * MERCHANTS_PER_WRITER * (1 + RENAMES)) as u64
    );
    assert!(
        heads.len() > 16,
        "merchants should spread over both databases' shards"
    );

    // Bounded wait for the consumer to see everything.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (seen.events.lock().unwrap().len() as u64) < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumer saw {} of {total}",
            seen.events.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_2.cancel();
    relay_2.await.unwrap().unwrap();
    consumer_stop.cancel();
    consumer_task.await.unwrap().unwrap();

    // Once, in order, per shard.
    let positions = seen.positions.lock().unwrap().clone();
    for (shard, head) in &heads {
        let got: Vec<u64> = positions[shard].iter().map(|p| p.get()).collect();
        assert_eq!(got, (1..=head.get()).collect::<Vec<_>>(), "shard {shard}");
    }
    // What arrived is what was stored, metadata included.
    let arrivals = seen.events.lock().unwrap().clone();
    for (arrived, decoded) in &arrivals {
        let stored = store_2
            .read_stream(&arrived.stream, arrived.stream_version, 1)
            .await
            .unwrap();
        assert_eq!(stored[0].event_id, arrived.event_id);
        assert_eq!(stored[0].metadata, arrived.metadata);
        assert_eq!(decoded.event_type(), arrived.event_type);
    }
    for (shard, head) in &heads {
        assert_eq!(
            relay_2_stats.acked(*shard),
            *head,
            "relay checkpoint of shard {shard}"
        );
    }

    store_1.shutdown().await;
    store_2.shutdown().await;
    nats.delete_streams().await.unwrap();
}
