//! One test per rule of the order up to the grab, named after the rule.

use super::*;
use crate::refusal::{FailureReason, Refusal, RefusalKind};

fn pay(id: &str, minor: i64) -> OrderCommand {
    OrderCommand::ConfirmPayment {
        txn: txn(id),
        amount: cny(minor),
        at: t(3_000),
    }
}

fn grab(rider_id: i64, offer_id: &str, now: i64) -> OrderCommand {
    OrderCommand::Grab {
        rider: rider(rider_id),
        offer_id: offer(offer_id),
        delivery_deadline: t(DELIVERY_DEADLINE),
        now: t(now),
    }
}

fn notify(offer_id: &str, round: u32) -> OrderCommand {
    OrderCommand::NotifyRiders {
        offer_id: offer(offer_id),
        round,
        riders: vec![rider(1), rider(2)],
        radius_m: 3_000,
        expires_at: t(OFFER_EXPIRES * i64::from(round)),
        at: t(4_000),
    }
}

fn refund(id: &str, minor: i64, reason: RefundReason) -> [OrderEvent; 2] {
    [
        PaymentReceived {
            txn: txn(id),
            amount: cny(minor),
            at: t(3_000),
        }
        .into(),
        PaymentRefunded {
            txn: txn(id),
            amount: cny(minor),
            reason,
            at: t(3_000),
        }
        .into(),
    ]
}

// Submit

#[test]
fn submit_opens_an_order_in_creating_with_a_checked_total() {
    let state = given([]).when(submit_with(lines())).then([submitted()]);
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Creating);
    assert_eq!(order.total, cny(TOTAL));
}

#[test]
fn submit_needs_one_to_fifty_lines() {
    given([])
        .when(submit_with(vec![]))
        .then_error(|e| *e == OrderError::LineCount(0));
    let fifty_one = (0..51).map(|i| line(&format!("s{i}"), 1, cny(1))).collect();
    given([])
        .when(submit_with(fifty_one))
        .then_error(|e| *e == OrderError::LineCount(51));
    let fifty = (0..50).map(|i| line(&format!("s{i}"), 1, cny(1))).collect();
    given([]).when(submit_with(fifty)).outcome().1.unwrap();
}

#[test]
fn submit_refuses_a_sku_twice() {
    let twice = vec![line("latte", 1, cny(1)), line("latte", 2, cny(1))];
    let error = given([])
        .when(submit_with(twice))
        .then_error(|e| matches!(e, OrderError::DuplicateSku(s) if s.as_str() == "latte"));
    assert_eq!(error.kind(), RefusalKind::InvalidArgument);
}

#[test]
fn submit_refuses_mixed_currencies() {
    let usd = Money::parse("USD", 100).unwrap();
    let error = given([])
        .when(submit_with(vec![line("a", 1, cny(1)), line("b", 1, usd)]))
        .then_error(|e| matches!(e, OrderError::MixedCurrencies { line: 2, .. }));
    assert_eq!(
        error.to_string(),
        "lines must share one currency: line 2 is USD, line 1 is CNY"
    );
}

#[test]
fn submit_refuses_a_total_that_overflows() {
    let huge = vec![
        line("a", 999, cny(i64::MAX / 1000)),
        line("b", 2, cny(i64::MAX / 1000)),
    ];
    given([])
        .when(submit_with(huge))
        .then_error(|e| *e == OrderError::Money(crate::money::MoneyError::Overflow));
}

#[test]
fn submit_refuses_non_positive_prices() {
    given([])
        .when(submit_with(vec![
            line("a", 1, cny(5)),
            line("b", 1, cny(0)),
        ]))
        .then_error(|e| *e == OrderError::NonPositivePrice { line: 2 });
}

#[test]
fn submit_refuses_an_order_no_of_another_shard() {
    let OrderCommand::Submit {
        buyer: _,
        order_no,
        merchant,
        lines,
        address,
        at,
        refused,
    } = submit_with(lines())
    else {
        unreachable!()
    };
    let other_buyer = BuyerId::new(38).unwrap();
    given([])
        .when(OrderCommand::Submit {
            order_no,
            buyer: other_buyer,
            merchant,
            lines,
            address,
            at,
            refused,
        })
        .then_error(|e| matches!(e, OrderError::ShardMismatch { .. }));
}

#[test]
fn submit_of_an_existing_order_is_refused() {
    given([submitted()])
        .when(submit_with(lines()))
        .then_error(|e| matches!(e, OrderError::AlreadyExists(_)));
}

#[test]
fn commands_on_a_missing_order_are_not_found() {
    let error = given([])
        .when(pay("txn-1", TOTAL))
        .then_error(|e| *e == OrderError::NotFound);
    assert_eq!(error.kind(), RefusalKind::NotFound);
}

// Create / reject

#[test]
fn create_opens_the_payment_window() {
    let state = given([submitted()])
        .when(OrderCommand::Create {
            payment_deadline: t(PAYMENT_DEADLINE),
            at: t(2_000),
        })
        .then([created()]);
    assert_eq!(
        state.order().unwrap().payment_deadline,
        Some(t(PAYMENT_DEADLINE))
    );
}

#[test]
fn create_refuses_a_payment_deadline_not_after_now() {
    given([submitted()])
        .when(OrderCommand::Create {
            payment_deadline: t(2_000),
            at: t(2_000),
        })
        .then_error(|e| {
            matches!(
                e,
                OrderError::DeadlineNotAfter {
                    field: "payment_deadline",
                    ..
                }
            )
        });
}

#[test]
fn reject_fails_the_order_and_keeps_the_reason() {
    let state = given([submitted()])
        .when(OrderCommand::Reject {
            reason: FailureReason::OutOfStock,
            sku: None,
            at: t(2_000),
        })
        .then([failed()]);
    assert_eq!(
        state.order().unwrap().failure,
        Some(FailureReason::OutOfStock)
    );
}

#[test]
fn create_after_failure_is_refused_naming_the_status() {
    let error = given([submitted(), failed()])
        .when(OrderCommand::Create {
            payment_deadline: t(PAYMENT_DEADLINE),
            at: t(2_000),
        })
        .then_error(|e| matches!(e, OrderError::InvalidTransition { .. }));
    assert_eq!(error.to_string(), "cannot create an order in status FAILED");
    assert_eq!(error.kind(), RefusalKind::FailedPrecondition);
}

// Payment

#[test]
fn payment_of_the_total_pays_a_created_order() {
    given([submitted(), created()])
        .when(pay("txn-1", TOTAL))
        .then([paid()]);
}

#[test]
fn payment_of_another_amount_is_refused() {
    given([submitted(), created()])
        .when(pay("txn-1", TOTAL - 1))
        .then_error(|e| matches!(e, OrderError::AmountMismatch { .. }));
}

#[test]
fn the_same_payment_again_is_a_no_op() {
    given([submitted(), created(), paid()])
        .when(pay("txn-1", TOTAL))
        .then_nothing();
    // Even much later in the order's life.
    given(delivering()).when(pay("txn-1", TOTAL)).then_nothing();
}

#[test]
fn the_same_txn_with_another_amount_is_refused() {
    given([submitted(), created(), paid()])
        .when(pay("txn-1", 1))
        .then_error(|e| matches!(e, OrderError::TxnAmountConflict { .. }));
}

#[test]
fn payment_after_cancel_is_recorded_and_refunded() {
    let state = given([submitted(), created(), cancelled()])
        .when(pay("txn-1", TOTAL))
        .then(refund("txn-1", TOTAL, RefundReason::OrderCancelled));
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.refunded, cny(TOTAL));
}

#[test]
fn payment_after_failure_is_recorded_and_refunded() {
    given([submitted(), failed()])
        .when(pay("txn-9", 10))
        .then(refund("txn-9", 10, RefundReason::OrderFailed));
}

#[test]
fn a_second_txn_on_a_paid_order_is_recorded_and_refunded() {
    let state = given([submitted(), created(), paid()])
        .when(pay("txn-2", TOTAL))
        .then(refund("txn-2", TOTAL, RefundReason::AlreadyPaid));
    assert_eq!(state.order().unwrap().status, OrderStatus::Paid);
}

#[test]
fn a_refunded_payment_repeated_is_a_no_op() {
    let history = concat(
        vec![submitted(), created(), cancelled()],
        refund("txn-1", TOTAL, RefundReason::OrderCancelled),
    );
    given(history).when(pay("txn-1", TOTAL)).then_nothing();
}

#[test]
fn payment_while_creating_is_refused() {
    given([submitted()])
        .when(pay("txn-1", TOTAL))
        .then_error(|e| {
            matches!(
                e,
                OrderError::InvalidTransition {
                    status: OrderStatus::Creating,
                    ..
                }
            )
        });
}

// Cancel

#[test]
fn buyer_cancels_a_created_order() {
    given([submitted(), created()])
        .when(OrderCommand::Cancel {
            cause: CancelCause::Buyer {
                reason: Reason::parse("changed my mind").unwrap(),
            },
            now: t(3_000),
        })
        .then([cancelled()]);
}

#[test]
fn payment_deadline_cancels_only_once_passed() {
    let cancel_at = |now| OrderCommand::Cancel {
        cause: CancelCause::PaymentDeadlinePassed,
        now: t(now),
    };
    given([submitted(), created()])
        .when(cancel_at(PAYMENT_DEADLINE - 1))
        .then_error(|e| matches!(e, OrderError::PaymentDeadlineNotPassed { .. }));
    given([submitted(), created()])
        .when(cancel_at(PAYMENT_DEADLINE))
        .then([OrderCancelled {
            cause: CancelCause::PaymentDeadlinePassed,
            at: t(PAYMENT_DEADLINE),
        }
        .into()]);
}

#[test]
fn cancel_after_payment_is_refused() {
    given([submitted(), created(), paid()])
        .when(OrderCommand::Cancel {
            cause: CancelCause::Buyer {
                reason: Reason::none(),
            },
            now: t(3_000),
        })
        .then_error(|e| {
            matches!(
                e,
                OrderError::InvalidTransition {
                    status: OrderStatus::Paid,
                    ..
                }
            )
        });
}

// Offers

#[test]
fn notify_offers_a_paid_order_to_riders() {
    given([submitted(), created(), paid()])
        .when(notify("offer-1", 1))
        .then([notified(1)]);
}

#[test]
fn offer_rounds_follow_each_other() {
    given([submitted(), created(), paid()])
        .when(notify("offer-2", 2))
        .then_error(|e| {
            *e == OrderError::OfferRoundNotNext {
                expected: 1,
                got: 2,
            }
        });
    given([
        submitted(),
        created(),
        paid(),
        notified(1),
        offer_expired(1),
    ])
    .when(notify("offer-2", 2))
    .then([notified(2)]);
}

#[test]
fn an_offer_id_is_used_once() {
    given([
        submitted(),
        created(),
        paid(),
        notified(1),
        offer_expired(1),
    ])
    .when(notify("offer-1", 2))
    .then_error(|e| matches!(e, OrderError::OfferIdReused(_)));
}

#[test]
fn an_offer_needs_distinct_riders_a_valid_radius_and_a_future_expiry() {
    let history = [submitted(), created(), paid()];
    let with = |riders: Vec<RiderId>, radius_m: u32, expires_at: i64| OrderCommand::NotifyRiders {
        offer_id: offer("offer-1"),
        round: 1,
        riders,
        radius_m,
        expires_at: t(expires_at),
        at: t(4_000),
    };
    given(history.clone())
        .when(with(vec![rider(1), rider(1)], 3_000, 9_000))
        .then_error(|e| *e == OrderError::DuplicateRider(rider(1)));
    given(history.clone())
        .when(with(vec![rider(1)], 0, 9_000))
        .then_error(|e| *e == OrderError::RadiusOutOfRange(0));
    given(history.clone())
        .when(with(vec![rider(1)], 50_001, 9_000))
        .then_error(|e| *e == OrderError::RadiusOutOfRange(50_001));
    given(history.clone())
        .when(with(vec![rider(1)], 3_000, 4_000))
        .then_error(|e| {
            matches!(
                e,
                OrderError::DeadlineNotAfter {
                    field: "expires_at",
                    ..
                }
            )
        });
    // Nobody nearby still opens a window, so the expiry can widen the radius.
    given(history)
        .when(with(vec![], 3_000, 9_000))
        .outcome()
        .1
        .unwrap();
}

#[test]
fn an_expired_offer_returns_the_order_to_paid() {
    let state = given([submitted(), created(), paid(), notified(1)])
        .when(OrderCommand::ExpireOffer {
            offer_id: offer("offer-1"),
            now: t(OFFER_EXPIRES),
        })
        .then([offer_expired(1)]);
    assert_eq!(state.status(), Some(OrderStatus::Paid));
}

#[test]
fn an_offer_does_not_expire_early() {
    given([submitted(), created(), paid(), notified(1)])
        .when(OrderCommand::ExpireOffer {
            offer_id: offer("offer-1"),
            now: t(OFFER_EXPIRES - 1),
        })
        .then_error(|e| matches!(e, OrderError::OfferNotExpired { .. }));
}

#[test]
fn only_the_current_offer_expires() {
    given([
        submitted(),
        created(),
        paid(),
        notified(1),
        offer_expired(1),
        notified(2),
    ])
    .when(OrderCommand::ExpireOffer {
        offer_id: offer("offer-1"),
        now: t(10 * OFFER_EXPIRES),
    })
    .then_error(|e| matches!(e, OrderError::StaleOffer(_)));
}

// Grab

#[test]
fn first_grab_wins() {
    let state = given([submitted(), created(), paid(), notified(1)])
        .when(grab(1, "offer-1", 5_000))
        .then([grabbed()]);
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Delivering);
    assert_eq!(order.rider, Some(rider(1)));
}

#[test]
fn grab_after_another_rider_won_is_refused() {
    let error = given([submitted(), created(), paid(), notified(1), grabbed()])
        .when(grab(2, "offer-1", 5_001))
        .then_error(|e| *e == OrderError::AlreadyGrabbed(rider(1)));
    assert_eq!(error.kind(), RefusalKind::Aborted);
}

#[test]
fn grab_with_an_old_rounds_offer_is_refused() {
    let error = given([
        submitted(),
        created(),
        paid(),
        notified(1),
        offer_expired(1),
        notified(2),
    ])
    .when(grab(1, "offer-1", 25_000))
    .then_error(|e| matches!(e, OrderError::StaleOffer(_)));
    assert_eq!(error.kind(), RefusalKind::Aborted);
}

#[test]
fn grab_by_a_rider_not_offered_this_round_is_refused() {
    let error = given([submitted(), created(), paid(), notified(1)])
        .when(grab(3, "offer-1", 5_000))
        .then_error(|e| *e == OrderError::RiderNotOffered(rider(3)));
    assert_eq!(error.kind(), RefusalKind::Aborted);
}

#[test]
fn grab_after_the_offer_window_is_refused() {
    given([submitted(), created(), paid(), notified(1)])
        .when(grab(1, "offer-1", OFFER_EXPIRES))
        .then_error(|e| matches!(e, OrderError::OfferExpired { .. }));
}

#[test]
fn grab_between_rounds_is_refused() {
    let error = given([
        submitted(),
        created(),
        paid(),
        notified(1),
        offer_expired(1),
    ])
    .when(grab(1, "offer-1", 5_000))
    .then_error(|e| matches!(e, OrderError::StaleOffer(_)));
    assert_eq!(error.kind(), RefusalKind::Aborted);
}

#[test]
fn grab_needs_a_delivery_deadline_after_now() {
    given([submitted(), created(), paid(), notified(1)])
        .when(OrderCommand::Grab {
            rider: rider(1),
            offer_id: offer("offer-1"),
            delivery_deadline: t(5_000),
            now: t(5_000),
        })
        .then_error(|e| matches!(e, OrderError::DeadlineNotAfter { .. }));
}
