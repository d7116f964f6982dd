//! A submission refused at once (a line's SKU already sold out, delisted or repriced):
//! one `OrderRefused`, and an order exactly as `OrderSubmitted` + `OrderFailed` leave it.

use super::*;
use crate::refusal::{FailureReason, Refusal, RefusalKind};

fn refusal(sku: &str, reason: FailureReason) -> Option<LineRefusal> {
    Some(LineRefusal {
        reason,
        sku: SkuId::parse(sku).unwrap(),
    })
}

pub(super) fn submit_refused(sku: &str, reason: FailureReason) -> OrderCommand {
    let mut command = submit_with(lines());
    if let OrderCommand::Submit { refused, .. } = &mut command {
        *refused = refusal(sku, reason);
    }
    command
}

fn the_submission() -> OrderSubmitted {
    let OrderEvent::Submitted(e) = submitted() else {
        unreachable!()
    };
    e
}

pub(super) fn refused(sku: &str, reason: FailureReason) -> OrderEvent {
    OrderRefused {
        submitted: the_submission(),
        reason,
        sku: SkuId::parse(sku).unwrap(),
    }
    .into()
}

#[test]
fn a_refused_line_refuses_the_order_with_one_event() {
    given([])
        .when(submit_refused("bagel", FailureReason::OutOfStock))
        .then([refused("bagel", FailureReason::OutOfStock)]);
}

#[test]
fn a_refused_order_is_what_submitted_then_failed_leave_at_the_same_instant() {
    for reason in [
        FailureReason::OutOfStock,
        FailureReason::DishDelisted,
        FailureReason::PriceChanged,
    ] {
        let once = Order::fold(&[refused("latte", reason)]);
        let twice = Order::fold(&[
            submitted(),
            OrderFailed {
                reason,
                sku: Some(SkuId::parse("latte").unwrap()),
                at: t(1_000),
            }
            .into(),
        ]);
        assert_eq!(once, twice);
        let order = once.order().unwrap();
        assert_eq!(order.status, OrderStatus::Failed);
        assert_eq!(order.failure, Some(reason));
        assert_eq!(order.updated_at, t(1_000));
    }
}

#[test]
fn the_refusing_sku_must_be_a_line() {
    let error = given([])
        .when(submit_refused("croissant", FailureReason::OutOfStock))
        .then_error(
            |e| matches!(e, OrderError::RefusedSkuNotALine(s) if s.as_str() == "croissant"),
        );
    assert_eq!(error.kind(), RefusalKind::InvalidArgument);
}

#[test]
fn an_invalid_submission_is_refused_for_what_is_wrong_with_it_not_for_stock() {
    let OrderCommand::Submit {
        order_no,
        buyer,
        merchant,
        address,
        at,
        ..
    } = submit_with(lines())
    else {
        unreachable!()
    };
    given([])
        .when(OrderCommand::Submit {
            order_no,
            buyer,
            merchant,
            lines: vec![line("latte", 1, cny(100)), line("latte", 1, cny(100))],
            address,
            at,
            refused: refusal("latte", FailureReason::OutOfStock),
        })
        .then_error(|e| matches!(e, OrderError::DuplicateSku(_)));
}

#[test]
fn a_refused_order_cannot_be_submitted_again_nor_created() {
    given([refused("latte", FailureReason::OutOfStock)])
        .when(submit_with(lines()))
        .then_error(|e| matches!(e, OrderError::AlreadyExists(_)));
    given([refused("latte", FailureReason::OutOfStock)])
        .when(OrderCommand::Create {
            payment_deadline: t(PAYMENT_DEADLINE),
            at: t(2_000),
        })
        .then_error(|e| matches!(e, OrderError::InvalidTransition { .. }));
}

#[test]
fn a_payment_for_a_refused_order_is_recorded_and_refunded() {
    let at = t(3_000);
    let state = given([refused("latte", FailureReason::OutOfStock)])
        .when(OrderCommand::ConfirmPayment {
            txn: txn("txn-9"),
            amount: cny(TOTAL),
            at,
        })
        .then([
            PaymentReceived {
                txn: txn("txn-9"),
                amount: cny(TOTAL),
                at,
            }
            .into(),
            PaymentRefunded {
                txn: txn("txn-9"),
                amount: cny(TOTAL),
                reason: RefundReason::OrderFailed,
                at,
            }
            .into(),
        ]);
    assert_eq!(state.order().unwrap().refunded, cny(TOTAL));
}
