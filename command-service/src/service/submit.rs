//! `SubmitOrder`: idempotent although its answer holds a number generated on the fly.
//!
//! A retried submit must return the *same* order number, and the number cannot be derived
//! from the request (it holds the submission time). So the first attempt records which
//! number it drew, in a claim stream named after the request:
//!
//! 1. validate against current state (merchant exists and is open, every sku is on its menu;
//!    the dish names come from the listings). If that refuses, look for a claim in
//!    `request-{sha256(command id)}`: a retry of an accepted request takes its number and
//!    skips to step 3 (a retry after the merchant closed must still get the first answer);
//!    no claim, the refusal is the answer;
//! 2. draw a number from [`super::OrderNumbers`] and append `SubmitOrderClaimed { order_no }`
//!    to the claim stream with `ExpectedVersion::NO_STREAM` and the command id. Whoever loses
//!    a race there (a retry of an earlier attempt, a concurrent retry: deduplicated by command
//!    id, or a conflict) reads the winner's claim and continues with *its* number;
//! 3. `OrderSubmitted` on `order-{order_no}` with the same command id. A number claimed just
//!    now has no stream yet, so it is appended with `NO_STREAM` without reading
//!    ([`crate::execute::Executor::create`]); a number found in a claim goes through the
//!    executor, which answers a repeat with the first append's outcome.
//!
//! A crash between 2 and 3 leaves a claim without an order; the retry finds the claim and
//! completes step 3 with the same number. A claim whose client never retries stays an
//! orphan: it reserves nothing and no process reacts to the `request` category.
//!
//! Names: the domain's `OrderLine` records the dish name. Unknown skus and skus of another
//! merchant are INVALID_ARGUMENT on `lines[i].sku_id` (issue 3 §7: nothing appended), so
//! every line has a listing to take the name from. A *delisted* dish is still submitted,
//! under its last name: whether it can be reserved is the reservation saga's decision
//! (DISH_DELISTED), taken in order with the sku's other commands, as is PRICE_CHANGED.

use orderflow_domain::merchant::Merchant;
use orderflow_domain::order::{Order, OrderCommand, OrderLine};
use orderflow_domain::{FailureReason, OrderNo, RefusalKind, StreamId, Timestamp};
use orderflow_infra::store::{AppendRequest, ExpectedVersion, NewEvent, StoreError};
use orderflow_proto::convert::SubmitOrder;
use orderflow_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use super::idempotency::hex_sha256;
use super::{CommandHandler, Ctx};
use crate::error::CommandError;

/// The claim stream's category; nothing else lives there.
pub const CLAIM_CATEGORY: &str = "request";
/// The claim event's type name.
pub const CLAIM_EVENT: &str = "SubmitOrderClaimed";

/// The one event of a claim stream: which number a submit request was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SubmitOrderClaimed {
    order_no: OrderNo,
    at: Timestamp,
}

pub(super) async fn submit(
    h: &CommandHandler,
    ctx: &Ctx,
    r: SubmitOrder,
) -> Result<pb::SubmitOrderReply, CommandError> {
    let claim_stream = StreamId::of(CLAIM_CATEGORY, hex_sha256(&[ctx.meta.command_id.as_str()]))
        .map_err(|e| CommandError::Corrupt(format!("claim stream name: {e}")))?;

    // Validate first, without reading the claim: almost every submit is a first attempt, and
    // the claim append below finds a retry anyway (the stream exists). Only a refusal looks
    // for a claim, because a retry after the merchant closed (or a dish was renamed away)
    // must still get the first answer.
    let validated = match ensure_merchant_takes_orders(h, &r).await {
        Ok(()) => order_lines(h, &r, false).await,
        Err(e) => Err(e),
    };
    let (order_no, lines, fresh) = match validated {
        Ok(lines) => {
            let candidate = h
                .order_numbers
                .next(ctx.meta.at, r.buyer)
                .map_err(CommandError::refused)?;
            let order_no = claim(h, ctx, &claim_stream, candidate.clone()).await?;
            let fresh = order_no == candidate;
            (order_no, lines, fresh)
        }
        Err(refused) => match read_claim(h, &claim_stream).await? {
            // A retry of an accepted submit: its lines are the first attempt's and the order
            // stream answers it from the command id, so names are never read again.
            Some(order_no) => (order_no, order_lines(h, &r, true).await?, false),
            None => return Err(refused),
        },
    };

    let command = OrderCommand::Submit {
        order_no: order_no.clone(),
        buyer: r.buyer,
        merchant: r.merchant,
        lines,
        address: r.address,
        at: ctx.meta.at,
    };
    let stream = order_no.stream_id();
    let done = if fresh {
        // The number was drawn and claimed just now: its stream cannot exist yet.
        h.executor
            .create::<Order>(&stream, &command, &ctx.meta)
            .await?
    } else {
        h.executor
            .execute::<Order>(&stream, &command, &ctx.meta)
            .await?
    };
    tracing::debug!(order_no = %order_no, deduplicated = done.deduplicated, "order submitted");
    Ok(pb::SubmitOrderReply {
        order_no: order_no.as_str().to_owned(),
        // The first answer is always CREATING: the saga decides CREATED or FAILED later.
        status: pb::OrderStatus::Creating.into(),
        consistency_token: done.token_string(),
    })
}

/// NOT_FOUND for a merchant never opened; a closed shop refuses at once
/// (FAILED_PRECONDITION, reason MERCHANT_CLOSED), before anything is appended.
async fn ensure_merchant_takes_orders(
    h: &CommandHandler,
    r: &SubmitOrder,
) -> Result<(), CommandError> {
    let merchant = h.executor.load::<Merchant>(&r.merchant.stream_id()).await?;
    match &merchant.state.profile {
        None => Err(CommandError::NotFound(format!(
            "merchant {} does not exist",
            r.merchant
        ))),
        Some(p) if !p.open => Err(CommandError::Refused {
            kind: RefusalKind::FailedPrecondition,
            reason: Some(FailureReason::MerchantClosed),
            message: format!("merchant {} is closed", r.merchant),
        }),
        Some(_) => Ok(()),
    }
}

/// The order's lines with their dish names, read from the skus' listings (concurrently: up
/// to 50 of them). `lenient` (a retry completing a claimed submit) takes the sku id as the
/// name of a line whose listing is gone, instead of refusing a request already accepted.
async fn order_lines(
    h: &CommandHandler,
    r: &SubmitOrder,
    lenient: bool,
) -> Result<Vec<OrderLine>, CommandError> {
    // Only the listings: the whole state would copy every reservation of the sku.
    let listings =
        futures::future::try_join_all(r.lines.iter().map(|line| h.stock.listing(&line.sku)))
            .await?;
    let mut lines = Vec::with_capacity(r.lines.len());
    for (i, (line, listing)) in r.lines.iter().zip(listings).enumerate() {
        let field = || format!("lines[{i}].sku_id");
        let name = match listing.as_ref() {
            Some(listing) if listing.merchant == r.merchant => listing.name.clone(),
            _ if lenient => orderflow_domain::Name::parse(line.sku.as_str())
                .map_err(|e| CommandError::invalid(field(), e))?,
            Some(_) => {
                return Err(CommandError::invalid(
                    field(),
                    format_args!("sku {} is not on merchant {}'s menu", line.sku, r.merchant),
                ))
            }
            None => {
                return Err(CommandError::invalid(
                    field(),
                    format_args!("unknown sku {}", line.sku),
                ))
            }
        };
        lines.push(OrderLine {
            sku: line.sku.clone(),
            name,
            quantity: line.quantity,
            unit_price: line.unit_price,
        });
    }
    Ok(lines)
}

/// The number a previous attempt of this request claimed, if any.
async fn read_claim(
    h: &CommandHandler,
    stream: &StreamId,
) -> Result<Option<OrderNo>, CommandError> {
    let first = h.store().read_stream(stream, 1, 1).await?;
    let Some(event) = first.first() else {
        return Ok(None);
    };
    let claimed: SubmitOrderClaimed = serde_json::from_value(event.payload.clone())
        .map_err(|e| CommandError::Corrupt(format!("{CLAIM_EVENT} at {stream}: {e}")))?;
    Ok(Some(claimed.order_no))
}

/// Claims `candidate` for this request, or returns the number an earlier or concurrent
/// attempt claimed first.
async fn claim(
    h: &CommandHandler,
    ctx: &Ctx,
    stream: &StreamId,
    candidate: OrderNo,
) -> Result<OrderNo, CommandError> {
    let payload = serde_json::to_value(SubmitOrderClaimed {
        order_no: candidate.clone(),
        at: ctx.meta.at,
    })
    .map_err(|e| CommandError::Corrupt(format!("cannot encode {CLAIM_EVENT}: {e}")))?;
    let request = AppendRequest {
        stream: stream.clone(),
        expected: ExpectedVersion::NO_STREAM,
        events: vec![NewEvent::new(CLAIM_EVENT, 1, payload)],
        metadata: ctx.meta.metadata(),
    };
    match h.store().append(request).await {
        Ok(outcome) if !outcome.deduplicated => Ok(candidate),
        // Another attempt of the same request got there first: its number wins.
        Ok(_) | Err(StoreError::Conflict { .. }) => read_claim(h, stream).await?.ok_or_else(|| {
            CommandError::Corrupt(format!("{stream} refused a claim but holds none"))
        }),
        Err(e) => Err(e.into()),
    }
}
