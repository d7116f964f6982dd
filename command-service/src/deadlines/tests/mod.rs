//! Deadlines end to end: event store → relay → in-process bus → scheduler → store → firer,
//! on memory and on PostgreSQL, with time driven by a `ManualClock` and explicit ticks.

mod assignment;
mod batch;
mod crash;
mod faulty;
mod lifecycle;
mod reaper;

use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::order::{OrderCommand, OrderLine, OrderStatus};
use orderflow_domain::sku::{Sku, SkuCommand, SkuState};
use orderflow_domain::{
    Actor, Address, BuyerId, MerchantId, Money, Name, OfferId, OrderNo, PaymentTxnId, Quantity,
    RestockQuantity, RiderId, Role, SkuId, Timestamp,
};
use orderflow_infra::bus::{
    CheckpointStore, EventBus, InProcessBus, MemoryCheckpointStore, OrderedConsumerConfig,
    PgCheckpointStore, Relay, RelayConfig,
};
use orderflow_infra::store::{
    CommandId, CorrelationId, EventStore, MemoryEventStore, PgEventStore, PgStoreConfig,
};
use orderflow_infra::testing::bus::unique_subjects;
use orderflow_infra::testing::TestDatabase;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conformance::deadline_store_suite;
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::CommandConfig;
use crate::execute::{decode, CommandMeta, Executor};
use crate::stock::StockWriters;

deadline_store_suite!(memory_store, async { MemoryDeadlineStore::new() });
deadline_store_suite!(postgres_store, async {
    let db = TestDatabase::create().await;
    PgDeadlineStore::new(migrated_pool(&db).await)
});

#[tokio::test]
async fn an_unreadable_postgres_row_is_parked_instead_of_blocking_the_queue() {
    let db = TestDatabase::create().await;
    let pool = migrated_pool(&db).await;
    let store = PgDeadlineStore::new(pool.clone());
    let good = Deadline::new(
        DeadlineKind::CloseDue {
            order_no: OrderNo::new(at(0), 1, buyer()).unwrap(),
        },
        at(10),
    );
    store.schedule(good.clone()).await.unwrap();
    pool.get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO deadlines (key, kind, due_at) VALUES ('payment:bad', '{\"type\": \"nope\"}', now() - interval '100 years')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.due(at(10), 10).await.unwrap(), vec![good.clone()]);
    assert_eq!(store.count_open().await.unwrap(), 1);
    let outcome: String = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT outcome FROM deadlines WHERE key = 'payment:bad'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outcome, "parked");
}

/// 2025-11-22T08:26:40Z: the tests' "now" before anything happens.
pub(super) const T0: i64 = 1_763_800_000_000;

/// The keys of every open deadline of `store`, sorted.
pub(super) async fn open_keys_of(store: &dyn DeadlineStore) -> Vec<String> {
    let mut keys: Vec<String> = store
        .due(Timestamp::from_millis(i64::MAX), 1_000)
        .await
        .expect("due")
        .into_iter()
        .map(|d| d.key.to_string())
        .collect();
    keys.sort();
    keys
}

pub(super) fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

pub(super) fn after(d: Duration) -> Timestamp {
    at(0).plus(d)
}

async fn migrated_pool(db: &TestDatabase) -> deadpool_postgres::Pool {
    let pool = db.pool(4);
    orderflow_infra::migrate::run(&pool, orderflow_infra::migrate::MIGRATIONS)
        .await
        .expect("migrate");
    pool
}

fn merchant() -> MerchantId {
    MerchantId::new(7).unwrap()
}

fn buyer() -> BuyerId {
    BuyerId::new(37).unwrap()
}

pub(super) fn rider() -> RiderId {
    RiderId::new(5).unwrap()
}

pub(super) fn sku() -> SkuId {
    SkuId::parse("latte-l").unwrap()
}

fn price() -> Money {
    Money::parse("CNY", 1_800).unwrap()
}

pub(super) fn offer(n: u32) -> OfferId {
    OfferId::parse(format!("offer-{n}")).unwrap()
}

fn meta(id: &str, at: Timestamp) -> CommandMeta {
    CommandMeta {
        command_id: CommandId::parse(id).unwrap(),
        correlation_id: CorrelationId::parse(format!("corr-{id}")).unwrap(),
        causation_id: None,
        actor: Actor::new(Role::Ops, "tests"),
        at,
    }
}

/// The write side, the relay and the scheduler running on one store, and a firer to tick.
pub(super) struct Harness {
    pub events: Arc<dyn EventStore>,
    pub executor: Executor,
    pub stock: StockWriters,
    pub deadlines: Arc<dyn DeadlineStore>,
    pub clock: ManualClock,
    pub config: CommandConfig,
    checkpoints: Arc<dyn CheckpointStore>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    next_command: std::sync::atomic::AtomicU32,
}

impl Harness {
    pub async fn memory() -> Harness {
        Harness::start(
            Arc::new(MemoryEventStore::new()),
            Arc::new(MemoryDeadlineStore::new()),
            Arc::new(MemoryCheckpointStore::new()),
        )
        .await
    }

    pub async fn postgres(db: &TestDatabase) -> Harness {
        let pool = migrated_pool(db).await;
        let events = PgEventStore::connect(PgStoreConfig::single(db.url.clone()))
            .await
            .expect("event store");
        Harness::start(
            Arc::new(events),
            Arc::new(PgDeadlineStore::new(pool.clone())),
            Arc::new(PgCheckpointStore::new(pool)),
        )
        .await
    }

    async fn start(
        events: Arc<dyn EventStore>,
        deadlines: Arc<dyn DeadlineStore>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Harness {
        let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(unique_subjects()));
        let shutdown = CancellationToken::new();
        let config = CommandConfig::default();
        let relay = Relay::new(
            events.clone(),
            bus.clone(),
            checkpoints.clone(),
            RelayConfig {
                checkpoint_interval: Duration::from_millis(20),
                ..RelayConfig::default()
            },
        );
        let relay_stop = shutdown.clone();
        let relay = tokio::spawn(async move {
            relay.run(relay_stop).await.expect("relay");
        });
        let scheduler =
            DeadlineScheduler::new(deadlines.clone(), config.close_after, Wakeup::new());
        let consumer = OrderedConsumerConfig {
            fetch_wait: Duration::from_millis(30),
            checkpoint_interval: Duration::from_millis(10),
            retry_backoff: Duration::from_millis(5),
            ..DeadlineScheduler::consumer_config()
        };
        let (bus2, cps, stop) = (bus.clone(), checkpoints.clone(), shutdown.clone());
        let scheduler = tokio::spawn(async move {
            scheduler
                .run(bus2, cps, consumer, stop)
                .await
                .expect("scheduler");
        });
        let executor = Executor::new(events.clone());
        let h = Harness {
            stock: StockWriters::new(executor.clone()),
            executor,
            events,
            deadlines,
            clock: ManualClock::at(at(0)),
            config,
            checkpoints,
            shutdown,
            tasks: vec![relay, scheduler],
            next_command: 0.into(),
        };
        h.sku(SkuCommand::List {
            merchant: merchant(),
            name: Name::parse("Latte L").unwrap(),
            price: price(),
            at: at(0),
        })
        .await;
        h.sku(SkuCommand::Restock {
            merchant: merchant(),
            quantity: RestockQuantity::new(1_000).unwrap(),
            at: at(0),
        })
        .await;
        h
    }

    /// A firer on the harness's stores and clock (a new one is a restarted process).
    pub fn firer(&self) -> DeadlineFirer {
        DeadlineFirer::new(
            self.deadlines.clone(),
            self.executor.clone(),
            self.stock.clone(),
            Arc::new(self.clock.clone()),
            Wakeup::new(),
        )
    }

    /// Waits until the scheduler has handled every committed event.
    pub async fn caught_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let saved = self
                .checkpoints
                .load(SCHEDULER_CONSUMER)
                .await
                .expect("checkpoints");
            let mut behind = false;
            for shard in orderflow_domain::Shard::all() {
                let head = self.events.head(shard).await.expect("head");
                behind |= saved
                    .get(&shard)
                    .copied()
                    .unwrap_or(orderflow_infra::store::Position::ZERO)
                    < head;
            }
            if !behind {
                return;
            }
            assert!(Instant::now() < deadline, "scheduler did not catch up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the relay and the scheduler (the stores stay usable).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            task.await.expect("task");
        }
    }

    fn command_id(&self, what: &str) -> String {
        let n = self
            .next_command
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("test-{what}-{n}")
    }

    pub async fn sku(&self, command: SkuCommand) {
        let id = self.command_id("sku");
        self.stock
            .execute(&sku(), command, &meta(&id, self.clock.now()))
            .await
            .expect("sku command");
    }

    pub async fn order(&self, order_no: &OrderNo, command: OrderCommand) {
        let id = self.command_id(command.name().split(' ').next().unwrap_or("x"));
        self.executor
            .execute::<orderflow_domain::order::Order>(
                &order_no.stream_id(),
                &command,
                &meta(&id, self.clock.now()),
            )
            .await
            .expect("order command");
    }

    pub async fn status(&self, order_no: &OrderNo) -> Option<OrderStatus> {
        self.executor
            .load::<orderflow_domain::order::Order>(&order_no.stream_id())
            .await
            .expect("load order")
            .state
            .status()
    }

    /// The order's event types, oldest first.
    pub async fn history(&self, order_no: &OrderNo) -> Vec<&'static str> {
        let recorded = self
            .events
            .read_stream(&order_no.stream_id(), 1, 1_000)
            .await
            .expect("read");
        recorded
            .iter()
            .map(|e| {
                let event = decode::<orderflow_domain::order::Order>(e).expect("decode");
                orderflow_domain::DomainEvent::event_type(&event)
            })
            .collect()
    }

    pub async fn sku_state(&self) -> SkuState {
        self.stock.state(&sku()).await.expect("sku state")
    }

    pub async fn sku_version(&self) -> u64 {
        self.executor
            .load::<Sku>(&sku().stream_id())
            .await
            .expect("load sku")
            .version
    }

    /// Submitted now, stock reserved until `reservation_ttl`, CREATED with the payment window.
    pub async fn created_order(&self, n: u32) -> OrderNo {
        let ttl = self.config.reservation_ttl;
        self.created_order_with(n, ttl).await
    }

    pub async fn created_order_with(&self, n: u32, reservation_ttl: Duration) -> OrderNo {
        let now = self.clock.now();
        let order_no = OrderNo::new(now, n, buyer()).unwrap();
        let quantity = Quantity::new(2).unwrap();
        self.order(
            &order_no,
            OrderCommand::Submit {
                order_no: order_no.clone(),
                buyer: buyer(),
                merchant: merchant(),
                lines: vec![OrderLine {
                    sku: sku(),
                    name: Name::parse("Latte L").unwrap(),
                    quantity,
                    unit_price: price(),
                }],
                address: Address::parse("1 Chang'an Ave", 39.9, 116.4).unwrap(),
                at: now,
                refused: None,
            },
        )
        .await;
        self.sku(SkuCommand::Reserve {
            order_no: order_no.clone(),
            merchant: merchant(),
            quantity,
            unit_price: price(),
            expires_at: now.plus(reservation_ttl),
            at: now,
        })
        .await;
        self.order(
            &order_no,
            OrderCommand::Create {
                payment_deadline: now.plus(self.config.payment_window),
                at: now,
            },
        )
        .await;
        order_no
    }

    pub async fn pay(&self, order_no: &OrderNo) {
        self.order(
            order_no,
            OrderCommand::ConfirmPayment {
                txn: PaymentTxnId::parse(format!("txn-{order_no}")).unwrap(),
                amount: price().checked_mul(2).unwrap(),
                at: self.clock.now(),
            },
        )
        .await;
    }

    /// One round of offers (rider 5 only), open for the offer window from now.
    pub async fn notify(&self, order_no: &OrderNo, round: u32) {
        let now = self.clock.now();
        self.order(
            order_no,
            OrderCommand::NotifyRiders {
                offer_id: offer(round),
                round,
                riders: vec![rider()],
                radius_m: 3_000,
                expires_at: now.plus(self.config.offer_window),
                at: now,
            },
        )
        .await;
    }

    /// Grabbed with the given round's offer and picked up, due within the delivery SLA.
    pub async fn grab(&self, order_no: &OrderNo, round: u32) {
        let now = self.clock.now();
        self.order(
            order_no,
            OrderCommand::Grab {
                rider: rider(),
                offer_id: offer(round),
                delivery_deadline: now.plus(self.config.delivery_sla),
                now,
            },
        )
        .await;
        self.order(
            order_no,
            OrderCommand::PickUp {
                rider: rider(),
                at: now,
            },
        )
        .await;
    }

    pub async fn deliver(&self, order_no: &OrderNo) {
        let at = self.clock.now();
        self.order(
            order_no,
            OrderCommand::ConfirmDelivery { rider: rider(), at },
        )
        .await;
    }

    /// The open deadlines' keys.
    pub async fn open_keys(&self) -> Vec<String> {
        open_keys_of(self.deadlines.as_ref()).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(super) trait MinusMs {
    fn minus_ms(self, ms: i64) -> Timestamp;
}

impl MinusMs for Timestamp {
    fn minus_ms(self, ms: i64) -> Timestamp {
        Timestamp::from_millis(self.as_millis() - ms)
    }
}

/// The scheduler is handed only the types it names (`wants`): a misspelt or renamed one
/// would silently drop its deadlines.
#[test]
fn the_scheduler_wants_only_domain_event_types() {
    use orderflow_domain::order::OrderEvent;
    use orderflow_domain::rider::RiderEvent;
    use orderflow_domain::sku::SkuEvent;
    use orderflow_infra::bus::BatchEventHandler;

    use super::scheduler::{ORDER_TYPES, RIDER_TYPES, SKU_TYPES};

    for (wanted, domain) in [
        (ORDER_TYPES, OrderEvent::EVENT_TYPES),
        (SKU_TYPES, SkuEvent::EVENT_TYPES),
        (RIDER_TYPES, RiderEvent::EVENT_TYPES),
    ] {
        for t in wanted {
            assert!(domain.contains(t), "{t} is not a domain event type");
        }
    }
    let scheduler = DeadlineScheduler::new(
        Arc::new(MemoryDeadlineStore::new()),
        Duration::from_secs(60),
        Wakeup::new(),
    );
    assert!(scheduler.wants("order", "OrderCreated"));
    assert!(scheduler.wants("sku", "StockReserved"));
    assert!(scheduler.wants("rider", "RiderOrderAssigned"));
    // A flash sale's bulk: submissions, failures, location reports.
    assert!(!scheduler.wants("order", "OrderSubmitted"));
    assert!(!scheduler.wants("order", "OrderFailed"));
    assert!(!scheduler.wants("rider", "RiderLocationReported"));
    assert!(!scheduler.wants("merchant", "MerchantOpened"));
}
