//! The reaper: a reservation still held at its expiry is settled from its order's state.

use orderflow_domain::sku::{ReleaseReason, ReservationState, SkuEvent};

use super::*;

async fn reservation_state(h: &Harness, order: &OrderNo) -> ReservationState {
    h.sku_state()
        .await
        .reservation(order)
        .expect("reservation")
        .state
}

#[tokio::test]
async fn the_reservation_of_a_paid_order_is_deducted_once() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.pay(&order).await;
    h.caught_up().await;
    let firer = h.firer();
    let expiry = after(h.config.reservation_ttl);

    firer.tick(expiry.minus_ms(1)).await.unwrap();
    assert_eq!(
        reservation_state(&h, &order).await,
        ReservationState::Reserved
    );
    assert_eq!(firer.tick(expiry).await.unwrap(), 1);
    assert_eq!(
        reservation_state(&h, &order).await,
        ReservationState::Deducted
    );
    let version = h.sku_version().await;
    assert_eq!(firer.tick(expiry).await.unwrap(), 0);
    assert_eq!(h.sku_version().await, version);
    assert_eq!(h.sku_state().await.stock().deducted, 2);
}

#[tokio::test]
async fn the_reservation_of_a_cancelled_order_is_released_as_expired() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.caught_up().await;
    let firer = h.firer();
    // The payment deadline cancels it; nobody released the stock (the saga is elsewhere).
    firer.tick(after(h.config.payment_window)).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::Cancelled));
    firer.tick(after(h.config.reservation_ttl)).await.unwrap();
    assert_eq!(
        reservation_state(&h, &order).await,
        ReservationState::Released
    );

    let recorded = h
        .events
        .read_stream(&sku().stream_id(), 1, 100)
        .await
        .unwrap();
    let last = decode::<Sku>(recorded.last().unwrap()).unwrap();
    assert!(
        matches!(&last, SkuEvent::Released(e) if e.reason == ReleaseReason::Expired),
        "{last:?}"
    );
    assert_eq!(
        recorded.last().unwrap().metadata.command_id.as_str(),
        format!("deadline:reservation:{order}:release")
    );
    let stock = h.sku_state().await.stock();
    assert_eq!((stock.available, stock.reserved), (1_000, 0));
}

#[tokio::test]
async fn the_reservation_of_a_pending_order_is_looked_at_again_later() {
    let h = Harness::memory().await;
    // A reservation shorter than the payment window, so the order is still CREATED.
    let order = h.created_order_with(1, Duration::from_secs(300)).await;
    h.caught_up().await;
    let firer = h.firer();
    let key = DeadlineKind::ReservationExpires {
        sku: sku(),
        order_no: order.clone(),
    }
    .key();
    let expiry = after(Duration::from_secs(300));

    assert_eq!(firer.tick(expiry).await.unwrap(), 1);
    assert_eq!(
        reservation_state(&h, &order).await,
        ReservationState::Reserved
    );
    let retry = expiry.plus(Duration::from_secs(60));
    assert!(h
        .deadlines
        .due(retry.minus_ms(1), 10)
        .await
        .unwrap()
        .iter()
        .all(|d| d.key != key));
    assert!(h
        .deadlines
        .due(retry, 10)
        .await
        .unwrap()
        .iter()
        .any(|d| d.key == key));

    // Paid meanwhile: the next look deducts it.
    h.pay(&order).await;
    firer.tick(retry).await.unwrap();
    assert_eq!(
        reservation_state(&h, &order).await,
        ReservationState::Deducted
    );
}

#[tokio::test]
async fn a_reservation_settled_by_the_saga_closes_its_deadline() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.sku(SkuCommand::Release {
        order_no: order.clone(),
        reason: ReleaseReason::OrderCancelled,
        at: at(1),
    })
    .await;
    h.caught_up().await;
    assert_eq!(h.open_keys().await, [format!("payment:{order}")]);
}

#[tokio::test]
async fn the_reaper_settles_reservations_on_postgres() {
    let db = TestDatabase::create().await;
    let h = Harness::postgres(&db).await;
    let paid = h.created_order(1).await;
    let unpaid = h.created_order(2).await;
    h.pay(&paid).await;
    h.caught_up().await;
    let firer = h.firer();
    firer.tick(after(h.config.payment_window)).await.unwrap();
    firer.tick(after(h.config.reservation_ttl)).await.unwrap();
    assert_eq!(
        reservation_state(&h, &paid).await,
        ReservationState::Deducted
    );
    assert_eq!(
        reservation_state(&h, &unpaid).await,
        ReservationState::Released
    );
    assert_eq!(h.deadlines.count_open().await.unwrap(), 0);
}
