//! Issue 3 §6 over the wire: no token → UNAUTHENTICATED; the wrong role or owner →
//! PERMISSION_DENIED; either way nothing is appended.

mod common;

use common::*;
use orderflow_domain::Role;
use orderflow_proto::v1 as pb;
use tonic::{Code, Request};

/// Every RPC without a token: UNAUTHENTICATED, checked before anything else (even an
/// invalid request is not parsed).
#[tokio::test]
async fn every_rpc_needs_a_token() {
    let mut t = spawn_app().await;
    let c = &mut t.client;
    let o = "2026112207171234500004217".to_string();
    let codes = vec![
        c.open_merchant(Request::new(open_merchant("a")))
            .await
            .map(drop),
        c.list_dish(Request::new(list_dish("a", NOODLES, 1)))
            .await
            .map(drop),
        c.delist_dish(Request::new(delist("a", NOODLES)))
            .await
            .map(drop),
        c.restock(Request::new(restock("a", NOODLES, 1)))
            .await
            .map(drop),
        c.submit_order(Request::new(submit("a", BUYER, 1)))
            .await
            .map(drop),
        c.cancel_order(Request::new(pb::CancelOrderRequest::default()))
            .await
            .map(drop),
        c.confirm_payment(Request::new(pay("a", &o, "t", 1)))
            .await
            .map(drop),
        c.go_online(Request::new(go_online("a", RIDER)))
            .await
            .map(drop),
        c.report_location(Request::new(pb::ReportLocationRequest::default()))
            .await
            .map(drop),
        c.go_offline(Request::new(pb::GoOfflineRequest::default()))
            .await
            .map(drop),
        c.grab_order(Request::new(grab("a", RIDER, &o)))
            .await
            .map(drop),
        c.pick_up(Request::new(pb::PickUpRequest::default()))
            .await
            .map(drop),
        c.confirm_delivery(Request::new(pb::ConfirmDeliveryRequest::default()))
            .await
            .map(drop),
        c.compensate(Request::new(pb::CompensateRequest::default()))
            .await
            .map(drop),
        c.close_order(Request::new(pb::CloseOrderRequest::default()))
            .await
            .map(drop),
    ];
    assert_eq!(codes.len(), 15);
    for result in codes {
        assert_status(result, Code::Unauthenticated, "token");
    }
    assert_eq!(t.total_events().await, 0);
}

#[tokio::test]
async fn a_token_from_another_secret_or_expired_is_unauthenticated() {
    let mut t = spawn_app().await;
    let other = orderflow_infra::auth::JwtAuth::new(
        &orderflow_infra::auth::JwtSecret::new(b"another secret, 32 bytes or more!!".to_vec())
            .unwrap(),
    );
    let forged = other
        .mint(Role::Merchant, "7", std::time::Duration::from_secs(3600))
        .unwrap();
    let mut r = Request::new(open_merchant("a"));
    r.metadata_mut()
        .insert("authorization", format!("Bearer {forged}").parse().unwrap());
    assert_status(
        t.client.open_merchant(r).await,
        Code::Unauthenticated,
        "signature",
    );

    let expiring = t.merchant(open_merchant("b"));
    t.clock.advance(std::time::Duration::from_secs(2 * 3600));
    assert_status(
        t.client.open_merchant(expiring).await,
        Code::Unauthenticated,
        "expired",
    );
    assert_eq!(t.total_events().await, 0);
}

#[tokio::test]
async fn wrong_roles_and_owners_are_denied_and_append_nothing() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    t.client
        .go_online(t.rider(RIDER, go_online("on-1", RIDER)))
        .await
        .unwrap();
    let order_no = paid_order(&mut t, "sub-1").await;
    t.notify(&order_no, &[RIDER]).await;
    let before = t.total_events().await;
    let c = &mut t.client.clone();

    // Another merchant's menu.
    let r = t.req(Role::Merchant, "8", restock("d-1", NOODLES, 5));
    assert_status(c.restock(r).await, Code::PermissionDenied, "merchant");
    // A buyer cannot open a shop.
    let r = t.req(Role::Buyer, "17", open_merchant("d-2"));
    assert_status(
        c.open_merchant(r).await,
        Code::PermissionDenied,
        "OpenMerchant",
    );
    // Buyer 18 submitting as buyer 17.
    let r = t.req(Role::Buyer, "18", submit("d-3", BUYER, 1));
    assert_status(c.submit_order(r).await, Code::PermissionDenied, "buyer");
    // Buyer 18 cancelling buyer 17's order: known only once the order is loaded.
    let r = t.req(
        Role::Buyer,
        "18",
        pb::CancelOrderRequest {
            request_id: "d-4".into(),
            order_no: order_no.clone(),
            reason: String::new(),
        },
    );
    assert_status(
        c.cancel_order(r).await,
        Code::PermissionDenied,
        "another buyer",
    );
    // A rider cannot cancel.
    let r = t.rider(
        RIDER,
        pb::CancelOrderRequest {
            request_id: "d-5".into(),
            order_no: order_no.clone(),
            reason: String::new(),
        },
    );
    assert_status(
        c.cancel_order(r).await,
        Code::PermissionDenied,
        "CancelOrder",
    );
    // Only the payment service confirms payments.
    let r = t.buyer(pay("d-6", &order_no, "txn-x", 2 * NOODLES_PRICE));
    assert_status(
        c.confirm_payment(r).await,
        Code::PermissionDenied,
        "service",
    );
    // Rider 43 grabbing as rider 42.
    let r = t.rider(43, grab("d-7", RIDER, &order_no));
    assert_status(c.grab_order(r).await, Code::PermissionDenied, "rider");
    // Only ops/admin compensate and close.
    let r = t.buyer(pb::CompensateRequest {
        request_id: "d-8".into(),
        order_no: order_no.clone(),
        amount: money(100),
        reason: "late".into(),
    });
    assert_status(c.compensate(r).await, Code::PermissionDenied, "Compensate");
    let r = t.req(
        Role::Merchant,
        "7",
        pb::CloseOrderRequest {
            request_id: "d-9".into(),
            order_no: order_no.clone(),
        },
    );
    assert_status(c.close_order(r).await, Code::PermissionDenied, "CloseOrder");

    assert_eq!(t.total_events().await, before);
}

/// A rider offered the order but not the one who grabbed it may not pick it up.
#[tokio::test]
async fn only_the_rider_who_grabbed_picks_up() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    for rider in [RIDER, 43] {
        t.client
            .go_online(t.rider(rider, go_online("on-1", rider)))
            .await
            .unwrap();
    }
    let order_no = paid_order(&mut t, "sub-1").await;
    t.notify(&order_no, &[RIDER, 43]).await;
    t.client
        .grab_order(t.rider(RIDER, grab("g-1", RIDER, &order_no)))
        .await
        .unwrap();
    let before = t.total_events().await;
    let r = t.rider(
        43,
        pb::PickUpRequest {
            request_id: "p-1".into(),
            rider_id: 43,
            order_no: order_no.clone(),
        },
    );
    assert_status(t.client.pick_up(r).await, Code::PermissionDenied, "43");
    assert_eq!(t.total_events().await, before);
}
