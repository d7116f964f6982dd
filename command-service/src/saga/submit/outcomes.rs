//! The submit half's second stage: give back what failed orders reserved, then decide and
//! append every outcome of the batch at once.

use orderflow_domain::order::{Order, OrderCommand, OrderEvent, OrderState};
use orderflow_domain::sku::{ReleaseReason, SkuCommand};
use orderflow_domain::{Decider, SkuId};
use orderflow_infra::store::{AppendRequest, ExpectedVersion, RecordedEvent, StoreError};

use super::{Batch, Submission};
use crate::error::CommandError;
use crate::execute::{encode, CommandMeta};
use crate::saga::Ctx;

/// Releases and outcomes for every order of the batch that got an answer.
pub(super) async fn settle(ctx: &Ctx, batch: &mut Batch) {
    let now = ctx.clock.now();
    let deadline = now.plus(ctx.timings.payment_window);
    // Releases of failed orders' reserved lines, all at once.
    let mut releases = Vec::new();
    let mut release_owner = Vec::new();
    for (k, o) in batch.orders.iter_mut().enumerate() {
        if o.error.is_none() && o.refused.is_some() {
            let event = &batch.events[o.index];
            for sku in &o.reserved {
                match release(ctx, event, o, sku) {
                    Ok(item) => {
                        releases.push(item);
                        release_owner.push(k);
                    }
                    Err(e) => o.error = Some(e),
                }
            }
        }
    }
    let released = ctx.stock.execute_many(releases).await;
    for (k, answer) in release_owner.into_iter().zip(released) {
        if let Err(e) = answer {
            batch.orders[k].error.get_or_insert(e);
        }
    }

    // Outcomes, decided on the order as the submission left it.
    let mut requests = Vec::new();
    let mut plans = Vec::new();
    for (k, o) in batch.orders.iter_mut().enumerate() {
        if o.error.is_some() {
            continue;
        }
        let (command, id) = match &o.refused {
            None => (
                OrderCommand::Create {
                    payment_deadline: deadline,
                    at: now,
                },
                format!("saga:create:{}", o.order.order_no),
            ),
            Some((reason, sku)) => (
                OrderCommand::Reject {
                    reason: *reason,
                    sku: sku.clone(),
                    at: now,
                },
                format!("saga:reject:{}", o.order.order_no),
            ),
        };
        match outcome_request(ctx, &batch.events[o.index], o, &command, id) {
            Ok((request, meta)) => {
                requests.push(request);
                plans.push((k, command, meta));
            }
            Err(e) => o.error = Some(e),
        }
    }
    let appended = ctx.executor.store().append_many(requests).await;
    let mut slow = Vec::new();
    for ((k, command, meta), result) in plans.into_iter().zip(appended) {
        match result {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => slow.push((k, command, meta)),
            Err(e) => batch.orders[k].error = Some(e.into()),
        }
    }
    // The order moved on since its submission: decide on its real state. Rare (a
    // redelivery), so one by one is fine.
    for (k, command, meta) in slow {
        let event = &batch.events[batch.orders[k].index];
        let o = &mut batch.orders[k];
        match ctx
            .executor
            .execute::<Order>(&event.stream, &command, &meta)
            .await
        {
            Ok(_) => {}
            Err(CommandError::Refused { message, .. }) => {
                tracing::info!(order_no = %o.order.order_no, %message,
                    "order already decided by an earlier run");
                if matches!(command, OrderCommand::Create { .. }) {
                    // This run reserved for an order that failed meanwhile: give back.
                    give_back(ctx, event, o).await;
                }
            }
            Err(e) => o.error = Some(e),
        }
    }
}

async fn give_back(ctx: &Ctx, event: &RecordedEvent, o: &mut Submission) {
    let mut items = Vec::new();
    for sku in &o.reserved {
        match release(ctx, event, o, sku) {
            Ok(item) => items.push(item),
            Err(e) => o.error = Some(e),
        }
    }
    for answer in ctx.stock.execute_many(items).await {
        if let Err(e) = answer {
            o.error.get_or_insert(e);
        }
    }
}

fn release(
    ctx: &Ctx,
    event: &RecordedEvent,
    o: &Submission,
    sku: &SkuId,
) -> Result<(SkuId, SkuCommand, CommandMeta), CommandError> {
    let meta = ctx.meta(event, format!("saga:release:{}:{sku}", o.order.order_no))?;
    let command = SkuCommand::Release {
        order_no: o.order.order_no.clone(),
        reason: ReleaseReason::OrderFailed,
        at: meta.at,
    };
    Ok((sku.clone(), command, meta))
}

/// The outcome's append, expecting the order exactly as the submission left it.
fn outcome_request(
    ctx: &Ctx,
    event: &RecordedEvent,
    o: &Submission,
    command: &OrderCommand,
    id: String,
) -> Result<(AppendRequest, CommandMeta), CommandError> {
    let meta = ctx.meta(event, id)?;
    let state = Order::evolve(
        OrderState::default(),
        &OrderEvent::Submitted(o.order.clone()),
    );
    let events = Order::decide(command, &state).map_err(CommandError::refused)?;
    let request = AppendRequest {
        stream: event.stream.clone(),
        expected: ExpectedVersion::Exact(event.stream_version),
        events: events.iter().map(encode).collect::<Result<_, _>>()?,
        metadata: meta.metadata(),
    };
    Ok((request, meta))
}
