//! `SubmitOrder`: idempotent although its answer holds a number generated on the fly.
//!
//! A retried submit must return the *same* order number, and the number cannot be derived
//! from the request (it holds the submission time). So the first attempt records which
//! number it drew as a store claim ([`EventStore::append_claimed`]): the request's command id,
//! in the buyer's shard, pointing to the order's stream.
//!
//! 1. validate (merchant exists and is open, as [`super::merchants`] sees it: "open" is
//!    believed for a second; every sku is on its menu, the dish names come from the
//!    listings). If that refuses, look for a claim: a retry of an accepted request takes its
//!    number and completes through the executor (step 3) — a retry after the merchant closed
//!    must still get the first answer; no claim, the refusal is the answer;
//! 2. draw a number from [`super::OrderNumbers`] and append the order's `OrderSubmitted`
//!    with `ExpectedVersion::NO_STREAM`, claiming the command id: one commit per submit, no
//!    read, and one event (the claim is a row beside the events, which nothing relays). If a
//!    line's SKU would refuse it as the SKU's writer last made its state durable (sold out,
//!    delisted, repriced: [`door`]), the one event is `OrderRefused` instead: the order is
//!    FAILED at once and the saga never sees it;
//! 3. if the claim is taken (a retry of an earlier attempt, or a concurrent retry that won),
//!    run `Submit` on the claimed order through the executor, which answers a repeated
//!    command id with the first append's outcome. If the drawn number collided with another
//!    order, the append is refused as a conflict (ABORTED) and nothing is written: a retry
//!    draws anew.
//!
//! Crashes leave nothing half-done: the claim and the order commit together.
//!
//! **Claims of earlier versions** were events: in the order's shard
//! (`order_claim-{sha256}.{shard}`, written with the order in one group until claims left the
//! event log) and the two-step submit's `request-{sha256}` (appended before the order).
//! Migration 0007 copied them into the store's claims, so step 2 finds them; the paths that
//! read a claim (refusals) still read those streams too. A claim without its order (the
//! two-step submit crashed in between) is completed by the retry under its number.
//!
//! Names: the domain's `OrderLine` records the dish name. Unknown skus and skus of another
//! merchant are INVALID_ARGUMENT on `lines[i].sku_id` (issue 3 §7: nothing appended), so
//! every line has a listing to take the name from. A *delisted* dish is still submitted,
//! under its last name: whether it can be reserved is the reservation saga's decision
//! (DISH_DELISTED), taken in order with the sku's other commands, as is PRICE_CHANGED.

use orderflow_domain::order::{LineRefusal, Order, OrderCommand, OrderLine, OrderState};
use orderflow_domain::refusal::Refusal;
use orderflow_domain::sku::reservation_refusal;
use orderflow_domain::stream::{ORDER_CATEGORY, ORDER_CLAIM_CATEGORY};
use orderflow_domain::{BuyerId, Decider, OrderNo, StreamId, Timestamp};
use orderflow_infra::store::{
    AppendRequest, ClaimKey, ConsistencyToken, EventStore, ExpectedVersion, StoreError,
};
use orderflow_proto::convert::{RequestedLine, SubmitOrder};
use orderflow_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use super::idempotency::hex_sha256;
use super::{CommandHandler, Ctx};
use crate::error::CommandError;
use crate::execute::encode;
use crate::stock::Shelf;

/// The category of the two-step submit's claim streams (`request-{sha256}`); read only.
pub const LEGACY_CLAIM_CATEGORY: &str = "request";
/// The type of the event claim streams held; read only.
pub const CLAIM_EVENT: &str = "SubmitOrderClaimed";

/// The one event of a claim stream of an earlier version: which number a request was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOrderClaimed {
    pub order_no: OrderNo,
    pub at: Timestamp,
}

/// The claim of a submit request: its command id, in the buyer's shard (that of every order
/// the buyer submits), so claim and order commit together.
pub fn submit_claim(command_id: &str, buyer: BuyerId) -> Result<ClaimKey, CommandError> {
    ClaimKey::parse(buyer.shard(), command_id)
        .map_err(|e| CommandError::Corrupt(format!("claim key: {e}")))
}

/// The claim stream an earlier version wrote for a submit request, in the buyer's shard.
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
    // Validate first, without looking for a claim: almost every submit is a first attempt,
    // and the claimed append below finds a retry anyway. Only a refusal looks for a claim,
    // because a retry after the merchant closed (or a dish was renamed away) must still get
    // the first answer.
    let validated = match h
        .open_merchants
        .ensure_open(&h.executor, r.merchant, ctx.meta.at)
        .await
    {
        Ok(()) => order_lines(h, &r, false).await,
        Err(e) => Err(e),
    };
    let (lines, refused) = match validated {
        Ok(lines) => lines,
        Err(refused) => {
            return match find_claim(h, ctx, r.buyer).await? {
                // A retry of an accepted submit: its lines are the first attempt's and the
                // order stream answers it from the command id, so names are never read again.
                Some(order_no) => {
                    let (lines, _) = order_lines(h, &r, true).await?;
                    let command = submit_command(&r, order_no, lines, None, ctx.meta.at);
                    complete(h, ctx, command).await
                }
                None => Err(refused),
            };
        }
    };

    let order_no = h
        .order_numbers
        .next(ctx.meta.at, r.buyer)
        .map_err(CommandError::refused)?;
    let mut command = submit_command(&r, order_no.clone(), lines, refused, ctx.meta.at);
    let events = Order::decide(&command, &OrderState::default()).map_err(CommandError::refused)?;
    let append = AppendRequest {
        stream: order_no.stream_id(),
        expected: ExpectedVersion::NO_STREAM,
        events: events.iter().map(encode).collect::<Result<_, _>>()?,
        metadata: ctx.meta.metadata(),
    };
    let claim = submit_claim(ctx.meta.command_id.as_str(), r.buyer)?;
    match h.store().append_claimed(claim, append).await {
        Ok(order) => {
            tracing::debug!(order_no = %order_no, "order submitted");
            Ok(reply(
                &order_no,
                ConsistencyToken::new(order.shard, order.last_position).to_string(),
            ))
        }
        // An earlier or concurrent attempt of this request took the claim: continue with its
        // number.
        Err(StoreError::AlreadyClaimed { stream, .. }) => {
            let claimed = order_of(&stream)?;
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
    refused: Option<LineRefusal>,
    at: Timestamp,
) -> OrderCommand {
    OrderCommand::Submit {
        order_no,
        buyer: r.buyer,
        merchant: r.merchant,
        lines,
        address: r.address.clone(),
        at,
        refused,
    }
}

fn reply(order_no: &OrderNo, consistency_token: String) -> pb::SubmitOrderReply {
    pb::SubmitOrderReply {
        order_no: order_no.as_str().to_owned(),
        // Always CREATING, as the contract says, even for an order refused at once: its
        // outcome is read like any other (IsCreated, WatchOrder), and it is already there.
        status: pb::OrderStatus::Creating.into(),
        consistency_token,
    }
}

/// The order's lines with their dish names, read from the skus' shelves (concurrently: up
/// to 50 of them), and the first line its SKU would refuse as it stands (see [`door`]).
/// `lenient` (a retry completing a claimed submit) takes the sku id as the name of a line
/// whose listing is gone, instead of refusing a request already accepted, and refuses
/// nothing: the first attempt decided.
async fn order_lines(
    h: &CommandHandler,
    r: &SubmitOrder,
    lenient: bool,
) -> Result<(Vec<OrderLine>, Option<LineRefusal>), CommandError> {
    // Only the shelves: the whole state would copy every reservation of the sku.
    let shelves =
        futures::future::try_join_all(r.lines.iter().map(|line| h.stock.shelf(&line.sku))).await?;
    let mut lines = Vec::with_capacity(r.lines.len());
    let mut refused = None;
    for (i, (line, shelf)) in r.lines.iter().zip(shelves).enumerate() {
        let field = || format!("lines[{i}].sku_id");
        let name = match shelf.as_ref() {
            Some(shelf) if shelf.listing.merchant == r.merchant => {
                if refused.is_none() && !lenient {
                    refused = door(shelf, line);
                }
                shelf.listing.name.clone()
            }
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
    Ok((lines, refused))
}

/// The refusal the saga would meet reserving `line` on its SKU now: sold out, delisted or
/// repriced, as the SKU's writer last made its state durable. Such an order is refused at
/// once (`OrderRefused`, one event) instead of costing a saga round and a second event; in
/// a flash sale that is every buyer after the last unit. Refusing on the durable state is
/// what the writer itself would do for an order that arrived a moment earlier: reservations
/// in flight only take more, and a unit given back after this read goes to whoever asks
/// after it lands, as with a restock.
fn door(shelf: &Shelf, line: &RequestedLine) -> Option<LineRefusal> {
    reservation_refusal(
        &shelf.listing,
        shelf.available,
        line.quantity,
        line.unit_price,
    )
    .err()
    .and_then(|e| e.failure_reason())
    .map(|reason| LineRefusal {
        reason,
        sku: line.sku.clone(),
    })
}

/// The number an earlier attempt of this request claimed: in the store's claims, or in a
/// claim stream of an earlier version (the order's shard's, or the two-step submit's).
async fn find_claim(
    h: &CommandHandler,
    ctx: &Ctx,
    buyer: BuyerId,
) -> Result<Option<OrderNo>, CommandError> {
    let command_id = ctx.meta.command_id.as_str();
    let store = h.store();
    if let Some(stream) = store.claimed(&submit_claim(command_id, buyer)?).await? {
        return order_of(&stream).map(Some);
    }
    if let Some(order_no) = read_claim(store.as_ref(), &claim_stream(command_id, buyer)?).await? {
        return Ok(Some(order_no));
    }
    let legacy = StreamId::of(LEGACY_CLAIM_CATEGORY, hex_sha256(&[command_id]))
        .map_err(|e| CommandError::Corrupt(format!("claim stream name: {e}")))?;
    read_claim(store.as_ref(), &legacy).await
}

/// The order number of an order stream a claim points to.
fn order_of(stream: &StreamId) -> Result<OrderNo, CommandError> {
    if stream.category() != ORDER_CATEGORY {
        return Err(CommandError::Corrupt(format!(
            "a submit claim points to {stream}, not an order"
        )));
    }
    OrderNo::parse(stream.id())
        .map_err(|e| CommandError::Corrupt(format!("a submit claim points to {stream}: {e}")))
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
