//! The payment provider's callback end to end: retries are one payment and one deduction;
//! a payment for a cancelled order is recorded and refunded on the payments stream.

use std::time::Duration;

use orderflow_domain::order::{OrderEvent, OrderStatus, RefundReason};
use orderflow_domain::sku::SkuEvent;
use orderflow_infra::bus::StreamKind;
use orderflow_tests::v1 as pb;
use orderflow_tests::*;

const SHOP: i64 = 7;
const SKU: &str = "bao";
const PRICE: i64 = 900;
const BUYER: i64 = 42;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_callback_retried_is_one_payment_and_one_deduction() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    let order_no = app.submit(BUYER, SHOP, SKU, 3, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;

    let provider = app.payment_provider();
    // The provider retries its callback five times with the same request id…
    let first = provider
        .confirm_payment(pay_request("cb-1".into(), &order_no, "txn-1", 3 * PRICE))
        .await?;
    for _ in 0..4 {
        let again = provider
            .confirm_payment(pay_request("cb-1".into(), &order_no, "txn-1", 3 * PRICE))
            .await?;
        assert_eq!(again, first, "a retried request id answers the first reply");
    }
    // …and five more times under new request ids, for the same transaction.
    for _ in 0..5 {
        provider
            .confirm_payment(pay_request(rid(), &order_no, "txn-1", 3 * PRICE))
            .await?;
    }

    wait_until("the reservation deducted", WAIT, || async {
        Ok(app.stock(SKU).await?.deducted == 3)
    })
    .await?;
    let (state, events) = app.order(&order_no).await?;
    let order = state.order().unwrap();
    // PAID, or NOTIFIED already: the notifier offers it (to nobody: no rider is online).
    assert!(
        matches!(order.status, OrderStatus::Paid | OrderStatus::Notified),
        "{:?}",
        order.status
    );
    assert_eq!(count(&events, |e| matches!(e, OrderEvent::Paid(_))), 1);
    assert_eq!(
        count(&events, |e| matches!(
            e,
            OrderEvent::PaymentReceived(_) | OrderEvent::PaymentRefunded(_)
        )),
        0,
        "the same transaction is never taken as a second payment"
    );
    assert_eq!(order.payments.len(), 1);
    // Give the saga time to (wrongly) deduct twice before counting deductions: one relay
    // and consumer round trip is well under this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, sku_events) = app.sku(SKU).await?;
    assert_eq!(
        count(
            &sku_events,
            |e| matches!(e, SkuEvent::Deducted(d) if d.order_no.as_str() == order_no)
        ),
        1
    );
    let stock = app.stock(SKU).await?;
    assert_eq!(
        (stock.added, stock.available, stock.reserved, stock.deducted),
        (10, 7, 0, 3)
    );

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_cancel_is_recorded_and_refunded() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    let order_no = app.submit(BUYER, SHOP, SKU, 2, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    app.buyer(BUYER)
        .cancel_order(pb::CancelOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
            reason: "changed my mind".into(),
        })
        .await?;
    assert_eq!(app.placed(&order_no).await?.status, OrderStatus::Cancelled);

    // The money arrives anyway: accepted (the provider must not retry forever), recorded,
    // refunded.
    app.payment_provider()
        .confirm_payment(pay_request(rid(), &order_no, "txn-late", 2 * PRICE))
        .await?;
    // The same transaction again changes nothing: one refund.
    app.payment_provider()
        .confirm_payment(pay_request(rid(), &order_no, "txn-late", 2 * PRICE))
        .await?;

    let (state, events) = app.order(&order_no).await?;
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(count(&events, |e| matches!(e, OrderEvent::Paid(_))), 0);
    assert_eq!(
        count(&events, |e| matches!(e, OrderEvent::PaymentReceived(_))),
        1
    );
    let refunded: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::PaymentRefunded(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(refunded.len(), 1);
    assert_eq!(refunded[0].txn.as_str(), "txn-late");
    assert_eq!(refunded[0].amount.minor_units(), 2 * PRICE);
    assert_eq!(refunded[0].reason, RefundReason::OrderCancelled);

    // The saga hands the refund to the payment provider on the payments stream.
    let refunds = app.refunds(1, WAIT).await?;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let refund = &refunds[0];
    assert_eq!(refund.order_no.as_str(), order_no);
    assert_eq!(refund.txn.as_str(), "txn-late");
    assert_eq!(refund.amount.minor_units(), 2 * PRICE);
    assert_eq!(refund.reason, RefundReason::OrderCancelled);
    assert_eq!(app.nats.stream_len(StreamKind::Payments).await?, 1);

    // Nothing was deducted: the cancel released the stock, the late payment took none.
    wait_until("the reservation released", WAIT, || async {
        Ok(app.stock(SKU).await?.available == 10)
    })
    .await?;
    let stock = app.stock(SKU).await?;
    assert_eq!((stock.reserved, stock.deducted), (0, 0));

    app.shutdown().await
}
