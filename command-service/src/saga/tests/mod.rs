//! The saga end to end on one store and one bus (the relay between them): in process for the
//! rules, Postgres + NATS for the flash sale. Orders are submitted through the executor (the
//! gRPC layer is tested elsewhere) and observed in the store.

mod flash;
mod pipeline;
mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::merchant::{Merchant, MerchantCommand};
use orderflow_domain::order::{Order, OrderCommand, OrderLine, OrderStatus};
use orderflow_domain::sku::{SkuCommand, SkuState};
use orderflow_domain::{
    Actor, Address, BuyerId, FailureReason, GeoPoint, MerchantId, Money, Name, OrderNo, Quantity,
    RestockQuantity, Role, Shard, SkuId, Timestamp,
};
use orderflow_infra::bus::{
    CheckpointStore, EventBus, MemoryCheckpointStore, Relay, RelayConfig, StreamKind,
};
use orderflow_infra::store::{
    CommandId, CorrelationId, EventStore, MemoryEventStore, Position, RecordedEvent,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Saga, SagaConfig, SagaError, SETTLE_CONSUMER, SUBMIT_CONSUMER};
use crate::{CommandMeta, Executor, ManualClock, StockWriters};

/// Submission time of every test order; the clock stays here.
pub(super) const T0: i64 = 1_763_800_000_000;

pub(super) struct World {
    pub store: Arc<dyn EventStore>,
    pub executor: Executor,
    pub stock: StockWriters,
    pub bus: Arc<dyn EventBus>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    pub clock: ManualClock,
    relay_stop: CancellationToken,
    relay: Option<JoinHandle<()>>,
}

pub(super) struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), SagaError>>,
}

impl Running {
    pub async fn stop(self) -> Result<(), SagaError> {
        self.stop.cancel();
        self.task.await?
    }
}

pub(super) fn meta(id: impl Into<String>) -> CommandMeta {
    CommandMeta {
        command_id: CommandId::parse(id.into()).unwrap(),
        correlation_id: CorrelationId::parse("test").unwrap(),
        causation_id: None,
        actor: Actor::new(Role::Buyer, "1"),
        at: Timestamp::from_millis(T0),
    }
}

pub(super) fn cny(minor: i64) -> Money {
    Money::parse("CNY", minor).unwrap()
}

pub(super) fn merchant(id: i64) -> MerchantId {
    MerchantId::new(id).unwrap()
}

pub(super) fn sku(name: &str) -> SkuId {
    SkuId::parse(name).unwrap()
}

pub(super) fn line(sku_name: &str, quantity: i64, unit_price: i64) -> OrderLine {
    OrderLine {
        sku: sku(sku_name),
        name: Name::parse(format!("dish {sku_name}")).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit_price: cny(unit_price),
    }
}

impl World {
    pub async fn memory() -> World {
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let bus: Arc<dyn EventBus> =
            Arc::new(orderflow_infra::testing::bus::in_process_bus().await);
        World::start(store, bus, Arc::new(MemoryCheckpointStore::new()))
    }

    pub fn start(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> World {
        let executor = Executor::new(store.clone());
        let relay_stop = CancellationToken::new();
        let relay = Relay::new(
            store.clone(),
            bus.clone(),
            checkpoints.clone(),
            RelayConfig::default(),
        );
        let stop = relay_stop.clone();
        let relay = tokio::spawn(async move {
            if let Err(e) = relay.run(stop).await {
                eprintln!("relay: {e}");
            }
        });
        World {
            stock: StockWriters::new(executor.clone()),
            executor,
            store,
            bus,
            checkpoints,
            clock: ManualClock::at(Timestamp::from_millis(T0)),
            relay_stop,
            relay: Some(relay),
        }
    }

    pub fn saga(&self) -> Saga {
        let mut config = SagaConfig::default();
        // Redeliveries after a crash should not take the default 30 s.
        config.submit.ack_wait = Duration::from_secs(1);
        config.settle.ack_wait = Duration::from_secs(1);
        Saga::new(
            self.executor.clone(),
            self.stock.clone(),
            self.bus.clone(),
            self.checkpoints.clone(),
            Arc::new(self.clock.clone()),
            config,
        )
    }

    pub fn run(&self, saga: Saga) -> Running {
        let stop = CancellationToken::new();
        let task = tokio::spawn(saga.run(stop.clone()));
        Running { stop, task }
    }

    pub async fn shutdown(mut self) {
        self.relay_stop.cancel();
        if let Some(relay) = self.relay.take() {
            let _ = relay.await;
        }
    }

    pub async fn open_merchant(&self, id: i64) {
        let open = MerchantCommand::Open {
            name: Name::parse("Noodle Bar").unwrap(),
            location: GeoPoint::new(31.23, 121.47).unwrap(),
            at: Timestamp::from_millis(T0 - 10_000),
        };
        self.executor
            .execute::<Merchant>(
                &merchant(id).stream_id(),
                &open,
                &meta(format!("open-{id}")),
            )
            .await
            .unwrap();
    }

    pub async fn close_merchant(&self, id: i64) {
        let close = MerchantCommand::Close {
            at: Timestamp::from_millis(T0 - 5_000),
        };
        self.executor
            .execute::<Merchant>(
                &merchant(id).stream_id(),
                &close,
                &meta(format!("close-{id}")),
            )
            .await
            .unwrap();
    }

    pub async fn sku_command(&self, name: &str, command: SkuCommand, id: String) {
        self.stock
            .execute(&sku(name), command, &meta(id))
            .await
            .unwrap();
    }

    /// Lists a dish of merchant `m` at `price` with `units` in stock.
    pub async fn dish(&self, m: i64, name: &str, price: i64, units: i64) {
        let at = Timestamp::from_millis(T0 - 10_000);
        let list = SkuCommand::List {
            merchant: merchant(m),
            name: Name::parse(name).unwrap(),
            price: cny(price),
            at,
        };
        self.sku_command(name, list, format!("list-{name}")).await;
        if units > 0 {
            let restock = SkuCommand::Restock {
                merchant: merchant(m),
                quantity: RestockQuantity::new(units).unwrap(),
                at,
            };
            self.sku_command(name, restock, format!("restock-{name}"))
                .await;
        }
    }

    pub async fn submit(&self, n: u32, m: i64, lines: Vec<OrderLine>) -> OrderNo {
        let buyer = BuyerId::new(i64::from(n % 997) + 1).unwrap();
        let order_no = OrderNo::new(Timestamp::from_millis(T0), n, buyer).unwrap();
        let submit = OrderCommand::Submit {
            order_no: order_no.clone(),
            buyer,
            merchant: merchant(m),
            lines,
            address: Address::parse("1 Chang'an Ave", 31.2, 121.4).unwrap(),
            at: Timestamp::from_millis(T0),
            refused: None,
        };
        self.executor
            .execute::<Order>(&order_no.stream_id(), &submit, &meta(format!("submit-{n}")))
            .await
            .unwrap();
        order_no
    }

    pub async fn order(&self, order_no: &OrderNo) -> orderflow_domain::order::OrderState {
        self.executor
            .load::<Order>(&order_no.stream_id())
            .await
            .unwrap()
            .state
    }

    pub async fn status(&self, order_no: &OrderNo) -> Option<OrderStatus> {
        self.order(order_no).await.status()
    }

    /// Waits until the order leaves CREATING (or `within` passes) and returns its status
    /// and failure reason.
    pub async fn outcome(&self, order_no: &OrderNo) -> (OrderStatus, Option<FailureReason>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.order(order_no).await;
            let order = state.order().unwrap();
            if order.status != OrderStatus::Creating {
                return (order.status, order.failure);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{order_no} still CREATING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn sku_state(&self, name: &str) -> SkuState {
        // From the stream, not the writer: what is durable.
        self.executor
            .load::<orderflow_domain::sku::Sku>(&sku(name).stream_id())
            .await
            .unwrap()
            .state
    }

    /// Every event of every shard (for counting outcomes and comparing histories).
    pub async fn all_events(&self) -> Vec<RecordedEvent> {
        let mut out = Vec::new();
        for shard in Shard::all() {
            let mut after = Position::ZERO;
            loop {
                let page = self.store.read_shard(shard, after, 2_000).await.unwrap();
                let Some(last) = page.last() else { break };
                after = last.position;
                out.extend(page);
            }
        }
        out
    }

    /// Waits until `wanted` orders have an outcome; returns (created, failed by reason).
    /// Reads each shard's log incrementally, so watching costs the saga little.
    pub async fn wait_outcomes(
        &self,
        wanted: usize,
        within: Duration,
    ) -> (usize, HashMap<String, usize>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut read_to: HashMap<Shard, Position> = HashMap::new();
        let mut created = 0;
        let mut failed: HashMap<String, usize> = HashMap::new();
        loop {
            for shard in Shard::all() {
                let after = read_to.entry(shard).or_insert(Position::ZERO);
                loop {
                    let page = self.store.read_shard(shard, *after, 2_000).await.unwrap();
                    let Some(last) = page.last() else { break };
                    *after = last.position;
                    for e in &page {
                        match e.event_type.as_str() {
                            "OrderCreated" => created += 1,
                            "OrderFailed" => {
                                let reason = e.payload.decode::<serde_json::Value>().unwrap()
                                    ["reason"]
                                    .as_str()
                                    .unwrap_or("?")
                                    .to_owned();
                                *failed.entry(reason).or_default() += 1;
                            }
                            _ => {}
                        }
                    }
                }
            }
            let total = created + failed.values().sum::<usize>();
            if total >= wanted || tokio::time::Instant::now() >= deadline {
                return (created, failed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Forgets a consumer's progress on the bus and in its checkpoint: the next run sees
    /// every event again, as after the worst redelivery.
    pub async fn forget(&self, consumer: &str) {
        let durable = orderflow_infra::bus::OrderedConsumer::durable_name(consumer);
        let _ = self.bus.delete_consumer(StreamKind::Events, &durable).await;
        self.checkpoints.reset(consumer).await.unwrap();
    }

    /// Waits until a consumer's checkpoint covers every shard's head.
    pub async fn wait_caught_up(&self, consumer: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let saved = self.checkpoints.load(consumer).await.unwrap();
            let mut behind = false;
            for shard in Shard::all() {
                let head = self.store.head(shard).await.unwrap();
                if saved.get(&shard).copied().unwrap_or(Position::ZERO) < head {
                    behind = true;
                }
            }
            if !behind {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{consumer} not caught up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(super) fn assert_identity(state: &SkuState) {
    let s = state.stock();
    assert_eq!(s.added, s.available + s.reserved + s.deducted, "{s:?}");
    assert!(s.available >= 0 && s.reserved >= 0, "{s:?}");
}

pub(super) const CONSUMERS: [&str; 2] = [SUBMIT_CONSUMER, SETTLE_CONSUMER];

/// Each half is handed only the types it names (`wants`): a misspelt one would leave
/// orders in CREATING or stock reserved.
#[test]
fn the_halves_want_only_domain_event_types() {
    use orderflow_domain::order::OrderEvent;

    for t in std::iter::once(&super::submit::ORDER_SUBMITTED).chain(super::settle::SETTLED_TYPES) {
        assert!(
            OrderEvent::EVENT_TYPES.contains(t),
            "{t} is not an order event type"
        );
    }
}
