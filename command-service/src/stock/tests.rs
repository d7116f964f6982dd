//! The single writer's promises: never oversell under a crowd, recover from another writer,
//! keep command-id idempotency across restarts, drop idle writers.

use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::sku::{ReleaseReason, SkuCommand, SkuEvent};
use orderflow_domain::{
    Actor, BuyerId, MerchantId, Money, Name, OrderNo, Quantity, RestockQuantity, Role, SkuId,
    Timestamp,
};
use orderflow_infra::store::{CommandId, CorrelationId, EventStore, MemoryEventStore};

use super::*;

fn meta(id: &str) -> CommandMeta {
    CommandMeta {
        command_id: CommandId::parse(id).unwrap(),
        correlation_id: CorrelationId::parse("corr").unwrap(),
        causation_id: None,
        actor: Actor::new(Role::Merchant, "7"),
        at: Timestamp::from_millis(1_000),
    }
}

fn merchant() -> MerchantId {
    MerchantId::new(7).unwrap()
}

fn price() -> Money {
    Money::parse("CNY", 1_500).unwrap()
}

fn order(n: u32) -> OrderNo {
    OrderNo::new(Timestamp::from_millis(1_000), n, BuyerId::new(5).unwrap()).unwrap()
}

fn reserve(n: u32) -> SkuCommand {
    SkuCommand::Reserve {
        order_no: order(n),
        merchant: merchant(),
        quantity: Quantity::new(1).unwrap(),
        unit_price: price(),
        expires_at: Timestamp::from_millis(100_000),
        at: Timestamp::from_millis(1_000),
    }
}

async fn stocked(writers: &StockWriters, sku: &SkuId, units: i64) {
    let list = SkuCommand::List {
        merchant: merchant(),
        name: Name::parse("flash latte").unwrap(),
        price: price(),
        at: Timestamp::from_millis(0),
    };
    writers.execute(sku, list, &meta("list")).await.unwrap();
    let restock = SkuCommand::Restock {
        merchant: merchant(),
        quantity: RestockQuantity::new(units).unwrap(),
        at: Timestamp::from_millis(0),
    };
    writers
        .execute(sku, restock, &meta("restock"))
        .await
        .unwrap();
}

fn setup() -> (StockWriters, Arc<MemoryEventStore>, SkuId) {
    let store = Arc::new(MemoryEventStore::new());
    let writers = StockWriters::new(Executor::new(store.clone()));
    (writers, store, SkuId::parse("latte").unwrap())
}

fn assert_identity(state: &SkuState) {
    let s = state.stock();
    assert_eq!(s.added, s.available + s.reserved + s.deducted, "{s:?}");
    assert!(s.available >= 0, "{s:?}");
}

#[tokio::test]
async fn two_thousand_concurrent_reserves_take_exactly_the_stock() {
    let (writers, store, sku) = setup();
    stocked(&writers, &sku, 500).await;
    let tasks: Vec<_> = (0..2_000)
        .map(|n| {
            let (writers, sku) = (writers.clone(), sku.clone());
            tokio::spawn(async move {
                writers
                    .execute(&sku, reserve(n), &meta(&format!("r{n}")))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(done) => {
                assert_eq!(done.events.len(), 1);
                ok += 1;
            }
            Err(CommandError::Refused { reason, .. }) => {
                assert_eq!(reason, Some(orderflow_domain::FailureReason::OutOfStock));
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 500);
    let state = writers.state(&sku).await.unwrap();
    assert_eq!(state.stock().available, 0);
    assert_eq!(state.stock().reserved, 500);
    assert_identity(&state);
    // The stream agrees with what callers were told.
    let stored = store
        .read_stream(&sku.stream_id(), 1, 10_000)
        .await
        .unwrap();
    let reserved = stored
        .iter()
        .filter(|e| e.event_type == "StockReserved")
        .count();
    assert_eq!(reserved, 500);
}

#[tokio::test]
async fn a_conflict_from_a_second_writer_is_recovered() {
    let store = Arc::new(MemoryEventStore::new());
    let a = StockWriters::new(Executor::new(store.clone()));
    let b = StockWriters::new(Executor::new(store.clone()));
    let sku = SkuId::parse("latte").unwrap();
    stocked(&a, &sku, 100).await;
    // b learns of the sku after a built its state, then writes behind a's back.
    b.execute(&sku, reserve(10_000), &meta("b-first"))
        .await
        .unwrap();
    // a's next append conflicts: it must reload and decide again, not fail.
    a.execute(&sku, reserve(0), &meta("a-0")).await.unwrap();

    // Both crowds at once, on a sku with 100 units, 2 taken already: exactly 98 more.
    let mut tasks = Vec::new();
    for n in 1..150u32 {
        for (w, writers) in [("a", a.clone()), ("b", b.clone())] {
            let sku = sku.clone();
            tasks.push(tokio::spawn(async move {
                let order = if w == "a" { n } else { 10_000 + n };
                writers
                    .execute(&sku, reserve(order), &meta(&format!("{w}-{n}")))
                    .await
            }));
        }
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CommandError::Refused { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 98);
    let fresh = StockWriters::new(Executor::new(store.clone()));
    let state = fresh.state(&sku).await.unwrap();
    assert_eq!(state.stock().reserved, 100);
    assert_identity(&state);
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_first_answer_even_after_a_restart() {
    let (writers, store, sku) = setup();
    stocked(&writers, &sku, 5).await;
    let first = writers
        .execute(&sku, reserve(1), &meta("saga:reserve:1"))
        .await
        .unwrap();
    let release = SkuCommand::Release {
        order_no: order(1),
        reason: ReleaseReason::OrderFailed,
        at: Timestamp::from_millis(2_000),
    };
    writers
        .execute(&sku, release, &meta("saga:release:1"))
        .await
        .unwrap();
    // Deciding again would refuse (the reservation is released): the first answer wins.
    let again = writers
        .execute(&sku, reserve(1), &meta("saga:reserve:1"))
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(
        (again.events, again.token),
        (first.events.clone(), first.token)
    );

    let restarted = StockWriters::new(Executor::new(store.clone()));
    let after = restarted
        .execute(&sku, reserve(1), &meta("saga:reserve:1"))
        .await
        .unwrap();
    assert!(after.deduplicated);
    assert_eq!(after.events, first.events);
    assert!(matches!(after.events[0], SkuEvent::Reserved(_)));
    // The same id twice in one batch appends once.
    let twice = restarted
        .execute_many(vec![
            (sku.clone(), reserve(2), meta("saga:reserve:2")),
            (sku.clone(), reserve(2), meta("saga:reserve:2")),
        ])
        .await;
    assert!(!twice[0].as_ref().unwrap().deduplicated);
    assert!(twice[1].as_ref().unwrap().deduplicated);
    let stored = store.read_stream(&sku.stream_id(), 1, 100).await.unwrap();
    assert_eq!(stored.len(), 5, "list, restock, reserve, release, reserve");
}

#[tokio::test]
async fn an_idle_writer_is_dropped_and_comes_back_on_demand() {
    let store = Arc::new(MemoryEventStore::new());
    let config = StockConfig {
        idle: Duration::from_millis(50),
        ..StockConfig::default()
    };
    let writers = StockWriters::with_config(Executor::new(store), config);
    let sku = SkuId::parse("latte").unwrap();
    stocked(&writers, &sku, 3).await;
    assert_eq!(writers.running(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(writers.running(), 0);
    writers
        .execute(&sku, reserve(1), &meta("r1"))
        .await
        .unwrap();
    assert_eq!(writers.state(&sku).await.unwrap().stock().available, 2);
}

#[tokio::test]
async fn the_shelf_is_the_states_listing_and_stock_and_none_before_the_first_list() {
    let (writers, _store, sku) = setup();
    assert_eq!(writers.shelf(&sku).await.unwrap(), None);
    stocked(&writers, &sku, 3).await;
    writers
        .execute(&sku, reserve(1), &meta("r1"))
        .await
        .unwrap();
    let shelf = writers.shelf(&sku).await.unwrap().expect("listed");
    assert_eq!(shelf.listing.name.as_str(), "flash latte");
    let state = writers.state(&sku).await.unwrap();
    assert_eq!(Some(&shelf.listing), state.listing());
    assert_eq!(shelf.available, state.stock().available);
}
