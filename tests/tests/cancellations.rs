//! Cancelling gives the stock back: by the buyer, or by the payment deadline on the clock.

use std::time::Duration;

use orderflow_domain::order::{CancelCause, OrderStatus};
use orderflow_domain::sku::{ReleaseReason, ReservationState, SkuEvent};
use orderflow_domain::OrderNo;
use orderflow_tests::v1 as pb;
use orderflow_tests::*;

const SHOP: i64 = 7;
const SKU: &str = "congee";
const PRICE: i64 = 1_200;
const BUYER: i64 = 42;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_created_order_releases_its_stock() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    let order_no = app.submit(BUYER, SHOP, SKU, 3, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    let held = app.stock(SKU).await?;
    assert_eq!((held.available, held.reserved), (7, 3));

    app.buyer(BUYER)
        .cancel_order(pb::CancelOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
            reason: String::new(),
        })
        .await?;
    let order = app.placed(&order_no).await?;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert!(matches!(
        order.cancel_cause,
        Some(CancelCause::Buyer { .. })
    ));

    wait_until("the reservation released", WAIT, || async {
        Ok(app.stock(SKU).await?.available == 10)
    })
    .await?;
    assert_released_once(&app, &order_no, 3).await?;

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_is_cancelled_by_the_payment_deadline_and_its_stock_released(
) -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    let order_no = app.submit(BUYER, SHOP, SKU, 4, PRICE).await?;
    let created = app.wait_for_status(&order_no, OrderStatus::Created).await?;
    let deadline = created.payment_deadline.expect("a payment deadline");
    assert_eq!(
        deadline,
        app.now().plus(app.app.config().payment_window),
        "the window starts when the saga creates the order (the clock has not moved)"
    );

    app.advance(app.app.config().payment_window + Duration::from_secs(1));
    let order = app
        .wait_for_status(&order_no, OrderStatus::Cancelled)
        .await?;
    assert_eq!(order.cancel_cause, Some(CancelCause::PaymentDeadlinePassed));

    wait_until("the reservation released", WAIT, || async {
        Ok(app.stock(SKU).await?.available == 10)
    })
    .await?;
    assert_released_once(&app, &order_no, 4).await?;

    app.shutdown().await
}

/// The order's reservation was released exactly once, for the cancel, and the ledger is back
/// where it started.
async fn assert_released_once(app: &TestApp, order_no: &str, quantity: i64) -> anyhow::Result<()> {
    // One relay + consumer round trip is far below this: time for a wrong second release.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stock = app.stock(SKU).await?;
    assert_eq!(
        (
            stock.added,
            stock.available,
            stock.reserved,
            stock.deducted,
            stock.released
        ),
        (10, 10, 0, 0, quantity)
    );
    let (sku, events) = app.sku(SKU).await?;
    let row = sku
        .reservation(&OrderNo::parse(order_no)?)
        .expect("the order's reservation row");
    assert_eq!(row.state, ReservationState::Released);
    let releases: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SkuEvent::Released(r) if r.order_no.as_str() == order_no => Some(r.reason),
            _ => None,
        })
        .collect();
    assert_eq!(releases, [ReleaseReason::OrderCancelled]);
    Ok(())
}
