//! Every RPC's happy path, walking one order from submission to CLOSED (late, so
//! compensated), plus cancel and going offline.

mod common;

use std::time::Duration;

use common::*;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::{OrderNo, Role, SkuId};
use orderflow_infra::store::ConsistencyToken;
use orderflow_proto::v1 as pb;

fn token(s: &str) -> ConsistencyToken {
    ConsistencyToken::parse(s).unwrap_or_else(|e| panic!("reply token {s:?}: {e}"))
}

#[tokio::test]
async fn merchant_rpcs_open_list_restock_and_delist() {
    let mut t = spawn_app().await;
    let open = t
        .client
        .open_merchant(t.merchant(open_merchant("open-1")))
        .await
        .unwrap()
        .into_inner();
    token(&open.consistency_token);
    t.client
        .list_dish(t.merchant(list_dish("list-1", NOODLES, NOODLES_PRICE)))
        .await
        .unwrap();
    let restocked = t
        .client
        .restock(t.merchant(restock("restock-1", NOODLES, 40)))
        .await
        .unwrap()
        .into_inner();
    token(&restocked.consistency_token);
    // Restock only adds.
    t.client
        .restock(t.merchant(restock("restock-2", NOODLES, 2)))
        .await
        .unwrap();
    let sku = SkuId::parse(NOODLES).unwrap();
    let state = t.app.stock().state(&sku).await.unwrap();
    assert_eq!(state.stock().available, 42);
    assert_eq!(state.listing().unwrap().name.as_str(), "dish noodles-L");

    t.client
        .delist_dish(t.merchant(delist("delist-1", NOODLES)))
        .await
        .unwrap();
    assert!(!t.app.stock().state(&sku).await.unwrap().is_listed());
}

#[tokio::test]
async fn an_order_goes_from_submit_to_closed_through_every_rpc() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;

    // Rider 42 online and moving.
    t.client
        .go_online(t.rider(RIDER, go_online("on-1", RIDER)))
        .await
        .unwrap();
    t.client
        .report_location(t.rider(
            RIDER,
            pb::ReportLocationRequest {
                request_id: "loc-1".into(),
                rider_id: RIDER,
                location: Some(pb::GeoPoint {
                    lat: 31.24,
                    lng: 121.48,
                }),
            },
        ))
        .await
        .unwrap();

    // Submit: answered at once, CREATING, with the buyer's shard at the end.
    let mut request = t.buyer(submit("sub-1", BUYER, 2));
    request
        .metadata_mut()
        .insert("x-correlation-id", "checkout-77".parse().unwrap());
    let submitted = t.client.submit_order(request).await.unwrap().into_inner();
    assert_eq!(submitted.status, pb::OrderStatus::Creating as i32);
    assert!(submitted.order_no.ends_with("17"), "{}", submitted.order_no);
    let order_no = submitted.order_no.clone();
    let order_token = token(&submitted.consistency_token);
    assert_eq!(
        order_token.shard,
        OrderNo::parse(&order_no).unwrap().shard()
    );
    let state = t.order(&order_no).await;
    let placed = state.order().unwrap();
    assert_eq!(placed.status, OrderStatus::Creating);
    assert_eq!(placed.lines[0].name.as_str(), "dish noodles-L");
    assert_eq!(placed.total.minor_units(), 2 * NOODLES_PRICE);
    // The actor and the caller's correlation id are in the event's metadata.
    let events = t
        .app
        .store()
        .read_stream(&OrderNo::parse(&order_no).unwrap().stream_id(), 1, 10)
        .await
        .unwrap();
    assert_eq!(events[0].metadata.correlation_id.as_str(), "checkout-77");
    assert_eq!(events[0].metadata.actor.subject, "17");
    assert_eq!(
        events[0].metadata.command_id.as_str(),
        "buyer:17:SubmitOrder:sub-1"
    );

    // The saga reserves (another component): CREATED. The provider pays.
    t.create(&order_no).await;
    let paid = t
        .client
        .confirm_payment(t.service(pay("pay-1", &order_no, "txn-1", 2 * NOODLES_PRICE)))
        .await
        .unwrap()
        .into_inner();
    assert!(token(&paid.consistency_token).position > order_token.position);
    assert_eq!(t.order(&order_no).await.status(), Some(OrderStatus::Paid));

    // The notifier offers it (another component); rider 42 grabs, picks up, delivers late.
    t.notify(&order_no, &[RIDER]).await;
    t.client
        .grab_order(t.rider(RIDER, grab("grab-1", RIDER, &order_no)))
        .await
        .unwrap();
    let state = t.order(&order_no).await;
    let placed = state.order().unwrap();
    assert_eq!(placed.status, OrderStatus::Delivering);
    assert_eq!(placed.rider.map(|r| r.get()), Some(RIDER));
    assert_eq!(
        placed.delivery_deadline,
        Some(t.clock.now_ts().plus(t.app.config().delivery_sla))
    );
    assert_eq!(t.rider_state(RIDER).await.active_orders.len(), 1);

    t.client
        .pick_up(t.rider(
            RIDER,
            pb::PickUpRequest {
                request_id: "pick-1".into(),
                rider_id: RIDER,
                order_no: order_no.clone(),
            },
        ))
        .await
        .unwrap();
    t.clock
        .advance(t.app.config().delivery_sla + Duration::from_secs(60));
    t.client
        .confirm_delivery(t.rider(
            RIDER,
            pb::ConfirmDeliveryRequest {
                request_id: "drop-1".into(),
                rider_id: RIDER,
                order_no: order_no.clone(),
            },
        ))
        .await
        .unwrap();
    let state = t.order(&order_no).await;
    assert_eq!(state.status(), Some(OrderStatus::Received));
    assert!(state.order().unwrap().late);
    assert!(t.rider_state(RIDER).await.active_orders.is_empty());

    // Ops compensate the late delivery, admin closes.
    t.client
        .compensate(t.ops(pb::CompensateRequest {
            request_id: "comp-1".into(),
            order_no: order_no.clone(),
            amount: money(500),
            reason: "late".into(),
        }))
        .await
        .unwrap();
    assert_eq!(
        t.order(&order_no).await.status(),
        Some(OrderStatus::Compensated)
    );
    let closed = t
        .client
        .close_order(t.req(
            Role::Admin,
            "root",
            pb::CloseOrderRequest {
                request_id: "close-1".into(),
                order_no: order_no.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    token(&closed.consistency_token);
    assert_eq!(t.order(&order_no).await.status(), Some(OrderStatus::Closed));

    t.client
        .go_offline(t.rider(
            RIDER,
            pb::GoOfflineRequest {
                request_id: "off-1".into(),
                rider_id: RIDER,
            },
        ))
        .await
        .unwrap();
    assert!(!t.rider_state(RIDER).await.online);
    t.stop().await.unwrap();
}

#[tokio::test]
async fn a_buyer_cancels_its_created_order() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let order_no = submitted_order(&mut t, "sub-1").await;
    t.create(&order_no).await;
    let reply = t
        .client
        .cancel_order(t.buyer(pb::CancelOrderRequest {
            request_id: "cancel-1".into(),
            order_no: order_no.clone(),
            reason: "changed my mind".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    token(&reply.consistency_token);
    assert_eq!(
        t.order(&order_no).await.status(),
        Some(OrderStatus::Cancelled)
    );
}

#[tokio::test]
async fn ops_may_cancel_any_order() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let order_no = submitted_order(&mut t, "sub-1").await;
    t.create(&order_no).await;
    t.client
        .cancel_order(t.ops(pb::CancelOrderRequest {
            request_id: "cancel-1".into(),
            order_no: order_no.clone(),
            reason: String::new(),
        }))
        .await
        .unwrap();
    assert_eq!(
        t.order(&order_no).await.status(),
        Some(OrderStatus::Cancelled)
    );
}

#[tokio::test]
async fn business_refusals_keep_their_codes_and_append_nothing() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let order_no = submitted_order(&mut t, "sub-1").await;
    let before = t.total_events().await;
    // Paying an order still CREATING: FAILED_PRECONDITION (the provider retries later).
    let early = t
        .client
        .confirm_payment(t.service(pay("pay-1", &order_no, "txn-1", 2 * NOODLES_PRICE)))
        .await;
    assert_status(early, tonic::Code::FailedPrecondition, "CREATING");
    t.create(&order_no).await;
    let before_wrong_amount = t.total_events().await;
    assert_eq!(before_wrong_amount, before + 1);
    // The amount must equal the total.
    let wrong = t
        .client
        .confirm_payment(t.service(pay("pay-2", &order_no, "txn-2", 1)))
        .await;
    assert_status(wrong, tonic::Code::FailedPrecondition, "total");
    assert_eq!(t.total_events().await, before_wrong_amount);
}
