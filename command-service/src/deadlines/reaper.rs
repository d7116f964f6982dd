//! The reaper (seed 001's release job): a reservation still held at its expiry is settled
//! from its order's state, through the sku's single door ([`StockWriters`]).
//!
//! - order PAID or later (not cancelled or failed) → `Deduct`: the payment won;
//! - CANCELLED or FAILED, or no order at all → `Release(Expired)`: the stock goes back;
//! - still CREATING or CREATED → look again later: the payment deadline (shorter than the
//!   reservation TTL, `CommandConfig::validate`) will cancel it, or a payment deduct it.
//!
//! Command ids are `deadline:reservation:{order_no}:{deduct|release}` on the sku stream, and
//! the sku answers repeats without appending, so re-firing is harmless. A refusal means the
//! reservation was already settled the other way (or never existed): the deadline is done.

use std::time::Duration;

use orderflow_domain::order::{Order, OrderStatus};
use orderflow_domain::sku::{ReleaseReason, ReservationState, SkuCommand};
use orderflow_domain::{OrderNo, SkuId, Timestamp};

use super::firer::{command_meta, Fired};
use super::{Deadline, DeadlineError};
use crate::error::CommandError;
use crate::execute::Executor;
use crate::stock::StockWriters;

pub(super) async fn settle_reservation(
    executor: &Executor,
    stock: &StockWriters,
    deadline: &Deadline,
    sku: &SkuId,
    order_no: &OrderNo,
    now: Timestamp,
    pending_retry: Duration,
) -> Result<Fired, DeadlineError> {
    let order = executor.load::<Order>(&order_no.stream_id()).await?.state;
    let (action, command) = match order.status() {
        Some(OrderStatus::Creating | OrderStatus::Created) => {
            tracing::debug!(status = ?order.status(), "order still pending; reaper looks again later");
            return Ok(Fired::Later(now.plus(pending_retry)));
        }
        Some(OrderStatus::Cancelled | OrderStatus::Failed) | None => {
            if order.status().is_none() {
                // Reservations are made after the order is submitted: this one has no order.
                tracing::warn!(%order_no, %sku, "reservation of an unknown order; releasing");
            }
            (
                "release",
                SkuCommand::Release {
                    order_no: order_no.clone(),
                    reason: ReleaseReason::Expired,
                    at: now,
                },
            )
        }
        Some(_) => (
            "deduct",
            SkuCommand::Deduct {
                order_no: order_no.clone(),
                at: now,
            },
        ),
    };
    let command_id = format!("deadline:reservation:{order_no}:{action}");
    let meta = command_meta(deadline, &command_id, now)?;
    match stock.execute(sku, command, &meta).await {
        Ok(done) => {
            tracing::info!(
                action,
                appended = done.events.len(),
                deduplicated = done.deduplicated,
                "reservation settled by the reaper"
            );
            Ok(Fired::Done)
        }
        Err(CommandError::Refused { message, .. }) => {
            let state = stock.state(sku).await?;
            match state.reservation(order_no) {
                Some(r) if r.state == ReservationState::Reserved && r.expires_at > now => {
                    tracing::warn!(expires_at = %r.expires_at, "reaper fired before the expiry; postponed");
                    Ok(Fired::Later(r.expires_at))
                }
                _ => {
                    if action == "deduct" {
                        // A paid order whose stock went back: worth an operator's look.
                        tracing::warn!(%order_no, %sku, %message, "reaper could not deduct a paid order's reservation");
                    } else {
                        tracing::debug!(%message, "reservation already settled");
                    }
                    Ok(Fired::Done)
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}
