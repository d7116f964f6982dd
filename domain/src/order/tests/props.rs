//! Random command sequences only ever move an order along the status machine's edges.
//!
//! Commands are drawn as abstract steps and made concrete against the current state, so that
//! most of them are plausible (the current offer id, the assigned rider, a deadline a little
//! ahead of a clock that moves forward) while a fixed share are deliberately wrong. Purely
//! random commands would almost never get past PAID.

use proptest::prelude::*;

use super::*;
use crate::decider::Decider;
use crate::refusal::FailureReason;

#[derive(Debug, Clone)]
struct Step {
    kind: u8,
    pick: u8,
    tick: u8,
    span: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (0..13_u8, any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(kind, pick, tick, span)| Step {
        kind,
        pick,
        tick,
        span,
    })
}

const TICKS: [i64; 4] = [0, 1_000, 10_000, 100_000];
const SPANS: [i64; 4] = [-1_000, 0, 5_000, 60_000];

/// The command a step stands for, given the order so far and the clock (moved on by the step).
fn concrete(step: &Step, state: &OrderState, clock: &mut i64) -> OrderCommand {
    *clock += TICKS[usize::from(step.tick % 4)];
    let now = t(*clock);
    let ahead = t(*clock + SPANS[usize::from(step.span % 4)]);
    let right = step.pick % 4 != 0;
    let order = state.order();
    let offer_now = order.and_then(|o| o.offer.as_ref());
    let round = offer_now.map_or(0, |o| o.round);
    let assigned = order.and_then(|o| o.rider).unwrap_or(rider(9));
    match step.kind {
        // Now and then refused at once, as the submit path does for a sold-out line.
        0 if step.pick % 5 == 0 => {
            super::refused::submit_refused("latte", FailureReason::OutOfStock)
        }
        0 => submit_with(lines()),
        1 => OrderCommand::Create {
            payment_deadline: ahead,
            at: now,
        },
        2 => OrderCommand::Reject {
            reason: crate::FailureReason::OutOfStock,
            sku: None,
            at: now,
        },
        3 => OrderCommand::ConfirmPayment {
            txn: txn(if right { "t1" } else { "t2" }),
            amount: cny(if step.pick % 3 == 0 { 1 } else { TOTAL }),
            at: now,
        },
        4 => OrderCommand::Cancel {
            cause: if step.pick % 2 == 0 {
                CancelCause::Buyer {
                    reason: Reason::none(),
                }
            } else {
                CancelCause::PaymentDeadlinePassed
            },
            now,
        },
        5 => {
            let next = if step.pick % 5 == 0 {
                round + 2
            } else {
                round + 1
            };
            OrderCommand::NotifyRiders {
                offer_id: offer(&format!("o{}", if right { next } else { 1 })),
                round: next,
                riders: [rider(1), rider(2)][..usize::from(step.pick % 3)].to_vec(),
                radius_m: 3_000,
                expires_at: ahead,
                at: now,
            }
        }
        6 => OrderCommand::ExpireOffer {
            offer_id: match offer_now {
                Some(o) if right => o.offer_id.clone(),
                _ => offer("o-old"),
            },
            now,
        },
        7 => OrderCommand::Grab {
            rider: match offer_now.and_then(|o| o.riders.get(usize::from(step.pick % 2))) {
                Some(r) if right => *r,
                _ => rider(9),
            },
            offer_id: match offer_now {
                Some(o) if step.pick % 3 != 0 => o.offer_id.clone(),
                _ => offer("o-old"),
            },
            delivery_deadline: ahead,
            now,
        },
        8 => OrderCommand::PickUp {
            rider: if right { assigned } else { rider(9) },
            at: now,
        },
        9 => OrderCommand::DeliveryDeadlinePassed { now },
        10 => OrderCommand::ConfirmDelivery {
            rider: if right { assigned } else { rider(9) },
            at: now,
        },
        11 => OrderCommand::Compensate {
            amount: cny([0, 500, TOTAL, TOTAL + 1][usize::from(step.pick % 4)]),
            reason: Reason::none(),
            at: now,
        },
        _ => OrderCommand::Close { at: now },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_commands_only_move_along_allowed_transitions(
        steps in prop::collection::vec(step(), 0..120)
    ) {
        let mut state = OrderState::default();
        let mut clock = 1_000;
        for step in &steps {
            let command = concrete(step, &state, &mut clock);
            let Ok(events) = Order::decide(&command, &state) else { continue };
            for event in &events {
                let before = state.status();
                state = Order::evolve(state, event);
                let after = state.status();
                match (before, after) {
                    (None, Some(OrderStatus::Creating)) => {}
                    // Only a refusal starts an order in FAILED.
                    (None, Some(OrderStatus::Failed)) => {
                        prop_assert!(matches!(event, OrderEvent::Refused(_)), "{event:?}");
                    }
                    (Some(from), Some(to)) if from == to => {}
                    (Some(from), Some(to)) => {
                        prop_assert!(!from.is_terminal(), "left terminal {from} for {to}");
                        prop_assert!(from.can_move_to(to), "{from} -> {to} by {command:?}");
                    }
                    other => prop_assert!(false, "undefined move {other:?} by {command:?}"),
                }
            }
        }
    }
}

/// The generator reaches every status, so the property above is not vacuous.
#[test]
fn the_generator_reaches_every_status() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 120);
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let steps = strategy.new_tree(&mut runner).unwrap().current();
        let (mut state, mut clock) = (OrderState::default(), 1_000);
        for step in &steps {
            let command = concrete(step, &state, &mut clock);
            if let Ok(events) = Order::decide(&command, &state) {
                state = events.iter().fold(state, Order::evolve);
            }
            reached.extend(state.status());
        }
    }
    assert_eq!(
        reached.len(),
        OrderStatus::ALL.len(),
        "reached only {reached:?}"
    );
}
