//! Submits a SKU would refuse as it stands (sold out, delisted, repriced) are refused at
//! once: one `OrderRefused` event, FAILED from the start, no saga round, nothing reserved or
//! released. What still fits goes to the saga as before.

mod common;

use std::time::Duration;

use common::*;
use orderflow_domain::order::{OrderEvent, OrderStatus};
use orderflow_domain::sku::SkuEvent;
use orderflow_domain::{DomainEvent, FailureReason, SkuId};
use orderflow_proto::v1 as pb;

async fn submit_qty(t: &mut TestApp, request_id: &str, quantity: i64) -> pb::SubmitOrderReply {
    t.client
        .submit_order(t.buyer(submit(request_id, BUYER, quantity)))
        .await
        .unwrap()
        .into_inner()
}

/// The order's stream, decoded.
async fn order_stream(t: &TestApp, order_no: &str) -> Vec<OrderEvent> {
    let stream = orderflow_domain::OrderNo::parse(order_no)
        .unwrap()
        .stream_id();
    t.app
        .store()
        .read_stream(&stream, 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| OrderEvent::decode(&r.event_type, r.event_version, &r.payload).unwrap())
        .collect()
}

/// The noodles' stream, decoded.
async fn sku_events(t: &TestApp) -> Vec<SkuEvent> {
    let stream = SkuId::parse(NOODLES).unwrap().stream_id();
    t.app
        .store()
        .read_stream(&stream, 1, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| SkuEvent::decode(&r.event_type, r.event_version, &r.payload).unwrap())
        .collect()
}

/// Asserts the order is one `OrderRefused` for noodles with `reason`, FAILED as it stands.
async fn assert_refused(t: &TestApp, order_no: &str, reason: FailureReason) {
    let events = order_stream(t, order_no).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let OrderEvent::Refused(refused) = &events[0] else {
        panic!("expected OrderRefused, got {events:?}");
    };
    assert_eq!((refused.reason, refused.sku.as_str()), (reason, NOODLES));
    let state = t.order(order_no).await;
    let order = state.order().unwrap();
    assert_eq!(
        (order.status, order.failure),
        (OrderStatus::Failed, Some(reason))
    );
}

#[tokio::test]
async fn a_sold_out_sku_refuses_at_once_and_a_restock_opens_the_door_again() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    orderflow_command_service::processes::start(&t.app);
    let all = submit_qty(&mut t, "sub-all", 100).await;
    assert_eq!(
        outcome(&t, &all.order_no).await,
        (OrderStatus::Created, None)
    );
    let sku_before = sku_events(&t).await.len();

    let late = submit_qty(&mut t, "sub-late", 1).await;
    // The contract's answer to a submit, whatever its outcome: CREATING, poll for the rest.
    assert_eq!(late.status, pb::OrderStatus::Creating as i32);
    assert_refused(&t, &late.order_no, FailureReason::OutOfStock).await;

    // A retry is answered with the same number and appends nothing.
    let events = t.total_events().await;
    let again = submit_qty(&mut t, "sub-late", 1).await;
    assert_eq!(again.order_no, late.order_no);
    assert_eq!(t.total_events().await, events);

    // Nothing was asked of the sku: no reservation, no release, even after the saga had time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sku_events(&t).await.len(), sku_before);
    assert_eq!(order_stream(&t, &late.order_no).await.len(), 1);

    // A restock is durable before it is answered, so the very next submit goes through.
    t.client
        .restock(t.merchant(restock("restock-2", NOODLES, 1)))
        .await
        .unwrap();
    let after = submit_qty(&mut t, "sub-after", 1).await;
    assert_eq!(
        outcome(&t, &after.order_no).await,
        (OrderStatus::Created, None)
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn more_than_is_left_is_refused_and_what_fits_goes_through_the_saga() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    orderflow_command_service::processes::start(&t.app);
    let most = submit_qty(&mut t, "sub-99", 99).await;
    assert_eq!(
        outcome(&t, &most.order_no).await,
        (OrderStatus::Created, None)
    );

    let two = submit_qty(&mut t, "sub-2", 2).await;
    assert_refused(&t, &two.order_no, FailureReason::OutOfStock).await;
    let one = submit_qty(&mut t, "sub-1", 1).await;
    assert_eq!(
        outcome(&t, &one.order_no).await,
        (OrderStatus::Created, None)
    );
    assert_eq!(
        order_stream(&t, &one.order_no).await[0].event_type(),
        "OrderSubmitted"
    );
    t.stop().await.unwrap();
}

#[tokio::test]
async fn a_delisted_or_repriced_dish_refuses_at_once() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    // No saga running: the refusal is the submit's own.
    t.client
        .list_dish(t.merchant(list_dish("reprice", NOODLES, NOODLES_PRICE + 100)))
        .await
        .unwrap();
    let repriced = submit_qty(&mut t, "sub-old-price", 1).await;
    assert_refused(&t, &repriced.order_no, FailureReason::PriceChanged).await;

    t.client
        .delist_dish(t.merchant(delist("delist", NOODLES)))
        .await
        .unwrap();
    let delisted = submit_qty(&mut t, "sub-delisted", 1).await;
    assert_refused(&t, &delisted.order_no, FailureReason::DishDelisted).await;
    t.stop().await.unwrap();
}
