//! `SubmitOrder`: idempotent although its answer holds a number generated on the fly.
//!
//! A retried submit must return the *same* order number, and the number cannot be derived
//! from the request (it holds the submission time). So the first attempt records which
//! number it drew, in a claim stream named after the request and kept in the order's shard:
//! `order_claim-{sha256(command id)}.{buyer shard}`.
//!
//! 1. validate (merchant exists and is open, as [`super::merchants`] sees it: "open" is
//!    believed for a second; every sku is on its menu, the dish names come from the
//!    listings). If that refuses, look for a claim: a retry of an accepted request takes its
//!    number and completes through the executor (step 3) — a retry after the merchant closed
//!    must still get the first answer; no claim, the refusal is the answer;
//! 2. draw a number from [`super::OrderNumbers`] and append, as one group
//!    ([`EventStore::append_group`]: one transaction, all or nothing), the claim
//!    `SubmitOrderClaimed { order_no }` and the order's `OrderSubmitted`, both with
//!    `ExpectedVersion::NO_STREAM` and the command id. One commit per submit, no read;
//! 3. if the group is not written because part of it exists (a retry of an earlier attempt,
//!    a concurrent retry that won: the claim stream holds the command), read the claim and
//!    run `Submit` on *its* order through the executor, which answers a repeated command id
//!    with the first append's outcome. If the drawn number collided with another order, the
//!    group is refused as a conflict (ABORTED) and nothing is written: a retry draws anew.
//!
//! Crashes leave nothing half-done: the claim and the order commit together. Claims written
//! before this change by the earlier two-step submit (`request-{sha256(command id)}`,
//! appended before the order) are still found on the paths that read a claim (refusals and
//! step 3), so a claim without its order is completed by the retry as before. A request
//! first sent before the change and retried after it on the fresh path (step 2) is not
//! matched with that old claim: it would get a second number. Upgrades drain submits first.
//!
//! Names: the domain's `OrderLine` records the dish name. Unknown skus and skus of another
//! merchant are INVALID_ARGUMENT on `lines[i].sku_id` (issue 3 §7: nothing appended), so
//! every line has a listing to take the name from. A *delisted* dish is still submitted,
//! under its last name: whether it can be reserved is the reservation saga's decision
//! (DISH_DELISTED), taken in order with the sku's other commands, as is PRICE_CHANGED.

use orderflow_domain::order::{Order, OrderCommand, OrderLine, OrderState};
use orderflow_domain::stream::ORDER_CLAIM_CATEGORY;
use orderflow_domain::{BuyerId, Decider, OrderNo, StreamId, Timestamp};
use orderflow_infra::store::{
    AppendRequest, ConsistencyToken, EventPayload, EventStore, ExpectedVersion, NewEvent,
    StoreError,
};
use orderflow_proto::convert::SubmitOrder;
use orderflow_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use super::idempotency::hex_sha256;
use super::{CommandHandler, Ctx};
use crate::error::CommandError;
use crate::execute::encode;

/// The claim stream's category before claims moved to their order's shard; read only.
pub const LEGACY_CLAIM_CATEGORY: &str = "request";
/// The claim event's type name.
pub const CLAIM_EVENT: &str = "SubmitOrderClaimed";

/// The one event of a claim stream: which number a submit request was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SubmitOrderClaimed {
    order_no: OrderNo,
    at: Timestamp,
}

/// The claim stream of a submit request: hashed command id, then the buyer's shard (that
/// of every order the buyer submits), so claim and order share one transaction.
pub fn claim_stream(command_id: &str, buyer: BuyerId) -> Result<StreamId, CommandError> {
    let id = format!("{}.{:02}", hex_sha256(&[command_id]), buyer.shard().index());
    StreamId::of(ORDER_CLAIM_CATEGORY, id)
        .map_err(|e| CommandError::Corrupt(format!("claim stream name: {e}")))
}

pub(super) async fn submit(
    h: &CommandHandler,
    ctx: &Ctx,
    r: SubmitOrder,
) -> Result<pb::SubmitOrderReply, CommandError> {
    let claim = claim_stream(ctx.meta.command_id.as_str(), r.buyer)?;

    // Validate first, without reading the claim: almost every submit is a first attempt, and
    // the group append below finds a retry anyway (the claim exists). Only a refusal looks
    // for a claim, because a retry after the merchant closed (or a dish was renamed away)
    // must still get the first answer.
    let validated = match h
        .open_merchants
        .ensure_open(&h.executor, r.merchant, ctx.meta.at)
        .await
    {
        Ok(()) => order_lines(h, &r, false).await,
        Err(e) => Err(e),
    };
    let lines = match validated {
        Ok(lines) => lines,
        Err(refused) => {
            return match find_claim(h, ctx, &claim).await? {
                // A retry of an accepted submit: its lines are the first attempt's and the
                // order stream answers it from the command id, so names are never read again.
                Some(order_no) => {
                    let lines = order_lines(h, &r, true).await?;
                    complete(h, ctx, submit_command(&r, order_no, lines, ctx.meta.at)).await
                }
                None => Err(refused),
            };
        }
    };

    let order_no = h
        .order_numbers
        .next(ctx.meta.at, r.buyer)
        .map_err(CommandError::refused)?;
    let mut command = submit_command(&r, order_no.clone(), lines, ctx.meta.at);
    let events = Order::decide(&command, &OrderState::default()).map_err(CommandError::refused)?;
    let group = vec![
        AppendRequest {
            stream: claim.clone(),
            expected: ExpectedVersion::NO_STREAM,
            events: vec![claim_event(&order_no, ctx.meta.at)?],
            metadata: ctx.meta.metadata(),
        },
        AppendRequest {
            stream: order_no.stream_id(),
            expected: ExpectedVersion::NO_STREAM,
            events: events.iter().map(encode).collect::<Result<_, _>>()?,
            metadata: ctx.meta.metadata(),
        },
    ];
    match h.store().append_group(group).await {
        Ok(outcomes) if outcomes.iter().all(|o| !o.deduplicated) => {
            let order = outcomes.last().ok_or_else(|| {
                CommandError::Corrupt("an append group answered without outcomes".into())
            })?;
            tracing::debug!(order_no = %order_no, "order submitted");
            Ok(reply(
                &order_no,
                ConsistencyToken::new(order.shard, order.last_position).to_string(),
            ))
        }
        // The claim exists: an earlier or concurrent attempt of this request won; continue
        // with its number. (The whole group stored again cannot happen with a fresh number,
        // but it would mean the same.)
        Ok(_) | Err(StoreError::GroupPartlyStored { .. }) => {
            let claimed = find_claim(h, ctx, &claim).await?.ok_or_else(|| {
                CommandError::Corrupt(format!("{claim} refused a claim but holds none"))
            })?;
            if let OrderCommand::Submit { order_no, .. } = &mut command {
                *order_no = claimed;
            }
            complete(h, ctx, command).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A `Submit` of a claimed number through the executor: a repeat of this command id is
/// answered with its first outcome; a claim whose order was never appended (a two-step
/// submit from before this change that crashed in between) gets it now.
async fn complete(
    h: &CommandHandler,
    ctx: &Ctx,
    command: OrderCommand,
) -> Result<pb::SubmitOrderReply, CommandError> {
    let OrderCommand::Submit { order_no, .. } = &command else {
        return Err(CommandError::Corrupt("complete takes a Submit".into()));
    };
    let order_no = order_no.clone();
    let done = h
        .executor
        .execute::<Order>(&order_no.stream_id(), &command, &ctx.meta)
        .await?;
    tracing::debug!(order_no = %order_no, deduplicated = done.deduplicated, "order submitted");
    Ok(reply(&order_no, done.token_string()))
}

fn submit_command(
    r: &SubmitOrder,
    order_no: OrderNo,
    lines: Vec<OrderLine>,
    at: Timestamp,
) -> OrderCommand {
    OrderCommand::Submit {
        order_no,
        buyer: r.buyer,
        merchant: r.merchant,
        lines,
        address: r.address.clone(),
        at,
    }
}

fn reply(order_no: &OrderNo, consistency_token: String) -> pb::SubmitOrderReply {
    pb::SubmitOrderReply {
        order_no: order_no.as_str().to_owned(),
        // The first answer is always CREATING: the saga decides CREATED or FAILED later.
        status: pb::OrderStatus::Creating.into(),
        consistency_token,
    }
}

fn claim_event(order_no: &OrderNo, at: Timestamp) -> Result<NewEvent, CommandError> {
    let payload = EventPayload::encode(&SubmitOrderClaimed {
        order_no: order_no.clone(),
        at,
    })
    .map_err(|e| CommandError::Corrupt(format!("cannot encode {CLAIM_EVENT}: {e}")))?;
    Ok(NewEvent::new(CLAIM_EVENT, 1, payload))
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

/// The number an earlier attempt of this request claimed: in its claim stream, or in the
/// stream a two-step submit from before claims moved to their order's shard used.
async fn find_claim(
    h: &CommandHandler,
    ctx: &Ctx,
    claim: &StreamId,
) -> Result<Option<OrderNo>, CommandError> {
    if let Some(order_no) = read_claim(h.store().as_ref(), claim).await? {
        return Ok(Some(order_no));
    }
    let legacy = StreamId::of(
        LEGACY_CLAIM_CATEGORY,
        hex_sha256(&[ctx.meta.command_id.as_str()]),
    )
    .map_err(|e| CommandError::Corrupt(format!("claim stream name: {e}")))?;
    read_claim(h.store().as_ref(), &legacy).await
}

/// The number in a claim stream, if any.
async fn read_claim(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Result<Option<OrderNo>, CommandError> {
    let first = store.read_stream(stream, 1, 1).await?;
    let Some(event) = first.first() else {
        return Ok(None);
    };
    let claimed: SubmitOrderClaimed = event
        .payload
        .decode()
        .map_err(|e| CommandError::Corrupt(format!("{CLAIM_EVENT} at {stream}: {e}")))?;
    Ok(Some(claimed.order_no))
}
