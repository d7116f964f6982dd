//! What the PostgreSQL projection tests share: a random but reproducible workload of every
//! stream the read models follow, appended to a store, and the rows and checkpoints of a
//! database to compare.
// Each test binary uses its part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use deadpool_postgres::Pool;

use orderflow_domain::order::OrderCancelled;
use orderflow_domain::rider::{RiderEvent, RiderLocationReported, RiderWentOnline};
use orderflow_domain::sku::{
    DishListed, ReleaseReason, SkuEvent, StockAdded, StockDeducted, StockReleased, StockReserved,
};
use orderflow_domain::{
    Capacity, GeoPoint, Name, Quantity, RestockQuantity, RiderId, SkuId, StreamId,
};
use orderflow_infra::migrate;
use orderflow_infra::store::{
    AppendRequest, CommandId, EventStore, ExpectedVersion, NewEvent, PgEventStore, PgStoreConfig,
    RecordedEvent, ShardMap,
};
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::testing::fixtures::{self, Log};

/// A small deterministic generator (xorshift64*): the workload is random but reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Valid domain events for `orders` orders (random buyers, merchants and lifecycles) and
/// their merchants, as the store would take them.
pub fn workload(rng: &mut Rng, round: i64, orders: i64) -> Log {
    const DISHES: [&str; 4] = ["Beef Noodles", "Dumplings", "Mapo Tofu", "Fried Rice"];
    let mut log = Log::new();
    for m in 1..=6 {
        let merchant = fixtures::merchant(m);
        if round == 0 {
            log.merchant(merchant, fixtures::opened(&format!("Kitchen {m}")));
        } else if rng.below(2) == 0 {
            log.merchant(
                merchant,
                fixtures::renamed(&format!("Kitchen {m} r{round}")),
            );
        }
    }
    // The stock ledger, the catalog's menus and the rider index need their own streams: every
    // dish listed and stocked once, riders online and moving each round.
    if round == 0 {
        for dish in DISHES {
            sku(
                &mut log,
                dish,
                DishListed {
                    merchant: fixtures::merchant(1),
                    name: Name::parse(dish).expect("name"),
                    price: fixtures::cny(2800),
                    at: fixtures::at(0),
                },
            );
            sku(
                &mut log,
                dish,
                StockAdded {
                    quantity: RestockQuantity::new(1_000_000).expect("quantity"),
                    at: fixtures::at(0),
                },
            );
        }
    }
    for r in 1..=8 {
        let rider = RiderId::new(r).expect("rider id");
        let location =
            GeoPoint::new(31.2 + rng.below(100) as f64 / 1_000.0, 121.47).expect("location");
        let event: RiderEvent = if round == 0 {
            RiderWentOnline {
                location,
                capacity: Capacity::new(3).expect("capacity"),
                at: fixtures::at(round * 10_000_000),
            }
            .into()
        } else {
            RiderLocationReported {
                location,
                at: fixtures::at(round * 10_000_000),
            }
            .into()
        };
        log.record(&rider.stream_id(), event);
    }
    for i in 0..orders {
        let offset = round * 10_000_000 + i * 1_000;
        let buyer = 1 + rng.below(200) as i64;
        let no = fixtures::order_no(offset, buyer);
        let dish = DISHES[rng.below(4) as usize];
        let merchant = 1 + rng.below(6) as i64;
        let address = format!("{} Huaihai Road", 1 + rng.below(999));
        log.order(
            &no,
            fixtures::submitted(&no, buyer, merchant, dish, &address, offset),
        );
        let outcome = rng.below(6);
        if outcome >= 2 {
            sku(
                &mut log,
                dish,
                StockReserved {
                    order_no: no.clone(),
                    quantity: two(),
                    unit_price: fixtures::cny(2800),
                    expires_at: fixtures::at(offset + 600_000),
                    at: fixtures::at(offset + 3),
                },
            );
            match outcome {
                2 => {}
                4 => sku(
                    &mut log,
                    dish,
                    StockReleased {
                        order_no: no.clone(),
                        quantity: two(),
                        reason: ReleaseReason::OrderCancelled,
                        at: fixtures::at(offset + 10),
                    },
                ),
                _ => sku(
                    &mut log,
                    dish,
                    StockDeducted {
                        order_no: no.clone(),
                        quantity: two(),
                        at: fixtures::at(offset + 10),
                    },
                ),
            }
        }
        match outcome {
            0 => {}
            1 => {
                log.order(&no, fixtures::failed(offset + 5));
            }
            2 => {
                log.order(&no, fixtures::created(offset + 5));
            }
            3 => {
                log.order(&no, fixtures::created(offset + 5));
                log.order(&no, fixtures::paid(offset + 9));
            }
            4 => {
                log.order(&no, fixtures::created(offset + 5));
                log.order(
                    &no,
                    OrderCancelled {
                        cause: fixtures::buyer_cancel(),
                        at: fixtures::at(offset + 9),
                    },
                );
            }
            _ => fixtures::late_delivery(&mut log, &no, 1 + rng.below(50) as i64),
        }
    }
    log
}

/// Records a stock event on the stream of `dish`'s sku (the id `submitted` puts on the line).
fn sku(log: &mut Log, dish: &str, event: impl Into<SkuEvent>) {
    let id = SkuId::parse(dish.to_lowercase().replace(' ', "-")).expect("sku");
    log.record(&id.stream_id(), event.into());
}

fn two() -> Quantity {
    Quantity::new(2).expect("quantity")
}

/// Appends the log's events, one append per event, streams interleaved at random (each
/// stream's own order kept).
pub async fn append(store: &dyn EventStore, rng: &mut Rng, log: Log) {
    let mut streams: HashMap<StreamId, VecDeque<RecordedEvent>> = HashMap::new();
    for e in log.events {
        streams.entry(e.stream.clone()).or_default().push_back(e);
    }
    let mut queues: Vec<VecDeque<RecordedEvent>> = streams.into_values().collect();
    let mut requests = Vec::new();
    while !queues.is_empty() {
        let i = rng.below(queues.len() as u64) as usize;
        let e = queues[i].pop_front().expect("non-empty queue");
        if queues[i].is_empty() {
            queues.swap_remove(i);
        }
        let mut metadata = e.metadata.clone();
        metadata.command_id = CommandId::random();
        requests.push(AppendRequest {
            stream: e.stream.clone(),
            // Merchant, sku and rider streams get events in several rounds of separate logs.
            expected: if e.stream.category() != "order" {
                ExpectedVersion::Any
            } else {
                ExpectedVersion::Exact(e.stream_version - 1)
            },
            events: vec![NewEvent::new(e.event_type, e.event_version, e.payload)],
            metadata,
        });
    }
    for chunk in requests.chunks(64) {
        for outcome in store.append_many(chunk.to_vec()).await {
            outcome.expect("append");
        }
    }
}

/// Every row of `schema.table` (a partitioned table: all its partitions), as JSON text, sorted.
pub async fn rows(pool: &deadpool_postgres::Pool, schema: &str, table: &str) -> Vec<String> {
    let client = pool.get().await.expect("client");
    client
        .query(
            &format!("SELECT to_jsonb(t)::text FROM \"{schema}\".\"{table}\" t ORDER BY 1"),
            &[],
        )
        .await
        .expect("rows")
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

/// A projection's checkpoints in `schema`.
pub async fn checkpoints(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    name: &str,
) -> Vec<(i16, i64)> {
    let client = pool.get().await.expect("client");
    client
        .query(
            &format!(
                "SELECT shard, position FROM \"{schema}\".checkpoints
                 WHERE name = $1 AND position > 0 ORDER BY shard"
            ),
            &[&format!("projection:{name}")],
        )
        .await
        .expect("checkpoints")
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `database` migrated, and a pool of `size` connections on it.
pub async fn migrated(database: &TestDatabase, size: usize) -> Pool {
    let pool = database.pool(size);
    migrate::run(&pool, migrate::MIGRATIONS)
        .await
        .expect("migrations apply");
    pool
}

/// An event store of one database holding every shard.
pub async fn store_on(database: &TestDatabase) -> Arc<PgEventStore> {
    Arc::new(
        PgEventStore::connect(PgStoreConfig::new(ShardMap::single(database.url.clone())))
            .await
            .expect("store"),
    )
}

/// Appends a random workload of `orders` orders, a thousand per round (merchants renamed and
/// riders moved each round).
pub async fn feed_rounds(store: &dyn EventStore, rng: &mut Rng, orders: i64) {
    for round in 0..(orders + 999) / 1_000 {
        let log = workload(rng, round, 1_000.min(orders - round * 1_000));
        append(store, rng, log).await;
    }
}
