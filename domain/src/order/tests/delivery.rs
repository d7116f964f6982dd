//! One test per rule of the order from pick-up to closing, named after the rule.

use super::*;
use crate::refusal::{Refusal, RefusalKind};

// Delivery

#[test]
fn only_the_assigned_rider_picks_up_once() {
    let history = vec![submitted(), created(), paid(), notified(1), grabbed()];
    let error = given(history.clone())
        .when(OrderCommand::PickUp {
            rider: rider(2),
            at: t(6_000),
        })
        .then_error(|e| *e == OrderError::NotAssignedRider(rider(2)));
    assert_eq!(error.kind(), RefusalKind::PermissionDenied);
    let state = given(history)
        .when(OrderCommand::PickUp {
            rider: rider(1),
            at: t(6_000),
        })
        .then([picked_up()]);
    assert_eq!(state.status(), Some(OrderStatus::Delivering));
    given(delivering())
        .when(OrderCommand::PickUp {
            rider: rider(1),
            at: t(7_000),
        })
        .then_error(|e| *e == OrderError::AlreadyPickedUp);
}

#[test]
fn delivery_deadline_times_out_only_once_passed() {
    given(delivering())
        .when(OrderCommand::DeliveryDeadlinePassed {
            now: t(DELIVERY_DEADLINE - 1),
        })
        .then_error(|e| matches!(e, OrderError::DeliveryDeadlineNotPassed { .. }));
    let state = given(delivering())
        .when(OrderCommand::DeliveryDeadlinePassed {
            now: t(DELIVERY_DEADLINE),
        })
        .then([timed_out()]);
    assert!(state.order().unwrap().late);
}

#[test]
fn delivery_needs_a_pick_up() {
    given([submitted(), created(), paid(), notified(1), grabbed()])
        .when(OrderCommand::ConfirmDelivery {
            rider: rider(1),
            at: t(50_000),
        })
        .then_error(|e| *e == OrderError::NotPickedUp);
}

#[test]
fn delivery_in_time_is_received_on_time() {
    let state = given(delivering())
        .when(OrderCommand::ConfirmDelivery {
            rider: rider(1),
            at: t(50_000),
        })
        .then([delivered(false)]);
    assert_eq!(state.status(), Some(OrderStatus::Received));
}

#[test]
fn delivery_after_the_timeout_is_received_late() {
    given(concat(delivering(), [timed_out()]))
        .when(OrderCommand::ConfirmDelivery {
            rider: rider(1),
            at: t(120_000),
        })
        .then([delivered(true)]);
}

#[test]
fn delivery_past_the_deadline_is_late_even_before_the_timer_fires() {
    given(delivering())
        .when(OrderCommand::ConfirmDelivery {
            rider: rider(1),
            at: t(120_000),
        })
        .then([delivered(true)]);
}

#[test]
fn delivery_by_another_rider_is_refused() {
    given(delivering())
        .when(OrderCommand::ConfirmDelivery {
            rider: rider(2),
            at: t(50_000),
        })
        .then_error(|e| *e == OrderError::NotAssignedRider(rider(2)));
}

// After delivery

fn compensate(minor: i64) -> OrderCommand {
    OrderCommand::Compensate {
        amount: cny(minor),
        reason: Reason::parse("late").unwrap(),
        at: t(130_000),
    }
}

#[test]
fn a_late_order_is_compensated_up_to_its_total() {
    let late = concat(delivering(), [timed_out(), delivered(true)]);
    given(late.clone())
        .when(compensate(500))
        .then([compensated()]);
    given(late.clone())
        .when(compensate(TOTAL))
        .outcome()
        .1
        .unwrap();
    for bad in [0, -1, TOTAL + 1] {
        given(late.clone())
            .when(compensate(bad))
            .then_error(|e| matches!(e, OrderError::CompensationOutOfRange { .. }));
    }
    given(late)
        .when(OrderCommand::Compensate {
            amount: Money::parse("USD", 1).unwrap(),
            reason: Reason::none(),
            at: t(130_000),
        })
        .then_error(|e| matches!(e, OrderError::Money(_)));
}

#[test]
fn an_order_on_time_is_not_compensated() {
    given(concat(delivering(), [delivered(false)]))
        .when(compensate(500))
        .then_error(|e| *e == OrderError::NotLate);
}

#[test]
fn an_order_on_time_closes_when_received() {
    given(concat(delivering(), [delivered(false)]))
        .when(OrderCommand::Close { at: t(140_000) })
        .then([closed()]);
}

#[test]
fn a_late_order_closes_only_once_compensated() {
    let late = concat(delivering(), [timed_out(), delivered(true)]);
    given(late.clone())
        .when(OrderCommand::Close { at: t(140_000) })
        .then_error(|e| *e == OrderError::LateOrderNotCompensated);
    given(concat(late, [compensated()]))
        .when(OrderCommand::Close { at: t(140_000) })
        .then([closed()]);
}

#[test]
fn a_closed_order_refuses_to_move() {
    let done = concat(delivering(), [delivered(false), closed()]);
    given(done)
        .when(OrderCommand::Close { at: t(150_000) })
        .then_error(|e| {
            matches!(
                e,
                OrderError::InvalidTransition {
                    status: OrderStatus::Closed,
                    ..
                }
            )
        });
}
