//! The rider-assignment reconciler. A grab takes the rider's slot first (`AssignOrder` on the
//! rider), then the order (`Grab`), and gives the slot back if it lost. A process that dies in
//! between, or a store failure that leaves the grab's outcome unknown, leaves the rider
//! holding a slot for an order that is not theirs. So every `RiderOrderAssigned` opens an
//! `assignment:{rider}:{order_no}` deadline (cancelled by the rider's own unassign or finish)
//! and, when it fires, the order decides:
//! - the order's rider is this rider → nothing to do;
//! - the order is still offered to this rider and the offer is open → the grab may still be
//!   in flight or retried: look again when the offer expires;
//! - otherwise → `UnassignOrder` on the rider (command id `deadline:{key}`). A refusal means
//!   the slot was already released: done.

use orderflow_domain::order::{Order, OrderStatus};
use orderflow_domain::rider::{Rider, RiderCommand};
use orderflow_domain::{OrderNo, RiderId, Timestamp};

use super::firer::{command_meta, Fired};
use super::{Deadline, DeadlineError};
use crate::error::CommandError;
use crate::execute::Executor;

/// How long after an assignment its order is checked. Grabs take milliseconds; the check
/// postpones itself while the rider's offer is open anyway.
pub const ASSIGNMENT_CHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) async fn reconcile_assignment(
    executor: &Executor,
    deadline: &Deadline,
    rider: RiderId,
    order_no: &OrderNo,
    now: Timestamp,
) -> Result<Fired, DeadlineError> {
    let order = executor.load::<Order>(&order_no.stream_id()).await?.state;
    if let Some(order) = order.order() {
        if order.rider == Some(rider) {
            return Ok(Fired::Done);
        }
        if let Some(offer) = order.offer.as_ref().filter(|o| {
            order.status == OrderStatus::Notified && o.riders.contains(&rider) && o.expires_at > now
        }) {
            return Ok(Fired::Later(offer.expires_at));
        }
    }
    let meta = command_meta(deadline, &format!("deadline:{}", deadline.key), now)?;
    let command = RiderCommand::UnassignOrder {
        order_no: order_no.clone(),
        at: now,
    };
    match executor
        .execute::<Rider>(&rider.stream_id(), &command, &meta)
        .await
    {
        Ok(done) => {
            if !done.deduplicated {
                tracing::warn!(%rider, %order_no, "stale assignment released");
            }
            Ok(Fired::Done)
        }
        Err(CommandError::Refused { .. }) => Ok(Fired::Done),
        Err(e) => Err(e.into()),
    }
}
