//! The test rig: memory store → relay → bus → notifier, the index fed from the store, time
//! driven by a manual clock, and helpers that put merchants, riders and paid orders in place.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::merchant::{Merchant, MerchantCommand};
use orderflow_domain::order::{
    Order, OrderCommand, OrderEvent, OrderLine, OrderState, OrderStatus, PlacedOrder,
};
use orderflow_domain::rider::{Rider, RiderCommand};
use orderflow_domain::{
    Actor, Address, BuyerId, Capacity, GeoPoint, MerchantId, Money, Name, OrderNo, PaymentTxnId,
    Quantity, RiderId, SkuId, Timestamp,
};
use orderflow_infra::bus::{
    EventBus, MemoryCheckpointStore, OrderedConsumerConfig, Relay, RelayConfig,
    TransientSubscription,
};
use orderflow_infra::store::{
    CommandId, CorrelationId, EventStore, MemoryEventStore, RecordedEvent,
};
use orderflow_proto::v1 as pb;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::super::{
    decode_offer, Notifier, NotifierHandler, OfferPolicy, NOTIFIER_CONSUMER, OFFER_CONTENT_TYPE,
};
use crate::clock::{Clock, ManualClock};
use crate::error::CommandError;
use crate::execute::{CommandMeta, Executor};
use crate::riders::{run_index_updater, RiderGeoIndex, RidersError};

pub(super) const T0: i64 = 1_800_000_000_000;
pub(super) const M_PER_DEG_LAT: f64 = 111_195.08;

pub(super) fn merchant_at() -> GeoPoint {
    GeoPoint::new(31.2304, 121.4737).unwrap()
}

pub(super) fn north(metres: f64) -> GeoPoint {
    let m = merchant_at();
    GeoPoint::new(m.lat() + metres / M_PER_DEG_LAT, m.lng()).unwrap()
}

pub(super) fn rid(n: i64) -> RiderId {
    RiderId::new(n).unwrap()
}

pub(super) fn policy(fanout: usize) -> OfferPolicy {
    OfferPolicy {
        fanout,
        first_radius_m: 3_000,
        window: Duration::from_secs(30),
        max_rounds: 10,
    }
}

/// Waits (bounded: 10 s) for `check` to hold.
pub(super) async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

pub(super) struct Harness {
    pub(super) store: Arc<MemoryEventStore>,
    pub(super) bus: Arc<dyn EventBus>,
    pub(super) executor: Executor,
    pub(super) index: Arc<RiderGeoIndex>,
    pub(super) clock: ManualClock,
    pub(super) checkpoints: Arc<MemoryCheckpointStore>,
    pub(super) shutdown: CancellationToken,
    pub(super) background: Vec<JoinHandle<()>>,
}

impl Harness {
    pub(super) fn new(bus: Arc<dyn EventBus>) -> Self {
        let store = Arc::new(MemoryEventStore::new());
        Harness {
            executor: Executor::new(store.clone()),
            store,
            bus,
            index: Arc::new(RiderGeoIndex::new()),
            clock: ManualClock::at(Timestamp::from_millis(T0)),
            checkpoints: Arc::new(MemoryCheckpointStore::new()),
            shutdown: CancellationToken::new(),
            background: Vec::new(),
        }
    }

    /// Starts the relay (store → bus) and the index updater.
    pub(super) fn start_background(&mut self) {
        let relay = Relay::new(
            self.store.clone(),
            self.bus.clone(),
            Arc::new(MemoryCheckpointStore::new()),
            RelayConfig::default(),
        );
        let shutdown = self.shutdown.clone();
        self.background.push(tokio::spawn(async move {
            relay.run(shutdown).await.unwrap();
        }));
        let (index, store, shutdown) = (
            self.index.clone(),
            self.store.clone(),
            self.shutdown.clone(),
        );
        self.background.push(tokio::spawn(async move {
            run_index_updater(index, store, shutdown).await.unwrap();
        }));
    }

    pub(super) fn notifier(&self, fanout: usize, name: &str) -> Notifier {
        self.notifier_with(policy(fanout), name)
    }

    pub(super) fn notifier_with(&self, policy: OfferPolicy, name: &str) -> Notifier {
        let mut consumer = OrderedConsumerConfig::new(name);
        consumer.fetch_wait = Duration::from_millis(50);
        consumer.checkpoint_interval = Duration::from_millis(20);
        Notifier::new(
            self.executor.clone(),
            self.bus.clone(),
            self.checkpoints.clone(),
            self.index.clone(),
            Arc::new(self.clock.clone()),
            policy,
        )
        .with_consumer_config(consumer)
    }

    /// Runs a notifier until the returned token is cancelled.
    pub(super) fn spawn_notifier(
        &self,
        fanout: usize,
        name: &str,
    ) -> (CancellationToken, JoinHandle<Result<(), RidersError>>) {
        let stop = self.shutdown.child_token();
        let notifier = self.notifier(fanout, name);
        let token = stop.clone();
        (stop, tokio::spawn(async move { notifier.run(token).await }))
    }

    pub(super) fn handler(&self, fanout: usize) -> NotifierHandler {
        self.notifier(fanout, NOTIFIER_CONSUMER).handler
    }

    pub(super) fn handler_with(&self, policy: OfferPolicy) -> NotifierHandler {
        self.notifier_with(policy, NOTIFIER_CONSUMER).handler
    }

    pub(super) fn meta(&self) -> CommandMeta {
        CommandMeta {
            command_id: CommandId::random(),
            correlation_id: CorrelationId::parse("test").unwrap(),
            causation_id: None,
            actor: Actor::system("test"),
            at: self.clock.now(),
        }
    }

    pub(super) async fn open_merchant(&self, id: i64) -> MerchantId {
        let merchant = MerchantId::new(id).unwrap();
        let open = MerchantCommand::Open {
            name: Name::parse("Noodle Bar").unwrap(),
            location: merchant_at(),
            at: self.clock.now(),
        };
        self.executor
            .execute::<Merchant>(&merchant.stream_id(), &open, &self.meta())
            .await
            .unwrap();
        merchant
    }

    pub(super) async fn rider(&self, id: i64, command: RiderCommand) -> Result<(), CommandError> {
        self.executor
            .execute::<Rider>(&rid(id).stream_id(), &command, &self.meta())
            .await
            .map(|_| ())
    }

    pub(super) async fn online(&self, id: i64, metres_north: f64, capacity: i64) {
        let go = RiderCommand::GoOnline {
            location: north(metres_north),
            capacity: Capacity::new(capacity).unwrap(),
            at: self.clock.now(),
        };
        self.rider(id, go).await.unwrap();
    }

    /// Submits, creates and pays an order of `merchant`, delivered 2 km south.
    pub(super) async fn paid_order(&self, n: u32, merchant: MerchantId) -> OrderNo {
        let now = self.clock.now();
        let order_no = OrderNo::new(now, n, BuyerId::new(7).unwrap()).unwrap();
        let price = Money::parse("CNY", 1_500).unwrap();
        let m = merchant_at();
        let commands = [
            OrderCommand::Submit {
                order_no: order_no.clone(),
                buyer: BuyerId::new(7).unwrap(),
                merchant,
                lines: vec![OrderLine {
                    sku: SkuId::parse("noodles").unwrap(),
                    name: Name::parse("Noodles").unwrap(),
                    quantity: Quantity::new(1).unwrap(),
                    unit_price: price,
                }],
                address: Address::parse("1 Bund Rd", m.lat() - 0.018, m.lng()).unwrap(),
                at: now,
                refused: None,
            },
            OrderCommand::Create {
                payment_deadline: now.plus(Duration::from_secs(900)),
                at: now,
            },
            OrderCommand::ConfirmPayment {
                txn: PaymentTxnId::parse(format!("txn-{n}")).unwrap(),
                amount: price,
                at: now,
            },
        ];
        for command in commands {
            self.order_command(&order_no, command).await.unwrap();
        }
        order_no
    }

    pub(super) async fn order_command(
        &self,
        order_no: &OrderNo,
        command: OrderCommand,
    ) -> Result<Vec<OrderEvent>, CommandError> {
        self.executor
            .execute::<Order>(&order_no.stream_id(), &command, &self.meta())
            .await
            .map(|done| done.events)
    }

    pub(super) async fn order(&self, order_no: &OrderNo) -> PlacedOrder {
        let loaded = self
            .executor
            .load::<Order>(&order_no.stream_id())
            .await
            .unwrap();
        match loaded.state {
            OrderState::Placed(order) => *order,
            OrderState::Empty => panic!("no order {order_no}"),
        }
    }

    pub(super) async fn wait_status(&self, order_no: &OrderNo, status: OrderStatus) -> PlacedOrder {
        eventually(&format!("{order_no} {status}"), || async {
            self.order(order_no).await.status == status
        })
        .await;
        self.order(order_no).await
    }

    /// The order's events of one type, as stored.
    pub(super) async fn events_of(
        &self,
        order_no: &OrderNo,
        event_type: &str,
    ) -> Vec<RecordedEvent> {
        let all = self
            .store
            .read_stream(&order_no.stream_id(), 1, 1_000)
            .await
            .unwrap();
        all.into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }

    pub(super) async fn rounds(&self, order_no: &OrderNo) -> usize {
        self.events_of(order_no, "RidersNotified").await.len()
    }

    pub(super) async fn offers(&self, rider: i64) -> TransientSubscription {
        let subject = self.bus.subjects().rider_offers(rider.unsigned_abs());
        self.bus.subscribe(&subject).await.unwrap()
    }

    /// Waits until the index shows every rider in `ids` and the merchant.
    pub(super) async fn index_knows(&self, ids: &[i64], merchant: MerchantId) {
        eventually("the index to catch up", || async {
            self.index.merchant_location(merchant).is_some()
                && ids.iter().all(|id| self.index.rider(rid(*id)).is_some())
        })
        .await;
    }

    pub(super) async fn stop(self) {
        self.shutdown.cancel();
        for task in self.background {
            task.await.unwrap();
        }
    }
}

pub(super) async fn next_offer(sub: &mut TransientSubscription) -> pb::Offer {
    let message = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an offer within 5 s")
        .expect("subscription open");
    assert_eq!(message.header("Content-Type"), Some(OFFER_CONTENT_TYPE));
    decode_offer(&message.payload).expect("a decodable Offer")
}

pub(super) async fn no_offer(sub: &mut TransientSubscription) {
    let next = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(next.is_err(), "unexpected offer: {next:?}");
}
