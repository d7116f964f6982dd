//! The cases of the `stock_ledger` conformance suite.

use std::sync::Arc;

use orderflow_domain::sku::{
    DishDelisted, DishListed, ReleaseReason, ReservationState, SkuEvent, StockAdded, StockDeducted,
    StockReleased, StockReserved,
};
use orderflow_domain::{Name, OrderNo, Quantity, RestockQuantity, SkuId};
use orderflow_infra::store::Position;

use super::fixtures::*;
use crate::model::ProjectionModel;
use crate::stock::{StockReader, STOCK_LEDGER, STOCK_RESERVATION};

pub fn sku(id: &str) -> SkuId {
    SkuId::parse(id).expect("sku id")
}

impl Log {
    pub fn sku(&mut self, id: &str, event: impl Into<SkuEvent>) {
        self.record(&sku(id).stream_id(), event.into());
    }
}

pub fn listed(merchant_id: i64, name: &str, price: i64) -> DishListed {
    DishListed {
        merchant: merchant(merchant_id),
        name: Name::parse(name).expect("name"),
        price: cny(price),
        at: at(0),
    }
}

pub fn added(n: i64) -> StockAdded {
    StockAdded {
        quantity: RestockQuantity::new(n).expect("quantity"),
        at: at(1),
    }
}

pub fn reserved(no: &OrderNo, n: i64) -> StockReserved {
    StockReserved {
        order_no: no.clone(),
        quantity: Quantity::new(n).expect("quantity"),
        unit_price: cny(1800),
        expires_at: at(900_000),
        at: at(2),
    }
}

pub fn deducted(no: &OrderNo, n: i64) -> StockDeducted {
    StockDeducted {
        order_no: no.clone(),
        quantity: Quantity::new(n).expect("quantity"),
        at: at(3),
    }
}

pub fn released(no: &OrderNo, n: i64) -> StockReleased {
    StockReleased {
        order_no: no.clone(),
        quantity: Quantity::new(n).expect("quantity"),
        reason: ReleaseReason::OrderCancelled,
        at: at(4),
    }
}

/// `latte` of merchant 7: 10 added; order 1 reserves 3 and pays; order 2 reserves 2 and
/// cancels; order 3 reserves 1 and still holds it.
fn latte_day(log: &mut Log) -> [OrderNo; 3] {
    let orders = [order_no(10, 1), order_no(20, 2), order_no(30, 3)];
    log.sku("latte", listed(7, "Latte", 1800));
    log.sku("latte", added(10));
    log.sku("latte", reserved(&orders[0], 3));
    log.sku("latte", reserved(&orders[1], 2));
    log.sku("latte", deducted(&orders[0], 3));
    log.sku("latte", released(&orders[1], 2));
    log.sku("latte", reserved(&orders[2], 1));
    orders
}

pub async fn stock_ledger_counts_every_movement<M>(model: Arc<M>)
where
    M: ProjectionModel + StockReader,
{
    // Given a day of a sku, and another merchant's dish, delisted
    let mut log = Log::new();
    let orders = latte_day(&mut log);
    log.sku("tea", listed(8, "Tea", 900));
    log.sku("tea", DishDelisted { at: at(5) });
    // When it is projected in small batches
    log.apply_to(model.as_ref(), 2).await;
    // Then the ledger has every movement and keeps its identity
    let row = model
        .stock(&sku("latte"))
        .await
        .unwrap()
        .expect("projected");
    assert_eq!(
        (
            row.added,
            row.available,
            row.reserved,
            row.deducted,
            row.released
        ),
        (10, 6, 1, 3, 2)
    );
    assert!(row.is_consistent());
    assert_eq!(
        (row.merchant, row.price, row.listed),
        (merchant(7), cny(1800), true)
    );
    assert_eq!(row.name.as_str(), "Latte");
    // And each order's reservation has its state
    let page = model
        .reservations(&sku("latte"), None, None, 10)
        .await
        .unwrap();
    let states: Vec<_> = page
        .reservations
        .iter()
        .map(|r| (r.order_no.clone(), r.quantity, r.state))
        .collect();
    assert_eq!(
        states,
        [
            (orders[0].clone(), 3, ReservationState::Deducted),
            (orders[1].clone(), 2, ReservationState::Released),
            (orders[2].clone(), 1, ReservationState::Reserved),
        ]
    );
    assert_eq!(page.reservations[2].expires_at, at(900_000));
    // And a merchant's menu holds only its skus, delisted ones flagged
    let menu = model.merchant_stock(merchant(8)).await.unwrap();
    assert_eq!(menu.len(), 1);
    assert!(!menu[0].listed);
    assert!(model.stock(&sku("never")).await.unwrap().is_none());
}

pub async fn stock_ledger_repeated_batches_change_nothing<M>(model: Arc<M>)
where
    M: ProjectionModel + StockReader,
{
    // Given the day projected once
    let mut log = Log::new();
    latte_day(&mut log);
    log.apply_to(model.as_ref(), 3).await;
    let before = model.stock(&sku("latte")).await.unwrap();
    // When every batch is delivered again, whole and overlapping
    let shard = sku("latte").stream_id().shard();
    let events = log.shard(shard);
    let again = model.apply(shard, &events).await.unwrap();
    let overlap = model.apply(shard, &events[4..]).await.unwrap();
    // Then nothing changed and nothing is published again
    assert!(again.changes.is_empty() && overlap.changes.is_empty());
    assert_eq!(model.stock(&sku("latte")).await.unwrap(), before);
    let page = model
        .reservations(&sku("latte"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(page.reservations.len(), 3);
}

pub async fn stock_ledger_publishes_rows_and_moves_checkpoints<M>(model: Arc<M>)
where
    M: ProjectionModel + StockReader,
{
    // Given the day of one sku
    let mut log = Log::new();
    latte_day(&mut log);
    let shard = sku("latte").stream_id().shard();
    // When its shard is applied in one batch
    let outcome = model.apply(shard, &log.shard(shard)).await.unwrap();
    // Then one ledger change (its last state) and one change per reservation are published
    let ledger: Vec<_> = outcome
        .changes
        .iter()
        .filter(|c| c.view == STOCK_LEDGER)
        .collect();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].key, "latte");
    assert_eq!(ledger[0].position, Position::new(7));
    assert_eq!(ledger[0].row.as_ref().unwrap().to_value()["available"], 6);
    let reservations = outcome
        .changes
        .iter()
        .filter(|c| c.view == STOCK_RESERVATION)
        .count();
    assert_eq!(reservations, 3);
    // And only that shard's checkpoint moved
    let checkpoints = model.checkpoints().await.unwrap();
    assert_eq!(checkpoints.get(&shard), Some(&Position::new(7)));
    assert_eq!(checkpoints.values().filter(|p| p.get() > 0).count(), 1);
}

pub async fn stock_ledger_pages_reservations_by_state<M>(model: Arc<M>)
where
    M: ProjectionModel + StockReader,
{
    // Given 5 reservations of one sku, the 2nd and 4th deducted
    let mut log = Log::new();
    log.sku("latte", listed(7, "Latte", 1800));
    log.sku("latte", added(100));
    let orders: Vec<OrderNo> = (1..=5).map(|i| order_no(i * 10, i)).collect();
    for no in &orders {
        log.sku("latte", reserved(no, 1));
    }
    log.sku("latte", deducted(&orders[1], 1));
    log.sku("latte", deducted(&orders[3], 1));
    log.apply_to(model.as_ref(), 4).await;
    // When they are walked two at a time
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = model
            .reservations(&sku("latte"), None, after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.reservations.len() <= 2);
        seen.extend(page.reservations.iter().map(|r| r.order_no.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // Then every one is seen once, in order-number order
    let mut sorted = orders.clone();
    sorted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(seen, sorted);
    // And a state filter keeps only that state
    let deducted = model
        .reservations(&sku("latte"), Some(ReservationState::Deducted), None, 10)
        .await
        .unwrap();
    let nos: Vec<_> = deducted
        .reservations
        .iter()
        .map(|r| r.order_no.clone())
        .collect();
    assert_eq!(nos, [orders[1].clone(), orders[3].clone()]);
    let held = model
        .reservations(&sku("latte"), Some(ReservationState::Reserved), None, 2)
        .await
        .unwrap();
    assert_eq!(held.reservations.len(), 2);
    assert!(held.next.is_some());
    // And another sku has none
    let none = model
        .reservations(&sku("tea"), None, None, 10)
        .await
        .unwrap();
    assert!(none.reservations.is_empty() && none.next.is_none());
}
