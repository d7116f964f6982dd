//! Issue 3 §7: a malformed field is INVALID_ARGUMENT naming it, and nothing is appended;
//! commands on things that do not exist are NOT_FOUND, also appending nothing.

mod common;

use common::*;
use orderflow_proto::v1 as pb;
use tonic::Code;

/// One bad request per RPC, each with the field its message must name.
#[tokio::test]
async fn every_rpc_names_its_bad_field_and_appends_nothing() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    t.client
        .go_online(t.rider(RIDER, go_online("on-1", RIDER)))
        .await
        .unwrap();
    let order_no = paid_order(&mut t, "sub-1").await;
    let before = t.total_events().await;
    let c = &mut t.client.clone();

    let mut r = open_merchant("");
    r.request_id.clear();
    assert_status(
        c.open_merchant(t.merchant(r)).await,
        Code::InvalidArgument,
        "request_id",
    );

    let mut r = open_merchant("v-1");
    r.location = Some(pb::GeoPoint {
        lat: 91.0,
        lng: 0.0,
    });
    assert_status(
        c.open_merchant(t.merchant(r)).await,
        Code::InvalidArgument,
        "location.lat",
    );

    let mut r = list_dish("v-2", NOODLES, NOODLES_PRICE);
    r.name = "x".repeat(101);
    assert_status(
        c.list_dish(t.merchant(r)).await,
        Code::InvalidArgument,
        "name",
    );

    let r = list_dish("v-3", "bad sku!", NOODLES_PRICE);
    assert_status(
        c.list_dish(t.merchant(r)).await,
        Code::InvalidArgument,
        "sku_id",
    );

    let r = delist("v-4", "");
    assert_status(
        c.delist_dish(t.merchant(r)).await,
        Code::InvalidArgument,
        "sku_id",
    );

    let r = restock("v-5", NOODLES, 0);
    assert_status(
        c.restock(t.merchant(r)).await,
        Code::InvalidArgument,
        "quantity",
    );

    let r = submit("v-6", BUYER, 1000);
    assert_status(
        c.submit_order(t.buyer(r)).await,
        Code::InvalidArgument,
        "lines[0].quantity",
    );

    let mut r = submit("v-7", BUYER, 1);
    r.lines = (0..51)
        .map(|i| pb::OrderLine {
            sku_id: format!("sku-{i}"),
            quantity: 1,
            unit_price: money(100),
        })
        .collect();
    assert_status(
        c.submit_order(t.buyer(r)).await,
        Code::InvalidArgument,
        "lines",
    );

    // Unknown sku: only known once the sku is read, still INVALID_ARGUMENT on the field.
    let mut r = submit("v-8", BUYER, 1);
    r.lines[0].sku_id = "no-such-dish".into();
    assert_status(
        c.submit_order(t.buyer(r)).await,
        Code::InvalidArgument,
        "lines[0].sku_id",
    );

    let mut r = submit("v-9", BUYER, 1);
    r.delivery_address = None;
    assert_status(
        c.submit_order(t.buyer(r)).await,
        Code::InvalidArgument,
        "delivery_address",
    );

    let r = pb::CancelOrderRequest {
        request_id: "v-10".into(),
        order_no: order_no.clone(),
        reason: "x".repeat(201),
    };
    assert_status(
        c.cancel_order(t.buyer(r)).await,
        Code::InvalidArgument,
        "reason",
    );

    let r = pay("v-11", "12345", "txn-9", 100);
    assert_status(
        c.confirm_payment(t.service(r)).await,
        Code::InvalidArgument,
        "order_no",
    );

    let r = pay("v-12", &order_no, "txn-9", -5);
    assert_status(
        c.confirm_payment(t.service(r)).await,
        Code::InvalidArgument,
        "amount",
    );

    let mut r = go_online("v-13", RIDER);
    r.capacity = 11;
    assert_status(
        c.go_online(t.rider(RIDER, r)).await,
        Code::InvalidArgument,
        "capacity",
    );

    let r = pb::ReportLocationRequest {
        request_id: "v-14".into(),
        rider_id: RIDER,
        location: Some(pb::GeoPoint {
            lat: 0.0,
            lng: 181.0,
        }),
    };
    assert_status(
        c.report_location(t.rider(RIDER, r)).await,
        Code::InvalidArgument,
        "location.lng",
    );

    let r = pb::GoOfflineRequest {
        request_id: "x".repeat(65),
        rider_id: RIDER,
    };
    assert_status(
        c.go_offline(t.rider(RIDER, r)).await,
        Code::InvalidArgument,
        "request_id",
    );

    let mut r = grab("v-15", RIDER, &order_no);
    r.offer_id.clear();
    assert_status(
        c.grab_order(t.rider(RIDER, r)).await,
        Code::InvalidArgument,
        "offer_id",
    );

    let r = pb::PickUpRequest {
        request_id: "v-16".into(),
        rider_id: RIDER,
        order_no: "not-a-number".into(),
    };
    assert_status(
        c.pick_up(t.rider(RIDER, r)).await,
        Code::InvalidArgument,
        "order_no",
    );

    let r = pb::ConfirmDeliveryRequest {
        request_id: "v-17".into(),
        rider_id: RIDER,
        order_no: String::new(),
    };
    assert_status(
        c.confirm_delivery(t.rider(RIDER, r)).await,
        Code::InvalidArgument,
        "order_no",
    );

    let r = pb::CompensateRequest {
        request_id: "v-18".into(),
        order_no: order_no.clone(),
        amount: money(0),
        reason: "late".into(),
    };
    assert_status(
        c.compensate(t.ops(r)).await,
        Code::InvalidArgument,
        "amount",
    );

    let r = pb::CloseOrderRequest {
        request_id: String::new(),
        order_no: order_no.clone(),
    };
    assert_status(
        c.close_order(t.ops(r)).await,
        Code::InvalidArgument,
        "request_id",
    );

    assert_eq!(t.total_events().await, before, "a refused request appended");
}

#[tokio::test]
async fn a_sku_of_another_merchant_is_refused_on_its_line() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let mut r = submit("s-1", BUYER, 1);
    r.merchant_id = 8;
    // Merchant 8 does not exist: NOT_FOUND first.
    assert_status(
        t.client.submit_order(t.buyer(r)).await,
        Code::NotFound,
        "merchant 8",
    );
    let mut open8 = open_merchant("open-8");
    open8.merchant_id = 8;
    t.client
        .open_merchant(t.req(orderflow_domain::Role::Merchant, "8", open8))
        .await
        .unwrap();
    let before = t.total_events().await;
    let mut r = submit("s-2", BUYER, 1);
    r.merchant_id = 8;
    assert_status(
        t.client.submit_order(t.buyer(r)).await,
        Code::InvalidArgument,
        "lines[0].sku_id",
    );
    assert_eq!(t.total_events().await, before);
}

#[tokio::test]
async fn commands_on_what_does_not_exist_are_not_found() {
    let t = spawn_app().await;
    let missing = "2026112207171234500004217";
    let c = &mut t.client.clone();

    // No merchant 7 yet.
    assert_status(
        c.list_dish(t.merchant(list_dish("n-1", NOODLES, 100)))
            .await,
        Code::NotFound,
        "merchant",
    );
    assert_status(
        c.restock(t.merchant(restock("n-2", NOODLES, 1))).await,
        Code::NotFound,
        "merchant",
    );
    // No rider 42 yet.
    let r = pb::ReportLocationRequest {
        request_id: "n-3".into(),
        rider_id: RIDER,
        location: point(),
    };
    assert_status(
        c.report_location(t.rider(RIDER, r)).await,
        Code::NotFound,
        "rider",
    );
    // No such order, for every order RPC.
    assert_status(
        c.grab_order(t.rider(RIDER, grab("n-4", RIDER, missing)))
            .await,
        Code::NotFound,
        "order",
    );
    let cancel = pb::CancelOrderRequest {
        request_id: "n-5".into(),
        order_no: missing.into(),
        reason: String::new(),
    };
    assert_status(
        c.cancel_order(t.buyer(cancel)).await,
        Code::NotFound,
        "order",
    );
    assert_status(
        c.confirm_payment(t.service(pay("n-6", missing, "txn-1", 100)))
            .await,
        Code::NotFound,
        "order",
    );
    let close = pb::CloseOrderRequest {
        request_id: "n-7".into(),
        order_no: missing.into(),
    };
    assert_status(c.close_order(t.ops(close)).await, Code::NotFound, "order");
    assert_eq!(t.total_events().await, 0);
}
