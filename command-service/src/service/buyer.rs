//! Buyers' RPCs: submitting an order (see [`super::submit`] for how a retry finds its first
//! order number) and cancelling one.

use orderflow_domain::order::{CancelCause, Order, OrderCommand};
use orderflow_proto::convert::{CancelOrder, SubmitOrder};
use orderflow_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{answer, reply, submit, CommandHandler};
use crate::auth::ensure_buyer_owns;
use crate::error::CommandError;

/// Answers at once with status CREATING; the reservation saga moves the order on.
#[instrument(
    skip_all,
    fields(rpc = "SubmitOrder", request_id, correlation_id, actor)
)]
pub(super) async fn submit_order(
    h: &CommandHandler,
    request: Request<pb::SubmitOrderRequest>,
) -> Result<Response<pb::SubmitOrderReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<SubmitOrder, _>(&request)?;
            submit::submit(h, &ctx, r).await
        }
        .await,
    )
}

/// A buyer cancels its own order (ops and admin any order). Who owns it is known only from
/// the order's state, so it is checked there, on every attempt of the executor.
#[instrument(
    skip_all,
    fields(rpc = "CancelOrder", request_id, correlation_id, actor)
)]
pub(super) async fn cancel_order(
    h: &CommandHandler,
    request: Request<pb::CancelOrderRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<CancelOrder, _>(&request)?;
            let order_no = r.order_no.clone();
            let done = h
                .executor
                .execute_with::<Order, _>(&r.order_no.stream_id(), &ctx.meta, |state| {
                    let order = state.order().ok_or_else(|| {
                        CommandError::NotFound(format!("order {order_no} does not exist"))
                    })?;
                    ensure_buyer_owns(&ctx.caller, order.buyer)?;
                    Ok(OrderCommand::Cancel {
                        cause: CancelCause::Buyer {
                            reason: r.reason.clone(),
                        },
                        now: ctx.meta.at,
                    })
                })
                .await?;
            Ok(reply(&done))
        }
        .await,
    )
}
