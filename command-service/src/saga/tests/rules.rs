//! One test per rule of the saga, in process.

use std::time::Duration;

use orderflow_domain::order::{CancelCause, OrderCommand, OrderStatus};
use orderflow_domain::sku::{ReservationState, SkuCommand};
use orderflow_domain::{FailureReason, PaymentTxnId, Reason, Timestamp};
use orderflow_infra::bus::ConsumerConfig;

use super::*;
use crate::saga::RefundRequest;

#[tokio::test]
async fn a_submitted_order_is_reserved_then_created() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.dish(1, "latte", 1_500, 10).await;
    w.dish(1, "bagel", 800, 10).await;
    let saga = w.run(w.saga());
    let order = w
        .submit(1, 1, vec![line("latte", 2, 1_500), line("bagel", 1, 800)])
        .await;
    assert_eq!(w.outcome(&order).await, (OrderStatus::Created, None));
    let placed = w.order(&order).await;
    let deadline = placed.order().unwrap().payment_deadline.unwrap();
    assert_eq!(
        deadline,
        Timestamp::from_millis(T0).plus(Duration::from_secs(15 * 60))
    );
    for (name, qty) in [("latte", 2), ("bagel", 1)] {
        let state = w.sku_state(name).await;
        let held = state.reservation(&order).unwrap();
        assert_eq!(
            (held.state, held.quantity.get()),
            (ReservationState::Reserved, qty)
        );
        assert_eq!(
            held.expires_at,
            Timestamp::from_millis(T0).plus(Duration::from_secs(20 * 60))
        );
        assert_identity(&state);
    }
    saga.stop().await.unwrap();
    w.shutdown().await;
}

#[tokio::test]
async fn a_refused_line_fails_the_order_with_its_reason_and_releases_the_rest() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.open_merchant(2).await;
    w.close_merchant(2).await;
    w.dish(1, "latte", 1_500, 100).await;
    w.dish(1, "scarce", 500, 1).await;
    w.dish(1, "gone", 700, 10).await;
    w.stock
        .execute(
            &sku("gone"),
            SkuCommand::Delist {
                merchant: merchant(1),
                at: Timestamp::from_millis(T0 - 1),
            },
            &meta("delist-gone"),
        )
        .await
        .unwrap();
    w.dish(2, "closed-dish", 900, 10).await;
    let saga = w.run(w.saga());

    let cases = [
        (
            1,
            1,
            vec![line("scarce", 2, 500)],
            FailureReason::OutOfStock,
            Some("scarce"),
        ),
        (
            2,
            1,
            vec![line("gone", 1, 700)],
            FailureReason::DishDelisted,
            Some("gone"),
        ),
        (
            3,
            1,
            vec![line("scarce", 1, 499)],
            FailureReason::PriceChanged,
            Some("scarce"),
        ),
        (
            4,
            1,
            vec![line("nosuch", 1, 100)],
            FailureReason::UnknownSku,
            Some("nosuch"),
        ),
        (
            5,
            2,
            vec![line("closed-dish", 1, 900)],
            FailureReason::MerchantClosed,
            None,
        ),
        // Another merchant's dish is, to this order, a dish that does not exist.
        (
            6,
            1,
            vec![line("closed-dish", 1, 900)],
            FailureReason::UnknownSku,
            Some("closed-dish"),
        ),
    ];
    for (n, m, mut lines, reason, failed_sku) in cases {
        // Every order also asks for a latte, reserved first and to be given back.
        lines.insert(0, line("latte", 3, 1_500));
        let order = w.submit(n, m, lines).await;
        assert_eq!(
            w.outcome(&order).await,
            (OrderStatus::Failed, Some(reason)),
            "order {n}"
        );
        let events = w.all_events().await;
        let failed = events
            .iter()
            .find(|e| e.stream == order.stream_id() && e.event_type == "OrderFailed")
            .unwrap();
        assert_eq!(
            failed.payload.decode::<serde_json::Value>().unwrap()["sku"].as_str(),
            failed_sku,
            "order {n}"
        );
        let latte = w.sku_state("latte").await;
        match latte.reservation(&order) {
            // Merchant closed: nothing was reserved at all.
            None => assert_eq!(reason, FailureReason::MerchantClosed),
            Some(held) => assert_eq!(held.state, ReservationState::Released, "order {n}"),
        }
    }
    for name in ["latte", "scarce", "gone", "closed-dish"] {
        let state = w.sku_state(name).await;
        assert_eq!(state.stock().reserved, 0, "{name}");
        assert_identity(&state);
    }
    saga.stop().await.unwrap();
    w.shutdown().await;
}

#[tokio::test]
async fn paid_orders_are_deducted_cancelled_ones_released_and_late_payments_refunded() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.dish(1, "latte", 1_500, 10).await;
    let refunds = w
        .bus
        .consumer(ConsumerConfig::new(
            "refund-provider",
            w.bus.subjects().payment_refunds_all(),
        ))
        .await
        .unwrap();
    let saga = w.run(w.saga());
    let paid = w.submit(1, 1, vec![line("latte", 2, 1_500)]).await;
    let cancelled = w.submit(2, 1, vec![line("latte", 3, 1_500)]).await;
    assert_eq!(w.outcome(&paid).await.0, OrderStatus::Created);
    assert_eq!(w.outcome(&cancelled).await.0, OrderStatus::Created);

    let pay = |txn: &str, amount| OrderCommand::ConfirmPayment {
        txn: PaymentTxnId::parse(txn).unwrap(),
        amount: cny(amount),
        at: Timestamp::from_millis(T0 + 1_000),
    };
    w.executor
        .execute::<Order>(&paid.stream_id(), &pay("txn-1", 3_000), &meta("pay-1"))
        .await
        .unwrap();
    let cancel = OrderCommand::Cancel {
        cause: CancelCause::Buyer {
            reason: Reason::parse("changed my mind").unwrap(),
        },
        now: Timestamp::from_millis(T0 + 1_000),
    };
    w.executor
        .execute::<Order>(&cancelled.stream_id(), &cancel, &meta("cancel-2"))
        .await
        .unwrap();
    // The payment arrives after the cancel: recorded and refunded.
    w.executor
        .execute::<Order>(&cancelled.stream_id(), &pay("txn-2", 4_500), &meta("pay-2"))
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state = w.sku_state("latte").await;
        let settled = state.reservation(&paid).map(|r| r.state) == Some(ReservationState::Deducted)
            && state.reservation(&cancelled).map(|r| r.state) == Some(ReservationState::Released);
        if settled {
            let s = state.stock();
            assert_eq!((s.available, s.reserved, s.deducted), (8, 0, 2));
            assert_identity(&state);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let got = refunds.fetch(1, Duration::from_secs(10)).await.unwrap();

    assert_eq!(got.len(), 1);
    let refund_event = w
        .all_events()
        .await
        .into_iter()
        .find(|e| e.event_type == "PaymentRefunded")
        .unwrap();
    let message = &got[0].message;
    assert_eq!(
        message.subject,
        w.bus.subjects().payment_refund(cancelled.as_str())
    );
    assert_eq!(
        message.header("Nats-Msg-Id"),
        Some(refund_event.event_id.to_string().as_str())
    );
    // The documented wire format (docs/bus.md), pinned.
    let json: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["refund_id"], refund_event.event_id.to_string());
    assert_eq!(json["order_no"], cancelled.as_str());
    assert_eq!(json["txn"], "txn-2");
    assert_eq!(json["amount"]["currency_code"], "CNY");
    assert_eq!(json["amount"]["minor_units"], 4_500);
    assert_eq!(json["reason"], "order_cancelled");
    assert_eq!(json["correlation_id"], "test");
    let body: RefundRequest = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(body.refund_id, refund_event.event_id);
    assert_eq!(
        (body.order_no, body.amount),
        (cancelled.clone(), cny(4_500))
    );
    assert_eq!(body.txn.as_str(), "txn-2");
    got[0].ack().await.unwrap();
    saga.stop().await.unwrap();
    w.shutdown().await;
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.dish(1, "latte", 1_500, 3).await;
    let saga = w.run(w.saga());
    let created = w.submit(1, 1, vec![line("latte", 2, 1_500)]).await;
    let failed = w.submit(2, 1, vec![line("latte", 2, 1_500)]).await;
    let cancelled = w.submit(3, 1, vec![line("latte", 1, 1_500)]).await;
    assert_eq!(w.outcome(&created).await.0, OrderStatus::Created);
    assert_eq!(w.outcome(&failed).await.0, OrderStatus::Failed);
    assert_eq!(w.outcome(&cancelled).await.0, OrderStatus::Created);
    let cancel = OrderCommand::Cancel {
        cause: CancelCause::Buyer {
            reason: Reason::parse("no").unwrap(),
        },
        now: Timestamp::from_millis(T0 + 1),
    };
    w.executor
        .execute::<Order>(&cancelled.stream_id(), &cancel, &meta("cancel-3"))
        .await
        .unwrap();
    for c in CONSUMERS {
        w.wait_caught_up(c).await;
    }
    saga.stop().await.unwrap();
    // Restock meanwhile: the failed order's refused line, decided again, now succeeds.
    let restock = SkuCommand::Restock {
        merchant: merchant(1),
        quantity: orderflow_domain::RestockQuantity::new(10).unwrap(),
        at: Timestamp::from_millis(T0 + 2),
    };
    w.sku_command("latte", restock, "restock-more".into()).await;
    let before = w.all_events().await;

    // Both consumers forget everything and see every event again.
    for c in CONSUMERS {
        w.forget(c).await;
    }
    let saga = w.run(w.saga());
    for c in CONSUMERS {
        w.wait_caught_up(c).await;
    }
    saga.stop().await.unwrap();
    let after = w.all_events().await;
    let count = |events: &[RecordedEvent], category: &str| {
        events
            .iter()
            .filter(|e| e.stream.category() == category)
            .count()
    };
    // No order moved; the only new stock events are the failed order's refused line,
    // reserved now that there is stock and at once given back (a refusal leaves no trace
    // to repeat, and its order is FAILED).
    assert_eq!(count(&after, "order"), count(&before, "order"));
    assert_eq!(count(&after, "sku"), count(&before, "sku") + 2);
    let latte = w.sku_state("latte").await;
    assert_identity(&latte);
    assert_eq!(
        latte.stock().reserved,
        2,
        "only the created order holds stock"
    );
    assert_eq!(
        latte.reservation(&failed).map(|r| r.state),
        Some(ReservationState::Released)
    );
    assert_eq!(w.status(&created).await, Some(OrderStatus::Created));
    assert_eq!(w.status(&failed).await, Some(OrderStatus::Failed));
    assert_eq!(w.status(&cancelled).await, Some(OrderStatus::Cancelled));
    w.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_reservations_and_outcome_resumes_without_reserving_twice() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.dish(1, "latte", 1_500, 10).await;
    w.dish(1, "bagel", 800, 10).await;
    let crashing = w.run(w.saga().crashing_after_reserve());
    let order = w
        .submit(1, 1, vec![line("latte", 2, 1_500), line("bagel", 3, 800)])
        .await;
    // The reservations land, then the saga dies before the outcome.
    let result = crashing.task.await.unwrap();
    assert!(matches!(result, Err(SagaError::Task(_))), "{result:?}");
    assert_eq!(w.status(&order).await, Some(OrderStatus::Creating));
    assert_eq!(w.sku_state("latte").await.stock().reserved, 2);
    assert_eq!(w.sku_state("bagel").await.stock().reserved, 3);

    // Restarted from its checkpoint: the submission comes again and is finished.
    let saga = w.run(w.saga());
    assert_eq!(w.outcome(&order).await, (OrderStatus::Created, None));
    saga.stop().await.unwrap();
    for (name, qty) in [("latte", 2), ("bagel", 3)] {
        let state = w.sku_state(name).await;
        assert_eq!(state.stock().reserved, qty, "{name}");
        assert_identity(&state);
        let reserved = w
            .all_events()
            .await
            .into_iter()
            .filter(|e| e.stream == sku(name).stream_id() && e.event_type == "StockReserved")
            .count();
        assert_eq!(reserved, 1, "{name} reserved once");
    }
    w.shutdown().await;
}
