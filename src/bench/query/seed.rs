//! A read model of N orders, fast: each order's events (`OrderSubmitted`, `OrderCreated`, and
//! `OrderPaid` for every third) are generated as the store would have recorded them, per
//! shard in position order, folded into views by the projections' own fold, and written with
//! COPY into `order_detail`, `buyer_order` and `seller_order`, with the checkpoints the
//! projectors would have saved (`orderflow_projections::orders::bulk_pg`). The command path
//! (deciding, appending) is skipped, which would take hours at a million orders on this
//! machine; so is the projectors' upsert path, which took ~17 minutes (about 1,000 orders/s)
//! where COPY takes a minute or two. The test below checks COPY's rows against the upserts'.
//!
//! Orders are spread over `orders / ORDERS_PER_BUYER` buyers and [`MERCHANTS`] merchants;
//! order `i` is numbered at `T0 + i` ms, so every number is distinct and newest-first lists
//! have a stable order.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use deadpool_postgres::Pool;
use orderflow_domain::order::{OrderCreated, OrderEvent, OrderLine, OrderPaid, OrderSubmitted};
use orderflow_domain::{
    Actor, Address, BuyerId, DomainEvent, MerchantId, Money, Name, OrderNo, PaymentTxnId, Quantity,
    Shard, SkuId, Timestamp,
};
use orderflow_infra::store::{CommandId, CorrelationId, EventMetadata, Position, RecordedEvent};
use orderflow_projections::orders::{
    advance_checkpoints, copy_views, fold_new_orders, LoadRow, OrderTable,
};
use tokio::sync::mpsc;

/// 2026-11-22T00:00:00Z: the first order's time.
pub const T0: i64 = 1_795_305_600_000;
/// A buyer's list holds this many orders on average: one full default page.
pub const ORDERS_PER_BUYER: u64 = 20;
pub const MERCHANTS: i64 = 1_000;
/// Orders per COPY (and per transaction): big enough to amortise a transaction, small
/// enough that three tables' chunks in flight stay a few tens of MB.
const CHUNK_ORDERS: usize = 10_000;
/// Threads generating and folding events.
const PRODUCERS: usize = 2;

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
        let mut out = Vec::with_capacity(orders.min(CHUNK_ORDERS) * 3);
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
        payload: event.encode().expect("order events encode").into(),
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

/// Seeds the three order views with COPY: a producer generates each shard's events, folds
/// them into views with the projections' fold ([`fold_new_orders`]) and hands each chunk to
/// one writer per table, which copies it in (one transaction per chunk); then every
/// projection's checkpoint of each shard moves to the shard's last event, as the projectors'
/// batches would have left it. Returns the events folded.
pub async fn seed(dataset: Dataset, pool: &Pool) -> anyhow::Result<u64> {
    let mut sinks = Vec::new();
    let mut writers = Vec::new();
    for table in OrderTable::ALL {
        // Two chunks in flight per table: the producer folds the next while the writers copy.
        let (tx, rx) = mpsc::channel::<Arc<Vec<LoadRow>>>(2);
        sinks.push(tx);
        let pool = pool.clone();
        writers.push(tokio::spawn(copy_chunks(pool, table, rx)));
    }
    // Folding and serializing cost about as much CPU as PostgreSQL's side of the COPY: two
    // producers (even and odd shards) keep both cores busy.
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let sinks = sinks.clone();
            let shards: Vec<Shard> = Shard::all()
                .filter(|s| usize::from(s.index()) % PRODUCERS == p)
                .collect();
            tokio::task::spawn_blocking(move || produce(dataset, &shards, sinks))
        })
        .collect();
    drop(sinks);
    let (mut events, mut last) = (0, HashMap::new());
    let mut failed = None;
    for producer in producers {
        match producer.await? {
            Ok((n, positions)) => {
                events += n;
                last.extend(positions);
            }
            Err(e) => failed = Some(e),
        }
    }
    // A writer that failed closed its channel; its error says more than a producer's.
    for w in writers {
        w.await??;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    for table in OrderTable::ALL {
        advance_checkpoints(&tx, table, &last).await?;
    }
    tx.commit().await?;
    Ok(events)
}

/// Generates and folds every shard's orders, a chunk at a time, and sends each chunk to every
/// writer. Returns the events folded and each shard's last position.
fn produce(
    dataset: Dataset,
    shards: &[Shard],
    sinks: Vec<mpsc::Sender<Arc<Vec<LoadRow>>>>,
) -> anyhow::Result<(u64, HashMap<Shard, Position>)> {
    let mut events = 0;
    let mut last = HashMap::new();
    for &shard in shards {
        let mut shard_events = dataset.shard_events(shard);
        loop {
            let batch = shard_events.next_batch(CHUNK_ORDERS);
            let Some(end) = batch.last() else { break };
            last.insert(shard, end.position);
            events += batch.len() as u64;
            let views = fold_new_orders(&batch)?
                .into_iter()
                .map(LoadRow::new)
                .collect::<Result<Vec<_>, _>>()?;
            let views = Arc::new(views);
            for sink in &sinks {
                sink.blocking_send(views.clone())
                    .map_err(|_| anyhow::anyhow!("a seed writer stopped"))?;
            }
        }
    }
    Ok((events, last))
}

async fn copy_chunks(
    pool: Pool,
    table: OrderTable,
    mut chunks: mpsc::Receiver<Arc<Vec<LoadRow>>>,
) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    while let Some(views) = chunks.recv().await {
        let tx = client.transaction().await?;
        copy_views(&tx, table, &views)
            .await
            .with_context(|| format!("copying into {}", table.name()))?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
