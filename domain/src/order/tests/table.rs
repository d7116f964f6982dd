//! Every (status × command) pair: exactly the allowed pairs are accepted.
//!
//! Rows are histories, one per status (some statuses twice, where a flag such as "picked up"
//! or "late" changes what is allowed); columns are commands that would be valid if the status
//! allowed them. The expectations are written out by hand from DESIGN.md, not derived from
//! the code under test.

use super::*;
use crate::decider::Decider;

fn rows() -> Vec<(&'static str, Option<OrderStatus>, Vec<OrderEvent>)> {
    use OrderStatus::*;
    let deliv = delivering();
    let plus = |base: &[OrderEvent], more: &[OrderEvent]| -> Vec<OrderEvent> {
        base.iter().chain(more).cloned().collect()
    };
    let not_picked = vec![submitted(), created(), paid(), notified(1), grabbed()];
    let received = plus(&deliv, &[delivered(false)]);
    let received_late = plus(&deliv, &[timed_out(), delivered(true)]);
    vec![
        ("empty", None, vec![]),
        ("creating", Some(Creating), vec![submitted()]),
        ("created", Some(Created), vec![submitted(), created()]),
        ("failed", Some(Failed), vec![submitted(), failed()]),
        ("paid", Some(Paid), vec![submitted(), created(), paid()]),
        (
            "cancelled",
            Some(Cancelled),
            vec![submitted(), created(), cancelled()],
        ),
        (
            "notified",
            Some(Notified),
            vec![submitted(), created(), paid(), notified(1)],
        ),
        ("delivering", Some(Delivering), not_picked.clone()),
        ("delivering_picked_up", Some(Delivering), deliv.clone()),
        (
            "timed_out",
            Some(TimedOut),
            plus(&not_picked, &[timed_out()]),
        ),
        (
            "timed_out_picked_up",
            Some(TimedOut),
            plus(&deliv, &[timed_out()]),
        ),
        ("received", Some(Received), received.clone()),
        ("received_late", Some(Received), received_late.clone()),
        (
            "compensated",
            Some(Compensated),
            plus(&received_late, &[compensated()]),
        ),
        ("closed", Some(Closed), plus(&received, &[closed()])),
    ]
}

fn columns() -> Vec<(&'static str, OrderCommand, &'static [&'static str])> {
    vec![
        ("submit", submit_with(lines()), &["empty"]),
        (
            "create",
            OrderCommand::Create {
                payment_deadline: t(PAYMENT_DEADLINE),
                at: t(2_000),
            },
            &["creating"],
        ),
        (
            "reject",
            OrderCommand::Reject {
                reason: crate::FailureReason::PriceChanged,
                sku: None,
                at: t(2_000),
            },
            &["creating"],
        ),
        (
            // A new transaction: pays a created order; recorded and refunded by any order
            // that can no longer take it.
            "confirm_payment",
            OrderCommand::ConfirmPayment {
                txn: txn("txn-new"),
                amount: cny(TOTAL),
                at: t(3_000),
            },
            &[
                "created",
                "failed",
                "paid",
                "cancelled",
                "notified",
                "delivering",
                "delivering_picked_up",
                "timed_out",
                "timed_out_picked_up",
                "received",
                "received_late",
                "compensated",
                "closed",
            ],
        ),
        (
            "cancel_by_buyer",
            OrderCommand::Cancel {
                cause: CancelCause::Buyer {
                    reason: Reason::none(),
                },
                now: t(3_000),
            },
            &["created"],
        ),
        (
            "cancel_at_payment_deadline",
            OrderCommand::Cancel {
                cause: CancelCause::PaymentDeadlinePassed,
                now: t(PAYMENT_DEADLINE),
            },
            &["created"],
        ),
        (
            "notify_riders",
            OrderCommand::NotifyRiders {
                offer_id: offer("offer-1"),
                round: 1,
                riders: vec![rider(1)],
                radius_m: 3_000,
                expires_at: t(OFFER_EXPIRES),
                at: t(4_000),
            },
            &["paid"],
        ),
        (
            "expire_offer",
            OrderCommand::ExpireOffer {
                offer_id: offer("offer-1"),
                now: t(OFFER_EXPIRES),
            },
            &["notified"],
        ),
        (
            "grab",
            OrderCommand::Grab {
                rider: rider(1),
                offer_id: offer("offer-1"),
                delivery_deadline: t(DELIVERY_DEADLINE),
                now: t(5_000),
            },
            &["notified"],
        ),
        (
            "pick_up",
            OrderCommand::PickUp {
                rider: rider(1),
                at: t(6_000),
            },
            &["delivering", "timed_out"],
        ),
        (
            "delivery_deadline_passed",
            OrderCommand::DeliveryDeadlinePassed {
                now: t(DELIVERY_DEADLINE),
            },
            &["delivering", "delivering_picked_up"],
        ),
        (
            "confirm_delivery",
            OrderCommand::ConfirmDelivery {
                rider: rider(1),
                at: t(50_000),
            },
            &["delivering_picked_up", "timed_out_picked_up"],
        ),
        (
            "compensate",
            OrderCommand::Compensate {
                amount: cny(500),
                reason: Reason::none(),
                at: t(130_000),
            },
            &["received_late"],
        ),
        (
            "close",
            OrderCommand::Close { at: t(140_000) },
            &["received", "compensated"],
        ),
    ]
}

#[test]
fn every_status_and_command_pair_is_accepted_exactly_when_allowed() {
    let rows = rows();
    let mut checked = 0;
    for (row, status, history) in &rows {
        assert_eq!(
            given(history.clone()).state().status(),
            *status,
            "row {row}"
        );
        for (column, command, allowed) in columns() {
            let (state, outcome) = given(history.clone()).when(command).outcome();
            let expected = allowed.contains(row);
            match outcome {
                Ok(events) => {
                    assert!(expected, "{column} on {row} was accepted: {events:?}");
                    assert!(!events.is_empty(), "{column} on {row} decided nothing");
                    let after = events.iter().fold(state, Order::evolve).status();
                    if after != *status {
                        let from = status.map(|s| s.can_move_to(after.unwrap()));
                        assert!(
                            from.unwrap_or(after == Some(OrderStatus::Creating)),
                            "{column} on {row} moved {status:?} -> {after:?}"
                        );
                    }
                }
                Err(error) => assert!(!expected, "{column} on {row} was refused: {error}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, rows.len() * columns().len());
}

#[test]
fn every_status_has_a_row_and_every_command_a_column() {
    let statuses: std::collections::BTreeSet<_> = rows().into_iter().filter_map(|r| r.1).collect();
    assert_eq!(statuses.len(), OrderStatus::ALL.len());
    let names: std::collections::BTreeSet<_> = columns().iter().map(|c| c.1.name()).collect();
    // Two columns are cancels; every other command has its own.
    assert_eq!(names.len(), 13);
}
