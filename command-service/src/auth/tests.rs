//! Every rule of issue 3 §6: the allowed callers pass, every other caller is refused with
//! PERMISSION_DENIED, and a missing or bad token is UNAUTHENTICATED.

use orderflow_infra::auth::JwtSecret;
use orderflow_proto::v1 as pb;
use std::time::Duration;
use tonic::Code;

use super::*;

const ORDER_NO: &str = "2026112207171234500004217";
/// The ids the requests below act on.
const BUYER: i64 = 17;
const MERCHANT: i64 = 7;
const RIDER: i64 = 42;

fn caller(role: Role, sub: &str) -> Caller {
    Caller::new(role, sub).unwrap()
}

/// Everyone who might call: the owners of the ids above, their neighbours, and the staff.
fn everyone() -> Vec<(&'static str, Caller)> {
    vec![
        ("buyer 17", caller(Role::Buyer, "17")),
        ("buyer 18", caller(Role::Buyer, "18")),
        ("merchant 7", caller(Role::Merchant, "7")),
        ("merchant 8", caller(Role::Merchant, "8")),
        ("rider 42", caller(Role::Rider, "42")),
        ("rider 43", caller(Role::Rider, "43")),
        ("ops", caller(Role::Ops, "alice")),
        ("admin", caller(Role::Admin, "root")),
        ("service", caller(Role::Service, "payments")),
    ]
}

/// Checks that exactly `allowed` (by the names of `everyone`) may send `request`.
fn only<R: Authorize>(request: &R, allowed: &[&str]) {
    for (name, c) in everyone() {
        let got = request.authorize(&c);
        if allowed.contains(&name) {
            assert!(got.is_ok(), "{} by {name}: {got:?}", R::RPC);
        } else {
            let status = tonic::Status::from(got.expect_err(name));
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{} by {name}",
                R::RPC
            );
        }
    }
}

fn money(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "CNY".into(),
        minor_units,
    })
}

fn point() -> Option<pb::GeoPoint> {
    Some(pb::GeoPoint {
        lat: 39.9,
        lng: 116.4,
    })
}

fn rid() -> String {
    "req-1".into()
}

#[test]
fn merchant_rpcs_are_for_the_merchant_itself_or_admin() {
    let allowed = ["merchant 7", "admin"];
    let open = pb::OpenMerchantRequest {
        request_id: rid(),
        merchant_id: MERCHANT,
        name: "Noodles".into(),
        location: point(),
    };
    only(&OpenMerchant::try_from(&open).unwrap(), &allowed);
    let list = pb::ListDishRequest {
        request_id: rid(),
        merchant_id: MERCHANT,
        sku_id: "noodles".into(),
        name: "Noodles".into(),
        price: money(2_800),
    };
    only(&ListDish::try_from(&list).unwrap(), &allowed);
    let delist = pb::DelistDishRequest {
        request_id: rid(),
        merchant_id: MERCHANT,
        sku_id: "noodles".into(),
    };
    only(&DelistDish::try_from(&delist).unwrap(), &allowed);
    let restock = pb::RestockRequest {
        request_id: rid(),
        merchant_id: MERCHANT,
        sku_id: "noodles".into(),
        quantity: 10,
    };
    only(&Restock::try_from(&restock).unwrap(), &allowed);
}

#[test]
fn a_merchant_acting_as_another_merchant_is_told_so() {
    let restock = pb::RestockRequest {
        request_id: rid(),
        merchant_id: MERCHANT,
        sku_id: "noodles".into(),
        quantity: 10,
    };
    let e = Restock::try_from(&restock)
        .unwrap()
        .authorize(&caller(Role::Merchant, "8"))
        .unwrap_err();
    assert_eq!(e.to_string(), "merchant 8 may not act as merchant_id 7");
}

#[test]
fn submit_order_is_for_the_buyer_itself() {
    let submit = pb::SubmitOrderRequest {
        request_id: rid(),
        buyer_id: BUYER,
        merchant_id: MERCHANT,
        lines: vec![pb::OrderLine {
            sku_id: "noodles".into(),
            quantity: 1,
            unit_price: money(2_800),
        }],
        delivery_address: Some(pb::Address {
            text: "1 Chang'an Ave".into(),
            location: point(),
        }),
    };
    let submit = SubmitOrder::try_from(&submit).unwrap();
    only(&submit, &["buyer 17"]);
    assert_eq!(
        submit
            .authorize(&caller(Role::Buyer, "18"))
            .unwrap_err()
            .to_string(),
        "buyer 18 may not act as buyer_id 17"
    );
    assert_eq!(
        submit
            .authorize(&caller(Role::Admin, "root"))
            .unwrap_err()
            .to_string(),
        "SubmitOrder is for role buyer, not admin"
    );
}

#[test]
fn cancel_order_is_for_buyers_ops_and_admin_then_the_owner_is_checked() {
    let cancel = pb::CancelOrderRequest {
        request_id: rid(),
        order_no: ORDER_NO.into(),
        reason: String::new(),
    };
    // Both buyers pass the first check: only the loaded order says whose it is.
    only(
        &CancelOrder::try_from(&cancel).unwrap(),
        &["buyer 17", "buyer 18", "ops", "admin"],
    );
}

#[test]
fn only_the_owning_buyer_or_ops_and_admin_act_on_an_order() {
    let owner = BuyerId::new(BUYER).unwrap();
    for (name, c) in everyone() {
        let got = ensure_buyer_owns(&c, owner);
        if ["buyer 17", "ops", "admin"].contains(&name) {
            assert!(got.is_ok(), "{name}: {got:?}");
        } else {
            let status = tonic::Status::from(got.expect_err(name));
            assert_eq!(status.code(), Code::PermissionDenied, "{name}");
        }
    }
    assert_eq!(
        ensure_buyer_owns(&caller(Role::Buyer, "18"), owner)
            .unwrap_err()
            .to_string(),
        "the order belongs to another buyer"
    );
}

#[test]
fn confirm_payment_is_for_the_service_role_only() {
    let pay = pb::ConfirmPaymentRequest {
        request_id: rid(),
        order_no: ORDER_NO.into(),
        payment_txn_id: "wx:1".into(),
        amount: money(2_800),
    };
    only(&ConfirmPayment::try_from(&pay).unwrap(), &["service"]);
}

#[test]
fn rider_rpcs_are_for_the_rider_itself() {
    let allowed = ["rider 42"];
    let online = pb::GoOnlineRequest {
        request_id: rid(),
        rider_id: RIDER,
        location: point(),
        capacity: 3,
    };
    only(&GoOnline::try_from(&online).unwrap(), &allowed);
    let report = pb::ReportLocationRequest {
        request_id: rid(),
        rider_id: RIDER,
        location: point(),
    };
    only(&ReportLocation::try_from(&report).unwrap(), &allowed);
    let offline = pb::GoOfflineRequest {
        request_id: rid(),
        rider_id: RIDER,
    };
    only(&GoOffline::try_from(&offline).unwrap(), &allowed);
    let grab = pb::GrabOrderRequest {
        request_id: rid(),
        rider_id: RIDER,
        order_no: ORDER_NO.into(),
        offer_id: "offer-1".into(),
    };
    only(&GrabOrder::try_from(&grab).unwrap(), &allowed);
    let pick_up = pb::PickUpRequest {
        request_id: rid(),
        rider_id: RIDER,
        order_no: ORDER_NO.into(),
    };
    only(&PickUp::try_from(&pick_up).unwrap(), &allowed);
    let deliver = pb::ConfirmDeliveryRequest {
        request_id: rid(),
        rider_id: RIDER,
        order_no: ORDER_NO.into(),
    };
    only(&ConfirmDelivery::try_from(&deliver).unwrap(), &allowed);
}

#[test]
fn compensate_and_close_are_for_ops_and_admin() {
    let compensate = pb::CompensateRequest {
        request_id: rid(),
        order_no: ORDER_NO.into(),
        amount: money(500),
        reason: "late".into(),
    };
    only(
        &Compensate::try_from(&compensate).unwrap(),
        &["ops", "admin"],
    );
    let close = pb::CloseOrderRequest {
        request_id: rid(),
        order_no: ORDER_NO.into(),
    };
    let close = CloseOrder::try_from(&close).unwrap();
    only(&close, &["ops", "admin"]);
    assert_eq!(
        close
            .authorize(&caller(Role::Buyer, "17"))
            .unwrap_err()
            .to_string(),
        "CloseOrder is for role ops or admin, not buyer"
    );
}

fn jwt() -> JwtAuth {
    JwtAuth::new(&JwtSecret::new("a command-service test secret, 32+ bytes").unwrap())
}

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_331_832_000)
}

fn request_with(authorization: Option<&str>) -> tonic::Request<()> {
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert(AUTHORIZATION, value.parse().unwrap());
    }
    request
}

#[test]
fn the_caller_comes_from_the_authorization_metadata() {
    let auth = jwt();
    let token = auth
        .mint_at(Role::Buyer, "17", now(), Duration::from_secs(60))
        .unwrap();
    let request = request_with(Some(&format!("Bearer {token}")));
    let c = authenticate(&auth, &request, now()).unwrap();
    assert_eq!(c.buyer_id(), Some(BuyerId::new(17).unwrap()));
}

#[test]
fn no_token_is_unauthenticated() {
    let e = authenticate(&jwt(), &request_with(None), now()).unwrap_err();
    assert_eq!(e.to_string(), "no bearer token");
    assert_eq!(tonic::Status::from(e).code(), Code::Unauthenticated);
}

#[test]
fn a_bad_or_expired_token_is_unauthenticated() {
    let auth = jwt();
    let token = auth
        .mint_at(Role::Ops, "alice", now(), Duration::from_secs(60))
        .unwrap();
    let header = format!("Bearer {token}");
    let later = now().plus(Duration::from_secs(3600));
    for (request, at) in [
        (request_with(Some(&header)), later),
        (request_with(Some("Bearer not.a.jwt")), now()),
        (request_with(Some("Basic dXNlcjpwYXNz")), now()),
    ] {
        let e = authenticate(&auth, &request, at).unwrap_err();
        assert_eq!(tonic::Status::from(e).code(), Code::Unauthenticated);
    }
    // obs-text bytes are legal in a header value, yet no token holds them.
    let mut binary = tonic::Request::new(());
    let value = tonic::metadata::AsciiMetadataValue::try_from(b"Bearer \xff".as_slice()).unwrap();
    binary.metadata_mut().insert(AUTHORIZATION, value);
    let e = authenticate(&auth, &binary, now()).unwrap_err();
    assert_eq!(tonic::Status::from(e).code(), Code::Unauthenticated);
}

#[test]
fn field_errors_become_invalid_argument_naming_the_field() {
    let bad = pb::GoOnlineRequest {
        request_id: rid(),
        rider_id: RIDER,
        location: point(),
        capacity: 11,
    };
    let e = CommandError::from(GoOnline::try_from(&bad).unwrap_err());
    assert!(matches!(&e, CommandError::InvalidArgument { field, .. } if field == "capacity"));
    let status = tonic::Status::from(e);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "capacity: capacity must be 1..=10, got 11"
    );
}
