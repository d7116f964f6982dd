//! One test per rule of the order requests, each checking the field path it reports.

use super::*;

const ORDER_NO: &str = "2026112207171234500004217";

fn cny(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "CNY".into(),
        minor_units,
    })
}

fn line(sku: &str, quantity: i64, price: i64) -> pb::OrderLine {
    pb::OrderLine {
        sku_id: sku.into(),
        quantity,
        unit_price: cny(price),
    }
}

fn submit() -> pb::SubmitOrderRequest {
    pb::SubmitOrderRequest {
        request_id: "submit-1".into(),
        buyer_id: 17,
        merchant_id: 7,
        lines: vec![line("noodles-L", 2, 2_800), line("tea", 1, 600)],
        delivery_address: Some(pb::Address {
            text: "1 Chang'an Ave".into(),
            location: Some(pb::GeoPoint {
                lat: 39.9,
                lng: 116.4,
            }),
        }),
    }
}

fn submit_error(r: &pb::SubmitOrderRequest) -> FieldError {
    SubmitOrder::try_from(r).unwrap_err()
}

#[test]
fn submit_order_happy_path_keeps_every_field() {
    let s = SubmitOrder::try_from(&submit()).unwrap();
    assert_eq!(s.request_id.as_str(), "submit-1");
    assert_eq!((s.buyer.get(), s.merchant.get()), (17, 7));
    let lines: Vec<_> = s
        .lines
        .iter()
        .map(|l| pb::OrderLine {
            sku_id: l.sku.to_string(),
            quantity: l.quantity.get(),
            unit_price: Some(l.unit_price.into()),
        })
        .collect();
    assert_eq!(lines, submit().lines);
    assert_eq!(
        pb::Address::from(&s.address),
        submit().delivery_address.unwrap()
    );
}

#[test]
fn submit_order_needs_a_request_id_a_buyer_and_a_merchant() {
    let mut r = submit();
    r.request_id = "x".repeat(65);
    assert_eq!(
        submit_error(&r).to_string(),
        "request_id: must be 1..=64 characters, got 65"
    );
    let mut r = submit();
    r.request_id = "a\tb".into();
    assert_eq!(
        submit_error(&r).to_string(),
        "request_id: must not hold control characters"
    );
    let mut r = submit();
    r.buyer_id = 0;
    assert_eq!(submit_error(&r).field, "buyer_id");
    let mut r = submit();
    r.merchant_id = -7;
    assert_eq!(submit_error(&r).field, "merchant_id");
}

#[test]
fn submit_order_needs_1_to_50_lines() {
    let mut r = submit();
    r.lines.clear();
    assert_eq!(
        submit_error(&r).to_string(),
        "lines: must hold 1..=50 lines, got 0"
    );
    r.lines = (0..51).map(|i| line(&format!("sku{i}"), 1, 100)).collect();
    assert_eq!(submit_error(&r).field, "lines");
    r.lines.pop();
    assert_eq!(SubmitOrder::try_from(&r).unwrap().lines.len(), MAX_LINES);
}

#[test]
fn line_quantity_must_be_1_to_999() {
    let mut r = submit();
    r.lines = (0..4).map(|i| line(&format!("sku{i}"), 1, 100)).collect();
    r.lines[3].quantity = 0;
    assert_eq!(
        submit_error(&r).to_string(),
        "lines[3].quantity: quantity must be 1..=999, got 0"
    );
    r.lines[3].quantity = 1000;
    assert_eq!(submit_error(&r).field, "lines[3].quantity");
}

#[test]
fn line_sku_must_be_a_valid_sku_id() {
    let mut r = submit();
    r.lines[1].sku_id = "tea cup".into();
    assert_eq!(submit_error(&r).field, "lines[1].sku_id");
}

#[test]
fn no_sku_twice() {
    let mut r = submit();
    r.lines.push(line("noodles-L", 1, 2_800));
    assert_eq!(
        submit_error(&r).to_string(),
        "lines[2].sku_id: sku noodles-L is already on lines[0]"
    );
}

#[test]
fn line_price_is_required_and_positive() {
    let mut r = submit();
    r.lines[0].unit_price = None;
    assert_eq!(
        submit_error(&r).to_string(),
        "lines[0].unit_price: is required"
    );
    let mut r = submit();
    r.lines[1].unit_price = cny(-1);
    assert_eq!(submit_error(&r).field, "lines[1].unit_price.minor_units");
    let mut r = submit();
    r.lines[1].unit_price = Some(pb::Money {
        currency_code: "yuan".into(),
        minor_units: 1,
    });
    assert_eq!(submit_error(&r).field, "lines[1].unit_price.currency_code");
}

#[test]
fn every_line_in_one_currency() {
    let mut r = submit();
    r.lines[1].unit_price = Some(pb::Money {
        currency_code: "USD".into(),
        minor_units: 100,
    });
    assert_eq!(
        submit_error(&r).to_string(),
        "lines[1].unit_price.currency_code: every line must be in CNY like lines[0], got USD"
    );
}

#[test]
fn the_total_must_not_overflow() {
    let mut r = submit();
    // Line 0 asks for 2: twice this is past i64::MAX.
    r.lines[0].unit_price = cny(i64::MAX / 2 + 1);
    assert_eq!(submit_error(&r).field, "lines[0].unit_price.minor_units");
    let mut r = submit();
    r.lines = vec![line("a", 1, i64::MAX), line("b", 1, 1)];
    assert_eq!(submit_error(&r).field, "lines[1].unit_price.minor_units");
}

#[test]
fn delivery_address_is_required_and_valid() {
    let mut r = submit();
    r.delivery_address = None;
    assert_eq!(
        submit_error(&r).to_string(),
        "delivery_address: is required"
    );
    let mut r = submit();
    if let Some(a) = r.delivery_address.as_mut() {
        a.text = "x".repeat(201);
    }
    assert_eq!(submit_error(&r).field, "delivery_address.text");
    let mut r = submit();
    if let Some(a) = r.delivery_address.as_mut() {
        a.location = None;
    }
    assert_eq!(submit_error(&r).field, "delivery_address.location");
    let mut r = submit();
    if let Some(a) = r.delivery_address.as_mut() {
        a.location = Some(pb::GeoPoint {
            lat: 90.5,
            lng: 0.0,
        });
    }
    assert_eq!(
        submit_error(&r).to_string(),
        "delivery_address.location.lat: lat must be a finite number in [-90, 90], got 90.5"
    );
}

fn cancel() -> pb::CancelOrderRequest {
    pb::CancelOrderRequest {
        request_id: "cancel-1".into(),
        order_no: ORDER_NO.into(),
        reason: "changed my mind".into(),
    }
}

#[test]
fn cancel_order_round_trip_with_and_without_a_reason() {
    let c = CancelOrder::try_from(&cancel()).unwrap();
    assert_eq!(
        (c.order_no.as_str(), c.reason.as_str()),
        (ORDER_NO, "changed my mind")
    );
    let mut r = cancel();
    r.reason.clear();
    assert_eq!(CancelOrder::try_from(&r).unwrap().reason, Reason::none());
}

#[test]
fn cancel_order_needs_an_order_number_and_a_short_reason() {
    let mut r = cancel();
    r.order_no = "42".into();
    assert_eq!(CancelOrder::try_from(&r).unwrap_err().field, "order_no");
    let mut r = cancel();
    r.reason = "x".repeat(201);
    assert_eq!(CancelOrder::try_from(&r).unwrap_err().field, "reason");
    let mut r = cancel();
    r.request_id.clear();
    assert_eq!(CancelOrder::try_from(&r).unwrap_err().field, "request_id");
}

fn payment() -> pb::ConfirmPaymentRequest {
    pb::ConfirmPaymentRequest {
        request_id: "pay-1".into(),
        order_no: ORDER_NO.into(),
        payment_txn_id: "wx:4200001234".into(),
        amount: cny(6_200),
    }
}

#[test]
fn confirm_payment_round_trip() {
    let p = ConfirmPayment::try_from(&payment()).unwrap();
    assert_eq!(p.txn.as_str(), "wx:4200001234");
    assert_eq!(Some(pb::Money::from(p.amount)), payment().amount);
    assert_eq!(p.order_no.as_str(), ORDER_NO);
}

#[test]
fn confirm_payment_needs_a_txn_and_a_positive_amount() {
    let mut r = payment();
    r.payment_txn_id = "has space".into();
    assert_eq!(
        ConfirmPayment::try_from(&r).unwrap_err().field,
        "payment_txn_id"
    );
    let mut r = payment();
    r.amount = None;
    assert_eq!(
        ConfirmPayment::try_from(&r).unwrap_err().to_string(),
        "amount: is required"
    );
    let mut r = payment();
    r.amount = cny(0);
    assert_eq!(
        ConfirmPayment::try_from(&r).unwrap_err().field,
        "amount.minor_units"
    );
    let mut r = payment();
    r.order_no = "2026022907171234500004217".into();
    assert_eq!(ConfirmPayment::try_from(&r).unwrap_err().field, "order_no");
}

fn compensate() -> pb::CompensateRequest {
    pb::CompensateRequest {
        request_id: "comp-1".into(),
        order_no: ORDER_NO.into(),
        amount: cny(500),
        reason: "late by 12 minutes".into(),
    }
}

#[test]
fn compensate_round_trip() {
    let c = Compensate::try_from(&compensate()).unwrap();
    assert_eq!(
        (c.amount.minor_units(), c.reason.as_str()),
        (500, "late by 12 minutes")
    );
}

#[test]
fn compensate_needs_a_positive_amount_and_a_short_reason() {
    let mut r = compensate();
    r.amount = None;
    assert_eq!(Compensate::try_from(&r).unwrap_err().field, "amount");
    let mut r = compensate();
    r.amount = cny(-500);
    assert_eq!(
        Compensate::try_from(&r).unwrap_err().field,
        "amount.minor_units"
    );
    let mut r = compensate();
    r.reason = "x".repeat(201);
    assert_eq!(Compensate::try_from(&r).unwrap_err().field, "reason");
    let mut r = compensate();
    r.order_no.clear();
    assert_eq!(Compensate::try_from(&r).unwrap_err().field, "order_no");
}

#[test]
fn close_order_round_trip_and_bad_fields() {
    let r = pb::CloseOrderRequest {
        request_id: "close-1".into(),
        order_no: ORDER_NO.into(),
    };
    let c = CloseOrder::try_from(&r).unwrap();
    assert_eq!(
        (c.request_id.as_str(), c.order_no.as_str()),
        ("close-1", ORDER_NO)
    );
    let mut bad = r.clone();
    bad.order_no = "2026112207171234500004232".into();
    assert_eq!(CloseOrder::try_from(&bad).unwrap_err().field, "order_no");
    let mut bad = r;
    bad.request_id.clear();
    assert_eq!(CloseOrder::try_from(&bad).unwrap_err().field, "request_id");
}
