//! The back office: the payment provider's callback (role service) and ops' after-delivery
//! commands (role ops or admin). All three act on the order stream alone; the order
//! aggregate answers NOT_FOUND for an order that does not exist.

use orderflow_domain::order::{Order, OrderCommand};
use orderflow_domain::OrderNo;
use orderflow_proto::convert::{CloseOrder, Compensate, ConfirmPayment};
use orderflow_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{answer, reply, CommandHandler, Ctx};
use crate::error::CommandError;

/// Idempotent twice over: a retried request id is answered by the store, and the same
/// transaction id under a new request id is one payment (the domain appends nothing). The
/// amount must equal the order total; a payment the order cannot take (cancelled, failed,
/// paid by another transaction) is recorded and refunded by the domain, never dropped.
#[instrument(
    skip_all,
    fields(rpc = "ConfirmPayment", request_id, correlation_id, actor)
)]
pub(super) async fn confirm_payment(
    h: &CommandHandler,
    request: Request<pb::ConfirmPaymentRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<ConfirmPayment, _>(&request)?;
            let command = OrderCommand::ConfirmPayment {
                txn: r.txn,
                amount: r.amount,
                at: ctx.meta.at,
            };
            on_order(h, &ctx, &r.order_no, command).await
        }
        .await,
    )
}

/// Compensates a late delivery: 0 < amount ≤ total (the domain checks both and lateness).
#[instrument(
    skip_all,
    fields(rpc = "Compensate", request_id, correlation_id, actor)
)]
pub(super) async fn compensate(
    h: &CommandHandler,
    request: Request<pb::CompensateRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<Compensate, _>(&request)?;
            let command = OrderCommand::Compensate {
                amount: r.amount,
                reason: r.reason,
                at: ctx.meta.at,
            };
            on_order(h, &ctx, &r.order_no, command).await
        }
        .await,
    )
}

/// Closes a received (or compensated) order ahead of the automatic close.
#[instrument(
    skip_all,
    fields(rpc = "CloseOrder", request_id, correlation_id, actor)
)]
pub(super) async fn close_order(
    h: &CommandHandler,
    request: Request<pb::CloseOrderRequest>,
) -> Result<Response<pb::CommandReply>, Status> {
    answer(
        async {
            let (ctx, r) = h.begin::<CloseOrder, _>(&request)?;
            let command = OrderCommand::Close { at: ctx.meta.at };
            on_order(h, &ctx, &r.order_no, command).await
        }
        .await,
    )
}

async fn on_order(
    h: &CommandHandler,
    ctx: &Ctx,
    order_no: &OrderNo,
    command: OrderCommand,
) -> Result<pb::CommandReply, CommandError> {
    let done = h
        .executor
        .execute::<Order>(&order_no.stream_id(), &command, &ctx.meta)
        .await?;
    Ok(reply(&done))
}
