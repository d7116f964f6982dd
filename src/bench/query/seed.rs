//! A read model of N orders, fast: each order's events (`OrderSubmitted`, `OrderCreated`, and
//! `OrderPaid` for every third) are generated as the store would have recorded them, per
//! shard in position order, and applied in big batches through the projections' own
//! PostgreSQL adapters (`ProjectionModel::apply`, what the projector calls). The rows are the
//! projector's rows by construction; only the command path (deciding, appending) is skipped,
//! which would take hours at a million orders on this machine.
//!
//! Orders are spread over `orders / ORDERS_PER_BUYER` buyers and [`MERCHANTS`] merchants;
//! order `i` is numbered at `T0 + i` ms, so every number is distinct and newest-first lists
//! have a stable order.

use std::sync::Arc;

use futures::future::try_join_all;
use orderflow_domain::order::{OrderCreated, OrderEvent, OrderLine, OrderPaid, OrderSubmitted};
use orderflow_domain::{
    Actor, Address, BuyerId, DomainEvent, MerchantId, Money, Name, OrderNo, PaymentTxnId, Quantity,
    Shard, SkuId, Timestamp,
};
use orderflow_infra::store::{CommandId, CorrelationId, EventMetadata, Position, RecordedEvent};
use orderflow_projections::ProjectionModel;

/// 2026-11-22T00:00:00Z: the first order's time.
pub const T0: i64 = 1_795_305_600_000;
/// A buyer's list holds this many orders on average: one full default page.
pub const ORDERS_PER_BUYER: u64 = 20;
pub const MERCHANTS: i64 = 1_000;
/// Orders per `apply` call: big enough that a batch's round trips are amortised.
const BATCH_ORDERS: usize = 1_000;
/// Shards seeded at once (each applies to the three models at once).
const PARALLEL_SHARDS: usize = 4;

/// The data set of a run: which buyer and merchant own order `i`.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    pub orders: u64,
}

impl Dataset {
    pub fn buyers(&self) -> u64 {
        self.orders.div_ceil(ORDERS_PER_BUYER).max(1)
    }

    pub fn buyer_of(&self, i: u64) -> i64 {
        1 + (i % self.buyers()) as i64
    }

    pub fn order_no(&self, i: u64) -> OrderNo {
        let buyer = BuyerId::new(self.buyer_of(i)).expect("positive buyer id");
        OrderNo::new(Timestamp::from_millis(T0 + i as i64), 0, buyer).expect("order number")
    }

    /// The orders of `shard` (their buyers' shard), in order.
    fn orders_of(&self, shard: Shard) -> impl Iterator<Item = u64> + '_ {
        (0..self.orders).filter(move |&i| Shard::of_id(self.buyer_of(i) as u64) == shard)
    }

    /// Every event of `shard`'s orders, as recorded at positions 1, 2, … of the shard.
    pub fn shard_events(&self, shard: Shard) -> ShardEvents<'_> {
        ShardEvents {
            orders: Box::new(self.orders_of(shard)),
            dataset: *self,
            shard,
            head: 0,
        }
    }
}

/// The events of one shard, generated a batch at a time (a million orders' events would
/// not fit in memory comfortably).
pub struct ShardEvents<'a> {
    orders: Box<dyn Iterator<Item = u64> + Send + 'a>,
    dataset: Dataset,
    shard: Shard,
    head: u64,
}

impl ShardEvents<'_> {
    /// The next batch of up to `orders` orders' events; empty at the end.
    pub fn next_batch(&mut self, orders: usize) -> Vec<RecordedEvent> {
        let mut out = Vec::with_capacity(orders.min(BATCH_ORDERS) * 3);
        for i in self.orders.by_ref().take(orders) {
            for (version, event) in order_events(&self.dataset, i).into_iter().enumerate() {
                self.head += 1;
                out.push(record(
                    self.shard,
                    self.head,
                    &self.dataset.order_no(i),
                    version as u64 + 1,
                    event,
                ));
            }
        }
        out
    }
}

/// Order `i`'s life so far: submitted, created 5 ms later, paid 20 s later for every third.
pub(super) fn order_events(dataset: &Dataset, i: u64) -> Vec<OrderEvent> {
    let at = T0 + i as i64;
    let merchant = 1 + (i as i64 % MERCHANTS);
    let name = format!("dish {}", i % 97);
    let unit = 1_000 + (i % 50) as i64 * 100;
    let line = OrderLine {
        sku: SkuId::parse(format!("dish-{}", i % 97)).expect("sku"),
        name: Name::parse(&name).expect("name"),
        quantity: Quantity::new(2).expect("quantity"),
        unit_price: cny(unit),
    };
    let mut events = vec![
        OrderEvent::from(OrderSubmitted {
            order_no: dataset.order_no(i),
            buyer: BuyerId::new(dataset.buyer_of(i)).expect("buyer id"),
            merchant: MerchantId::new(merchant).expect("merchant id"),
            lines: vec![line],
            total: cny(2 * unit),
            address: Address::parse(&format!("{} Nanjing Road", 1 + i % 500), 31.24, 121.47)
                .expect("address"),
            at: Timestamp::from_millis(at),
        }),
        OrderEvent::from(OrderCreated {
            payment_deadline: Timestamp::from_millis(at + 900_000),
            at: Timestamp::from_millis(at + 5),
        }),
    ];
    if i % 3 == 0 {
        events.push(OrderEvent::from(OrderPaid {
            txn: PaymentTxnId::parse(format!("txn-{i}")).expect("txn id"),
            amount: cny(2 * unit),
            at: Timestamp::from_millis(at + 20_000),
        }));
    }
    events
}

fn cny(minor: i64) -> Money {
    Money::parse("CNY", minor).expect("valid money")
}

fn record(
    shard: Shard,
    position: u64,
    no: &OrderNo,
    stream_version: u64,
    event: OrderEvent,
) -> RecordedEvent {
    let at = Timestamp::from_millis(T0);
    RecordedEvent {
        shard,
        position: Position::new(position),
        stream: no.stream_id(),
        stream_version,
        event_id: uuid::Uuid::from_u64_pair(u64::from(shard.index()), position),
        event_type: event.event_type().to_owned(),
        event_version: event.event_version(),
        payload: event.encode().expect("order events encode"),
        metadata: EventMetadata {
            command_id: CommandId::parse(format!("seed-{}-{position}", shard.index()))
                .expect("command id"),
            correlation_id: CorrelationId::parse("bench-query-seed").expect("correlation id"),
            causation_id: None,
            actor: Actor::system("bench-seed"),
            occurred_at: at,
        },
        recorded_at: at,
    }
}

/// Applies every shard's events to every model, [`PARALLEL_SHARDS`] shards at a time.
/// Returns the events applied (each counted once, not once per model).
pub async fn seed(dataset: Dataset, models: &[Arc<dyn ProjectionModel>]) -> anyhow::Result<u64> {
    let shards: Vec<Shard> = Shard::all().collect();
    let mut applied = 0;
    for group in shards.chunks(PARALLEL_SHARDS) {
        let tasks = group.iter().map(|&shard| {
            let models = models.to_vec();
            tokio::spawn(async move { seed_shard(dataset, shard, &models).await })
        });
        for done in try_join_all(tasks).await? {
            applied += done?;
        }
    }
    Ok(applied)
}

async fn seed_shard(
    dataset: Dataset,
    shard: Shard,
    models: &[Arc<dyn ProjectionModel>],
) -> anyhow::Result<u64> {
    let mut events = dataset.shard_events(shard);
    let mut applied = 0;
    loop {
        let batch = events.next_batch(BATCH_ORDERS);
        if batch.is_empty() {
            return Ok(applied);
        }
        try_join_all(models.iter().map(|m| m.apply(shard, &batch))).await?;
        applied += batch.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use orderflow_infra::testing::TestDatabase;
    use orderflow_projections::orders::{
        ListSide, MemoryOrderDetail, MemoryOrderList, OrderDetailReader, OrderListReader, Owner,
        PgOrderDetail, PgOrderList,
    };

    use super::*;

    /// Given the bench's data set, when it is seeded in 1,000-order batches into the
    /// PostgreSQL adapters and the same events are applied one at a time (as a projector
    /// trailing a live log does) to the memory twins, then every order and every buyer's and
    /// merchant's list read the same, and each shard's checkpoint is its last event.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeding_gives_the_projectors_rows() {
        let dataset = Dataset { orders: 1_500 };
        let db = TestDatabase::create().await;
        orderflow_infra::migrate::run_url(&db.url).await.unwrap();
        let pool = db.pool(16);
        let (detail, buyers, sellers) = (
            Arc::new(PgOrderDetail::new(pool.clone())),
            Arc::new(PgOrderList::new(ListSide::Buyer, pool.clone())),
            Arc::new(PgOrderList::new(ListSide::Seller, pool.clone())),
        );
        let models: Vec<Arc<dyn ProjectionModel>> =
            vec![detail.clone(), buyers.clone(), sellers.clone()];
        let applied = seed(dataset, &models).await.unwrap();

        let memory_detail = MemoryOrderDetail::new();
        let memory_buyers = MemoryOrderList::new(ListSide::Buyer);
        let memory_sellers = MemoryOrderList::new(ListSide::Seller);
        let mut events = 0;
        for shard in Shard::all() {
            let all = dataset.shard_events(shard).next_batch(usize::MAX);
            for event in &all {
                let one = std::slice::from_ref(event);
                memory_detail.apply(shard, one).await.unwrap();
                memory_buyers.apply(shard, one).await.unwrap();
                memory_sellers.apply(shard, one).await.unwrap();
            }
            events += all.len() as u64;
            let last = all.last().map_or(Position::ZERO, |e| e.position);
            for model in &models {
                let saved = model.checkpoints().await.unwrap();
                assert_eq!(saved.get(&shard).copied().unwrap_or(Position::ZERO), last);
            }
        }
        assert_eq!(applied, events);
        assert_eq!(
            events,
            1_500 * 2 + 500,
            "submitted + created each, paid every third"
        );

        for i in 0..dataset.orders {
            let no = dataset.order_no(i);
            let pg = detail.get(&no).await.unwrap();
            assert!(pg.is_some(), "order {i} seeded");
            assert_eq!(pg, memory_detail.get(&no).await.unwrap(), "order {i}");
        }
        let owners = (1..=dataset.buyers() as i64)
            .map(|b| Owner::Buyer(BuyerId::new(b).unwrap()))
            .chain((1..=MERCHANTS).map(|m| Owner::Merchant(MerchantId::new(m).unwrap())));
        for owner in owners {
            let (pg, memory): (&dyn OrderListReader, &dyn OrderListReader) = match owner {
                Owner::Buyer(_) => (buyers.as_ref(), &memory_buyers),
                Owner::Merchant(_) => (sellers.as_ref(), &memory_sellers),
            };
            let pg = pg.list(owner, &[], None, 100).await.unwrap();
            let memory = memory.list(owner, &[], None, 100).await.unwrap();
            assert_eq!(pg.orders, memory.orders, "{owner:?}");
        }
        let page = buyers
            .list(Owner::Buyer(BuyerId::new(1).unwrap()), &[], None, 100)
            .await
            .unwrap();
        assert_eq!(page.orders.len() as u64, ORDERS_PER_BUYER);
    }
}
