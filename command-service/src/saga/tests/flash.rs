//! The flash sale: one SKU, far more buyers than units, all at once. In process and on
//! Postgres + NATS; plus an ignored, bounded throughput run that prints orders/s.
//!
//! ```text
//! cargo test -p orderflow-command-service --release --lib flash_sale_throughput -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_infra::bus::{EventBus, PgCheckpointStore};
use orderflow_infra::store::{EventStore, PgEventStore, PgStoreConfig, ShardMap};
use orderflow_infra::testing::TestDatabase;

use super::*;

/// Submits `orders` one-line orders for `flash` from `buyers` concurrent tasks.
async fn submit_crowd(w: &World, orders: u32, buyers: u32) -> Duration {
    let started = Instant::now();
    let w = Arc::new((w.executor.clone(), w.store.clone()));
    let tasks: Vec<_> = (0..buyers)
        .map(|b| {
            let w = w.clone();
            tokio::spawn(async move {
                let executor = &w.0;
                let mut n = b;
                while n < orders {
                    let buyer = BuyerId::new(i64::from(n % 997) + 1).unwrap();
                    let order_no = OrderNo::new(Timestamp::from_millis(T0), n, buyer).unwrap();
                    let submit = OrderCommand::Submit {
                        order_no: order_no.clone(),
                        buyer,
                        merchant: merchant(1),
                        lines: vec![line("flash", 1, 990)],
                        address: Address::parse("1 Chang'an Ave", 31.2, 121.4).unwrap(),
                        at: Timestamp::from_millis(T0),
                        refused: None,
                    };
                    executor
                        .execute::<Order>(&order_no.stream_id(), &submit, &meta(format!("s-{n}")))
                        .await
                        .unwrap();
                    n += buyers;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// When the saga starts relative to the crowd.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Saga running while buyers submit (the real thing).
    Before,
    /// Every submission stored first, then the saga: measures the saga alone.
    After,
}

/// Runs a flash sale on `w` and checks the outcome; returns (submit time, time from the
/// first submit, or from the saga's start with `Start::After`, until every order resolved).
async fn flash_sale(
    w: &World,
    units: i64,
    orders: u32,
    buyers: u32,
    start: Start,
) -> (Duration, Duration) {
    w.open_merchant(1).await;
    w.dish(1, "flash", 990, units).await;
    let mut saga = (start == Start::Before).then(|| w.run(w.saga()));
    let mut started = Instant::now();
    let submitting = submit_crowd(w, orders, buyers).await;
    if saga.is_none() {
        started = Instant::now();
        saga = Some(w.run(w.saga()));
    }
    let (created, failed) = w
        .wait_outcomes(orders as usize, Duration::from_secs(120))
        .await;
    let resolved = started.elapsed();
    if let Some(saga) = saga {
        saga.stop().await.unwrap();
    }
    assert_eq!(created, units as usize, "created; failed: {failed:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed.get("OUT_OF_STOCK").copied(),
        Some(orders as usize - units as usize)
    );
    let state = w.sku_state("flash").await;
    assert_identity(&state);
    assert_eq!(
        (state.stock().available, state.stock().reserved),
        (0, units)
    );
    (submitting, resolved)
}

#[tokio::test]
async fn flash_sale_in_process_creates_exactly_the_stock() {
    let w = World::memory().await;
    flash_sale(&w, 1_000, 5_000, 64, Start::Before).await;
    w.shutdown().await;
}

/// Postgres event store and checkpoints, NATS JetStream bus, each unique to this test.
async fn pg_nats_world() -> (World, orderflow_infra::bus::NatsBus, PgEventStore) {
    let db = TestDatabase::create().await;
    let store = PgEventStore::connect(PgStoreConfig {
        pool_size: 8,
        writers_per_database: 2,
        ..PgStoreConfig::new(ShardMap::single(&db.url))
    })
    .await
    .expect("postgres store");
    let nats = orderflow_infra::testing::bus::nats_bus().await;
    let checkpoints = Arc::new(PgCheckpointStore::new(db.pool(4)));
    let bus: Arc<dyn EventBus> = Arc::new(nats.clone());
    let w = World::start(
        Arc::new(store.clone()) as Arc<dyn EventStore>,
        bus,
        checkpoints,
    );
    (w, nats, store)
}

#[tokio::test]
async fn flash_sale_on_postgres_and_nats_creates_exactly_the_stock() {
    let (w, nats, store) = pg_nats_world().await;
    let (submit, resolve) = flash_sale(&w, 1_000, 5_000, 64, Start::Before).await;
    eprintln!("pg+nats flash sale: 5,000 submits in {submit:?}, all resolved in {resolve:?}");
    w.shutdown().await;
    store.shutdown().await;
    let _ = nats.delete_streams().await;
}

/// Bounded throughput run: 10,000 units, 50,000 orders, 256 buyers, on Postgres + NATS and
/// in process. Prints submits/s and orders resolved/s.
#[tokio::test]
#[ignore = "throughput measurement; run in release with --nocapture"]
async fn flash_sale_throughput() {
    const UNITS: i64 = 10_000;
    const ORDERS: u32 = 50_000;
    const BUYERS: u32 = 256;
    let report = |label: &str, (submit, resolve): (Duration, Duration)| {
        eprintln!(
            "{label}: {ORDERS} submits in {:.2}s ({:.0}/s); resolved in {:.2}s ({:.0} orders/s)",
            submit.as_secs_f64(),
            f64::from(ORDERS) / submit.as_secs_f64(),
            resolve.as_secs_f64(),
            f64::from(ORDERS) / resolve.as_secs_f64(),
        );
    };
    for start in [Start::Before, Start::After] {
        let mode = match start {
            Start::Before => "saga during the submits",
            Start::After => "saga alone, after the submits",
        };
        let w = World::memory().await;
        let figures = flash_sale(&w, UNITS, ORDERS, BUYERS, start).await;
        report(&format!("in process, {mode}"), figures);
        w.shutdown().await;

        let (w, nats, store) = pg_nats_world().await;
        let figures = flash_sale(&w, UNITS, ORDERS, BUYERS, start).await;
        report(&format!("postgres + nats, {mode}"), figures);
        w.shutdown().await;
        store.shutdown().await;
        let _ = nats.delete_streams().await;
    }
}
