//! Riders' RPCs. Online state, location and capacity live on `rider-{id}`; who won an order
//! lives on `order-{order_no}`.
//!
//! **Grab** (issue 3 §4) touches both streams, rider first:
//! 1. `AssignOrder` on the rider stream: refused unless the rider is online with spare
//!    capacity. The executor appends it expecting the version it decided on, so two grabs of
//!    one rider can never both take its last slot;
//! 2. `Grab` on the order stream: the first grab of the current round by an offered rider
//!    wins; a stale offer, a rider not offered, an expired offer or an order already grabbed
//!    is ABORTED (lost race);
//! 3. if the grab was refused, `UnassignOrder` on the rider stream gives the slot back
//!    (command id `{grab's id}/unassign`, so that a retry of the lost grab repeats none of
//!    the three steps' effects).
//!
//! Crash window: a process dying between 1 and 3 (or a store failure in 2 that leaves it
//! unknown whether the grab committed, where we must not unassign) leaves the rider
//! assigned to an order it did not win. The rider's retry of the same request completes the
//! sequence; without one, the rider-assignment reconciler of the durable deadlines
//! (`deadlines/assignment.rs`) releases it: every `RiderOrderAssigned` is checked 60 s later,
//! and a rider whose order went elsewhere (and whose offer is over) is unassigned.

use orderflow_domain::order::{Order, OrderCommand};
use orderflow_domain::rider::{Rider, RiderCommand, RiderEvent, RiderState};
use orderflow_domain::{OrderNo, RiderId};
use orderflow_proto::convert::{
    ConfirmDelivery, GoOffline, GoOnline, GrabOrder, PickUp, ReportLocation,
};
use orderflow_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{answer, idempotency, reply, CommandHandler, Ctx};
use crate::error::CommandError;
use crate::execute::{CommandMeta, Executed};

#[instrument(skip_all, fields(rpc = "GoOnline", request_id, correlation_id, actor))]
pub(super) async fn go_online(
    h: &CommandHandler,
    request: Request<pb::GoOnlineRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    h.one_command::<GoOnline, _, Rider>(&request, |r, at| {
        let command = RiderCommand::GoOnline {
            location: r.location,
            capacity: r.capacity,
            at,
        };
        (r.rider.stream_id(), command)
    })
    .await
}

#[instrument(
    skip_all,
    fields(rpc = "ReportLocation", request_id, correlation_id, actor)
)]
pub(super) async fn report_location(
    h: &CommandHandler,
    request: Request<pb::ReportLocationRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<ReportLocation, _>(&request)?;
            let command = RiderCommand::ReportLocation {
                location: r.location,
                at: ctx.meta.at,
            };
            let done = on_existing_rider(h, &ctx, r.rider, command).await?;
            Ok(reply(&done))
        }
        .await,
    )
}

#[instrument(skip_all, fields(rpc = "GoOffline", request_id, correlation_id, actor))]
pub(super) async fn go_offline(
    h: &CommandHandler,
    request: Request<pb::GoOfflineRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<GoOffline, _>(&request)?;
            let command = RiderCommand::GoOffline { at: ctx.meta.at };
            let done = on_existing_rider(h, &ctx, r.rider, command).await?;
            Ok(reply(&done))
        }
        .await,
    )
}

#[instrument(
    skip_all,
    fields(rpc = "GrabOrder", request_id, correlation_id, actor, order_no)
)]
pub(super) async fn grab_order(
    h: &CommandHandler,
    request: Request<pb::GrabOrderRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<GrabOrder, _>(&request)?;
            tracing::Span::current().record("order_no", r.order_no.as_str());
            grab(h, &ctx, &r).await
        }
        .await,
    )
}

async fn grab(
    h: &CommandHandler,
    ctx: &Ctx,
    r: &GrabOrder,
) -> Result<pb::CommandReply, CommandError> {
    let order_stream = r.order_no.stream_id();
    // An order that does not exist is NOT_FOUND before the rider is touched at all.
    let order = h.executor.load::<Order>(&order_stream).await?;
    if order.state.order().is_none() {
        return Err(order_not_found(&r.order_no));
    }

    let assign = RiderCommand::AssignOrder {
        order_no: r.order_no.clone(),
        at: ctx.meta.at,
    };
    on_existing_rider(h, ctx, r.rider, assign).await?;

    let command = OrderCommand::Grab {
        rider: r.rider,
        offer_id: r.offer_id.clone(),
        delivery_deadline: ctx.meta.at.plus(h.config.delivery_sla),
        now: ctx.meta.at,
    };
    match h
        .executor
        .execute::<Order>(&order_stream, &command, &ctx.meta)
        .await
    {
        Ok(done) => Ok(reply(&done)),
        // A definite refusal: nothing was appended to the order, give the slot back.
        Err(
            lost @ (CommandError::Refused { .. }
            | CommandError::NotFound(_)
            | CommandError::Contention { .. }),
        ) => {
            unassign(h, ctx, r.rider, &r.order_no).await;
            Err(lost)
        }
        // Unknown outcome (store down, timeout after commit?): unassigning could strand a
        // won order without its rider. The retry or the reconciler settles it.
        Err(other) => Err(other),
    }
}

/// Compensation of a lost grab. Its failure is logged, not returned: the rider's answer is
/// the grab's refusal either way, and the reconciler releases what is left assigned.
async fn unassign(h: &CommandHandler, ctx: &Ctx, rider: RiderId, order_no: &OrderNo) {
    let meta = match idempotency::follow_up(&ctx.meta.command_id, "unassign") {
        Ok(command_id) => CommandMeta {
            command_id,
            ..ctx.meta.clone()
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot name the unassign command");
            return;
        }
    };
    let command = RiderCommand::UnassignOrder {
        order_no: order_no.clone(),
        at: ctx.meta.at,
    };
    if let Err(e) = h
        .executor
        .execute::<Rider>(&rider.stream_id(), &command, &meta)
        .await
    {
        tracing::error!(error = %e, %rider, %order_no, "lost grab left the rider assigned");
    }
}

#[instrument(skip_all, fields(rpc = "PickUp", request_id, correlation_id, actor))]
pub(super) async fn pick_up(
    h: &CommandHandler,
    request: Request<pb::PickUpRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    h.one_command::<PickUp, _, Order>(&request, |r, at| {
        let command = OrderCommand::PickUp { rider: r.rider, at };
        (r.order_no.stream_id(), command)
    })
    .await
}

/// Delivered on the order (late if at or after the deadline), then the rider's slot is freed.
/// The answer's token is the order's: that is what clients read next.
#[instrument(
    skip_all,
    fields(rpc = "ConfirmDelivery", request_id, correlation_id, actor)
)]
pub(super) async fn confirm_delivery(
    h: &CommandHandler,
    request: Request<pb::ConfirmDeliveryRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<ConfirmDelivery, _>(&request)?;
            let command = OrderCommand::ConfirmDelivery {
                rider: r.rider,
                at: ctx.meta.at,
            };
            let done = h
                .executor
                .execute::<Order>(&r.order_no.stream_id(), &command, &ctx.meta)
                .await?;
            // A crash here leaves the slot taken; the retry (same command id: the order
            // answers from its first append) finishes it.
            let finish = RiderCommand::FinishOrder {
                order_no: r.order_no.clone(),
                at: ctx.meta.at,
            };
            match h
                .executor
                .execute::<Rider>(&r.rider.stream_id(), &finish, &ctx.meta)
                .await
            {
                Ok(_) => {}
                // Already released (by the reconciler): the delivery stands.
                Err(CommandError::Refused { .. }) => {
                    tracing::warn!(order_no = %r.order_no, "delivered order was not on the rider");
                }
                Err(e) => return Err(e),
            }
            Ok(reply(&done))
        }
        .await,
    )
}

/// Runs `command` on a rider that exists: one that never went online is NOT_FOUND (the
/// domain would only say "offline").
async fn on_existing_rider(
    h: &CommandHandler,
    ctx: &Ctx,
    rider: RiderId,
    command: RiderCommand,
) -> Result<Executed<RiderEvent>, CommandError> {
    h.executor
        .execute_with::<Rider, _>(&rider.stream_id(), &ctx.meta, |state: &RiderState| {
            if state.location.is_none() {
                return Err(CommandError::NotFound(format!(
                    "rider {rider} does not exist"
                )));
            }
            Ok(command.clone())
        })
        .await
}

fn order_not_found(order_no: &OrderNo) -> CommandError {
    CommandError::NotFound(format!("order {order_no} does not exist"))
}
