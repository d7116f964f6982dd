//! Every rule of the order, one function per command.

use std::collections::HashSet;

use super::command::{CancelCause, LineRefusal, OrderCommand, OrderLine};
use super::error::{OrderError, MAX_LINES, MAX_RADIUS_M};
use super::event::*;
use super::state::{OrderState, PlacedOrder};
use super::status::OrderStatus::*;
use crate::geo::Address;
use crate::ids::{BuyerId, MerchantId, OfferId, PaymentTxnId, RiderId};
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::time::Timestamp;

type Decision = Result<Vec<OrderEvent>, OrderError>;

pub(super) fn decide(command: &OrderCommand, state: &OrderState) -> Decision {
    let order = match (state, command) {
        (
            OrderState::Empty,
            OrderCommand::Submit {
                order_no,
                buyer,
                merchant,
                lines,
                address,
                at,
                refused,
            },
        ) => {
            let submitted = submit(order_no, *buyer, *merchant, lines, address, *at)?;
            return match refused {
                None => one(submitted),
                Some(refusal) => refuse(submitted, refusal),
            };
        }
        (OrderState::Empty, _) => return Err(OrderError::NotFound),
        (OrderState::Placed(order), _) => order,
    };
    let refused = || {
        Err(OrderError::InvalidTransition {
            command: command.name(),
            status: order.status,
        })
    };
    match command {
        OrderCommand::Submit { .. } => Err(OrderError::AlreadyExists(order.order_no.clone())),
        OrderCommand::Create {
            payment_deadline,
            at,
        } => match order.status {
            Creating => {
                after("payment_deadline", *payment_deadline, *at)?;
                one(OrderCreated {
                    payment_deadline: *payment_deadline,
                    at: *at,
                })
            }
            _ => refused(),
        },
        OrderCommand::Reject { reason, sku, at } => match order.status {
            Creating => one(OrderFailed {
                reason: *reason,
                sku: sku.clone(),
                at: *at,
            }),
            _ => refused(),
        },
        OrderCommand::ConfirmPayment { txn, amount, at } => {
            confirm_payment(order, txn, *amount, *at).unwrap_or_else(refused)
        }
        OrderCommand::Cancel { cause, now } => match order.status {
            Created => cancel(order, cause, *now),
            _ => refused(),
        },
        OrderCommand::NotifyRiders {
            offer_id,
            round,
            riders,
            radius_m,
            expires_at,
            at,
        } => match order.status {
            Paid => notify(order, offer_id, *round, riders, *radius_m, *expires_at, *at),
            _ => refused(),
        },
        OrderCommand::ExpireOffer { offer_id, now } => match (order.status, &order.offer) {
            (Notified, Some(offer)) => {
                if &offer.offer_id != offer_id {
                    return Err(OrderError::StaleOffer(offer_id.clone()));
                }
                if *now < offer.expires_at {
                    return Err(OrderError::OfferNotExpired {
                        offer_id: offer_id.clone(),
                        expires_at: offer.expires_at,
                        now: *now,
                    });
                }
                one(OfferExpired {
                    offer_id: offer_id.clone(),
                    round: offer.round,
                    at: *now,
                })
            }
            _ => refused(),
        },
        OrderCommand::Grab {
            rider,
            offer_id,
            delivery_deadline,
            now,
        } => grab(order, *rider, offer_id, *delivery_deadline, *now).unwrap_or_else(refused),
        OrderCommand::PickUp { rider, at } => match order.status {
            Delivering | TimedOut => {
                assigned(order, *rider)?;
                if order.picked_up_at.is_some() {
                    return Err(OrderError::AlreadyPickedUp);
                }
                one(OrderPickedUp {
                    rider: *rider,
                    at: *at,
                })
            }
            _ => refused(),
        },
        OrderCommand::DeliveryDeadlinePassed { now } => {
            match (order.status, order.delivery_deadline) {
                (Delivering, Some(deadline)) => {
                    if *now < deadline {
                        return Err(OrderError::DeliveryDeadlineNotPassed {
                            deadline,
                            now: *now,
                        });
                    }
                    one(DeliveryTimedOut {
                        delivery_deadline: deadline,
                        at: *now,
                    })
                }
                _ => refused(),
            }
        }
        OrderCommand::ConfirmDelivery { rider, at } => match order.status {
            Delivering | TimedOut => {
                assigned(order, *rider)?;
                if order.picked_up_at.is_none() {
                    return Err(OrderError::NotPickedUp);
                }
                // The deadline timer may not have fired yet: lateness is decided by the clock
                // the command brings, so a slow timer never costs the buyer compensation.
                let past_deadline = order.delivery_deadline.is_some_and(|d| *at >= d);
                one(OrderDelivered {
                    rider: *rider,
                    late: order.status == TimedOut || past_deadline,
                    at: *at,
                })
            }
            _ => refused(),
        },
        OrderCommand::Compensate { amount, reason, at } => match order.status {
            Received if !order.late => Err(OrderError::NotLate),
            Received => {
                let within = amount.is_positive()
                    && amount.checked_cmp(&order.total)? != std::cmp::Ordering::Greater;
                if !within {
                    return Err(OrderError::CompensationOutOfRange {
                        total: order.total,
                        got: *amount,
                    });
                }
                one(OrderCompensated {
                    amount: *amount,
                    reason: reason.clone(),
                    at: *at,
                })
            }
            _ => refused(),
        },
        OrderCommand::Close { at } => match order.status {
            Received if order.late => Err(OrderError::LateOrderNotCompensated),
            Received | Compensated => one(OrderClosed { at: *at }),
            _ => refused(),
        },
    }
}

fn one(event: impl Into<OrderEvent>) -> Decision {
    Ok(vec![event.into()])
}

fn after(field: &'static str, deadline: Timestamp, at: Timestamp) -> Result<(), OrderError> {
    if deadline > at {
        Ok(())
    } else {
        Err(OrderError::DeadlineNotAfter {
            field,
            deadline,
            at,
        })
    }
}

fn assigned(order: &PlacedOrder, rider: RiderId) -> Result<(), OrderError> {
    if order.rider == Some(rider) {
        Ok(())
    } else {
        Err(OrderError::NotAssignedRider(rider))
    }
}

fn submit(
    order_no: &OrderNo,
    buyer: BuyerId,
    merchant: MerchantId,
    lines: &[OrderLine],
    address: &Address,
    at: Timestamp,
) -> Result<OrderSubmitted, OrderError> {
    if order_no.shard() != buyer.shard() {
        return Err(OrderError::ShardMismatch {
            order_no: order_no.clone(),
            buyer,
            expected: buyer.shard(),
        });
    }
    let Some(first) = lines.first() else {
        return Err(OrderError::LineCount(0));
    };
    if lines.len() > MAX_LINES {
        return Err(OrderError::LineCount(lines.len()));
    }
    let currency = first.unit_price.currency();
    let mut seen = HashSet::with_capacity(lines.len());
    let mut total = Money::zero(currency);
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        if !seen.insert(&line.sku) {
            return Err(OrderError::DuplicateSku(line.sku.clone()));
        }
        if line.unit_price.currency() != currency {
            return Err(OrderError::MixedCurrencies {
                line: number,
                expected: currency,
                got: line.unit_price.currency(),
            });
        }
        if !line.unit_price.is_positive() {
            return Err(OrderError::NonPositivePrice { line: number });
        }
        total = total.checked_add(line.line_total()?)?;
    }
    Ok(OrderSubmitted {
        order_no: order_no.clone(),
        buyer,
        merchant,
        lines: lines.to_vec(),
        total,
        address: address.clone(),
        at,
    })
}

/// A submission refused at once: the refusing SKU must be one of its lines.
fn refuse(submitted: OrderSubmitted, refusal: &LineRefusal) -> Decision {
    if !submitted.lines.iter().any(|l| l.sku == refusal.sku) {
        return Err(OrderError::RefusedSkuNotALine(refusal.sku.clone()));
    }
    one(OrderRefused {
        submitted,
        reason: refusal.reason,
        sku: refusal.sku.clone(),
    })
}

/// `None` means the status takes no payment at all (the caller names the status).
fn confirm_payment(
    order: &PlacedOrder,
    txn: &PaymentTxnId,
    amount: Money,
    at: Timestamp,
) -> Option<Decision> {
    // Before CREATED the buyer was never asked to pay; refusing lets the provider retry.
    if order.status == Creating {
        return None;
    }
    if let Some(seen) = order.payment(txn) {
        // The same transaction again: one payment, whatever became of it.
        return Some(if seen.amount == amount {
            Ok(vec![])
        } else {
            Err(OrderError::TxnAmountConflict {
                txn: txn.clone(),
                first: seen.amount,
                got: amount,
            })
        });
    }
    let refund_reason = match order.status {
        Created => {
            if amount != order.total {
                return Some(Err(OrderError::AmountMismatch {
                    expected: order.total,
                    got: amount,
                }));
            }
            return Some(one(OrderPaid {
                txn: txn.clone(),
                amount,
                at,
            }));
        }
        Cancelled => RefundReason::OrderCancelled,
        Failed => RefundReason::OrderFailed,
        _ => RefundReason::AlreadyPaid,
    };
    // Money the order cannot take is still money the buyer paid: record it and give it back.
    Some(Ok(vec![
        PaymentReceived {
            txn: txn.clone(),
            amount,
            at,
        }
        .into(),
        PaymentRefunded {
            txn: txn.clone(),
            amount,
            reason: refund_reason,
            at,
        }
        .into(),
    ]))
}

fn cancel(order: &PlacedOrder, cause: &CancelCause, now: Timestamp) -> Decision {
    if let CancelCause::PaymentDeadlinePassed = cause {
        // Set when the order was created, which a CREATED order always was.
        let deadline = order.payment_deadline.unwrap_or(Timestamp::EPOCH);
        if now < deadline {
            return Err(OrderError::PaymentDeadlineNotPassed { deadline, now });
        }
    }
    one(OrderCancelled {
        cause: cause.clone(),
        at: now,
    })
}

fn notify(
    order: &PlacedOrder,
    offer_id: &OfferId,
    round: u32,
    riders: &[RiderId],
    radius_m: u32,
    expires_at: Timestamp,
    at: Timestamp,
) -> Decision {
    let expected = order
        .offer
        .as_ref()
        .map_or(1, |o| o.round.saturating_add(1));
    if round != expected {
        return Err(OrderError::OfferRoundNotNext {
            expected,
            got: round,
        });
    }
    if order.past_offer_ids.contains(offer_id) {
        return Err(OrderError::OfferIdReused(offer_id.clone()));
    }
    if !(1..=MAX_RADIUS_M).contains(&radius_m) {
        return Err(OrderError::RadiusOutOfRange(radius_m));
    }
    let mut seen = HashSet::with_capacity(riders.len());
    if let Some(twice) = riders.iter().find(|r| !seen.insert(**r)) {
        return Err(OrderError::DuplicateRider(*twice));
    }
    after("expires_at", expires_at, at)?;
    // An empty round is allowed: it still opens a window whose expiry widens the radius.
    one(RidersNotified {
        offer_id: offer_id.clone(),
        round,
        riders: riders.to_vec(),
        radius_m,
        expires_at,
        at,
    })
}

/// `None` means grabbing makes no sense in this status at all.
fn grab(
    order: &PlacedOrder,
    rider: RiderId,
    offer_id: &OfferId,
    delivery_deadline: Timestamp,
    now: Timestamp,
) -> Option<Decision> {
    let decision = match (order.status, &order.offer, order.rider) {
        (Notified, Some(offer), _) => {
            if &offer.offer_id != offer_id {
                Err(OrderError::StaleOffer(offer_id.clone()))
            } else if !offer.riders.contains(&rider) {
                Err(OrderError::RiderNotOffered(rider))
            } else if now >= offer.expires_at {
                Err(OrderError::OfferExpired {
                    offer_id: offer_id.clone(),
                    expires_at: offer.expires_at,
                })
            } else {
                after("delivery_deadline", delivery_deadline, now).and_then(|()| {
                    one(OrderGrabbed {
                        rider,
                        offer_id: offer_id.clone(),
                        delivery_deadline,
                        at: now,
                    })
                })
            }
        }
        // Between rounds: whatever offer the rider holds has closed.
        (Paid, Some(_), _) => Err(OrderError::StaleOffer(offer_id.clone())),
        // Someone won: every later grab lost the race, including the winner's own retry
        // (the store's command-id idempotency answers true retries before they get here).
        (_, _, Some(winner)) => Err(OrderError::AlreadyGrabbed(winner)),
        _ => return None,
    };
    Some(decision)
}
