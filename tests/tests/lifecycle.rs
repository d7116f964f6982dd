//! An order's whole life through the public gRPC API, with every process manager on:
//! the saga creates it, the notifier offers it, deadlines close or time it out.

use std::time::Duration;

use orderflow_domain::order::{OrderEvent, OrderStatus};
use orderflow_domain::sku::ReservationState;
use orderflow_domain::{DomainEvent, OrderNo, RiderId};
use orderflow_tests::v1 as pb;
use orderflow_tests::*;
use tonic::Code;

const SHOP: i64 = 7;
const SKU: &str = "noodles-L";
const PRICE: i64 = 2_800;
const BUYER: i64 = 42;
const NEAR: i64 = 31;
const FAR: i64 = 32;

fn event_types(events: &[OrderEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_from_submit_to_closed() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    app.rider_online(NEAR, north_of_merchant(500.0), 3).await?;
    app.rider_online(FAR, north_of_merchant(2_000.0), 3).await?;
    let mut near_offers = app.offers_to(NEAR).await?;

    let order_no = app.submit(BUYER, SHOP, SKU, 2, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    let stock = app.stock(SKU).await?;
    assert_eq!((stock.available, stock.reserved), (8, 2));

    app.pay(&order_no, 2 * PRICE).await?;
    let notified = app
        .wait_for_status(&order_no, OrderStatus::Notified)
        .await?;
    let round = notified.offer.expect("a notified order has an offer");
    // Nearest first, both within the first radius.
    assert_eq!(
        round.riders,
        [RiderId::new(NEAR)?, RiderId::new(FAR)?],
        "riders of round 1"
    );
    let offer = near_offers.next(WAIT).await?;
    assert_eq!(offer.order_no, order_no);
    assert_eq!(offer.offer_id, round.offer_id.as_str());
    assert_eq!(offer.merchant_id, SHOP);

    let rider = app.rider(NEAR);
    rider
        .grab_order(grab_request(NEAR, &order_no, &offer.offer_id))
        .await?;
    rider
        .pick_up(pb::PickUpRequest {
            request_id: rid(),
            rider_id: NEAR,
            order_no: order_no.clone(),
        })
        .await?;
    rider
        .confirm_delivery(pb::ConfirmDeliveryRequest {
            request_id: rid(),
            rider_id: NEAR,
            order_no: order_no.clone(),
        })
        .await?;
    let received = app.placed(&order_no).await?;
    assert_eq!(received.status, OrderStatus::Received);
    assert!(!received.late);

    // Paid → the saga deducts the reservation.
    wait_until("the reservation deducted", WAIT, || async {
        Ok(app.stock(SKU).await?.deducted == 2)
    })
    .await?;

    // On time: closed by the close deadline once the clock passes it.
    app.advance(app.app.config().close_after + Duration::from_secs(1));
    app.wait_for_status(&order_no, OrderStatus::Closed).await?;

    let (state, events) = app.order(&order_no).await?;
    assert_eq!(
        event_types(&events),
        [
            "OrderSubmitted",
            "OrderCreated",
            "OrderPaid",
            "RidersNotified",
            "OrderGrabbed",
            "OrderPickedUp",
            "OrderDelivered",
            "OrderClosed"
        ]
    );
    assert_eq!(state.order().unwrap().rider, Some(RiderId::new(NEAR)?));
    let stock = app.stock(SKU).await?;
    assert_eq!(
        (stock.added, stock.available, stock.reserved, stock.deducted),
        (10, 8, 0, 2)
    );
    let (sku, _) = app.sku(SKU).await?;
    let row = sku
        .reservation(&OrderNo::parse(order_no.as_str())?)
        .expect("the order's reservation row");
    assert_eq!(row.state, ReservationState::Deducted);
    // The winner's slot is free again.
    let (rider_state, _) = orderflow_tests::folded::<orderflow_domain::rider::Rider>(
        app.store().as_ref(),
        &RiderId::new(NEAR)?.stream_id(),
    )
    .await?;
    assert!(rider_state.active_orders.is_empty());

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_delivery_is_compensated_then_closed() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    app.rider_online(NEAR, north_of_merchant(500.0), 3).await?;
    let mut offers = app.offers_to(NEAR).await?;

    let order_no = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    app.pay(&order_no, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Notified)
        .await?;
    let offer = offers.next(WAIT).await?;
    let rider = app.rider(NEAR);
    rider
        .grab_order(grab_request(NEAR, &order_no, &offer.offer_id))
        .await?;
    rider
        .pick_up(pb::PickUpRequest {
            request_id: rid(),
            rider_id: NEAR,
            order_no: order_no.clone(),
        })
        .await?;

    // The delivery deadline passes: the deadline firer times the order out.
    app.advance(app.app.config().delivery_sla + Duration::from_secs(1));
    app.wait_for_status(&order_no, OrderStatus::TimedOut)
        .await?;

    rider
        .confirm_delivery(pb::ConfirmDeliveryRequest {
            request_id: rid(),
            rider_id: NEAR,
            order_no: order_no.clone(),
        })
        .await?;
    let received = app.placed(&order_no).await?;
    assert_eq!(received.status, OrderStatus::Received);
    assert!(received.late, "delivered after the deadline");

    // A late order is not closed before ops compensate it.
    let before = app.total_events().await?;
    let refused = app
        .ops()
        .close_order(pb::CloseOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
        })
        .await
        .expect_err("closing a late order before compensation");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        app.total_events().await?,
        before,
        "a refusal appends nothing"
    );

    app.ops()
        .compensate(pb::CompensateRequest {
            request_id: rid(),
            order_no: order_no.clone(),
            amount: Some(money(1_000)),
            reason: "late delivery".into(),
        })
        .await?;
    assert_eq!(
        app.placed(&order_no).await?.status,
        OrderStatus::Compensated
    );
    app.ops()
        .close_order(pb::CloseOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
        })
        .await?;

    let (state, events) = app.order(&order_no).await?;
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Closed);
    assert_eq!(order.compensation.map(|m| m.minor_units()), Some(1_000));
    assert_eq!(
        event_types(&events),
        [
            "OrderSubmitted",
            "OrderCreated",
            "OrderPaid",
            "RidersNotified",
            "OrderGrabbed",
            "OrderPickedUp",
            "DeliveryTimedOut",
            "OrderDelivered",
            "OrderCompensated",
            "OrderClosed"
        ]
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, OrderEvent::Delivered(d) if d.late)));

    app.shutdown().await
}
