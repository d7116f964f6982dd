//! `saga-submit`: every `OrderSubmitted` of a batch to CREATED or FAILED.
//!
//! Steps per batch (each a handful of round trips for the whole batch, not per order):
//! 1. decode the submissions; load each distinct merchant once;
//! 2. every line of every order of an open merchant → `Reserve` on its SKU writer, all at
//!    once (`StockWriters::execute_many`), in submission order, so a flash sale is served
//!    first come, first served;
//! 3. per order: all reserved → `Create`; a line refused with a contract reason → `Release`
//!    the reserved lines and `Reject` with that reason; anything else (store down) → the
//!    event fails and is retried: every step is idempotent, so the retry resumes;
//! 4. the outcomes are appended together (`append_many`), decided on the order as the
//!    submission left it and expecting its version: no read per order. If the order moved
//!    on (a redelivery after it was decided), the conflict sends that order through the
//!    executor, which answers a repeated command id with its first answer.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use orderflow_domain::merchant::Merchant;
use orderflow_domain::order::{Order, OrderCommand, OrderEvent, OrderState, OrderSubmitted};
use orderflow_domain::sku::{ReleaseReason, SkuCommand};
use orderflow_domain::stream::ORDER_CATEGORY;
use orderflow_domain::{Decider, FailureReason, MerchantId, SkuId};
use orderflow_infra::bus::{BatchEventHandler, HandlerError};
use orderflow_infra::store::{AppendRequest, ExpectedVersion, RecordedEvent, StoreError};
use tracing::instrument;

use super::{failed, Ctx};
use crate::error::CommandError;
use crate::execute::{decode, encode, CommandMeta};

pub(super) struct SubmitHandler {
    ctx: Arc<Ctx>,
}

/// One submission of the batch and how far it got.
struct Submission<'a> {
    /// Index of its event in the batch.
    index: usize,
    event: &'a RecordedEvent,
    order: OrderSubmitted,
    /// Lines reserved (or found reserved by an earlier run).
    reserved: Vec<SkuId>,
    /// The first line refused with a contract reason.
    refused: Option<(FailureReason, Option<SkuId>)>,
    /// A failure that makes the whole event retry.
    error: Option<CommandError>,
}

impl SubmitHandler {
    pub(super) fn new(ctx: Arc<Ctx>) -> Self {
        SubmitHandler { ctx }
    }
}

/// The one event the submit half reacts to.
pub(super) const ORDER_SUBMITTED: &str = "OrderSubmitted";

#[async_trait]
impl BatchEventHandler for SubmitHandler {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        category == ORDER_CATEGORY && event_type == ORDER_SUBMITTED
    }

    #[instrument(skip_all, fields(events = events.len()))]
    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = events.iter().map(|_| Ok(())).collect();
        let mut orders = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if !self.wants(event.stream.category(), &event.event_type) {
                continue;
            }
            match decode::<Order>(event) {
                Ok(OrderEvent::Submitted(order)) => orders.push(Submission {
                    index,
                    event,
                    order,
                    reserved: Vec::new(),
                    refused: None,
                    error: None,
                }),
                Ok(_) => {}
                Err(e) => results[index] = Err(failed(e)),
            }
        }
        if orders.is_empty() {
            return results;
        }
        let started = std::time::Instant::now();
        self.check_merchants(&mut orders).await;
        let merchants_took = started.elapsed();
        self.reserve(&mut orders).await;
        let reserve_took = started.elapsed() - merchants_took;
        #[cfg(test)]
        if self.ctx.crash_after_reserve {
            panic!("simulated crash between the reservations and the outcome");
        }
        self.settle(&mut orders).await;
        tracing::debug!(orders = orders.len(), ?merchants_took, ?reserve_took,
            outcomes_took = ?(started.elapsed() - merchants_took - reserve_took), "submissions");
        for order in orders {
            if let Some(e) = order.error {
                results[order.index] = Err(failed(e));
            }
        }
        results
    }
}

impl SubmitHandler {
    /// Loads each distinct merchant once; a closed one fails its orders with
    /// `MERCHANT_CLOSED` before anything is reserved.
    async fn check_merchants(&self, orders: &mut [Submission<'_>]) {
        let mut merchants: Vec<MerchantId> = orders.iter().map(|o| o.order.merchant).collect();
        merchants.sort_unstable();
        merchants.dedup();
        let loaded = futures::future::join_all(merchants.iter().map(|m| async move {
            let state = self.ctx.executor.load::<Merchant>(&m.stream_id()).await;
            (*m, state.map(|l| l.state.is_open()))
        }))
        .await;
        let open: HashMap<MerchantId, Result<bool, CommandError>> = loaded.into_iter().collect();
        for order in orders.iter_mut() {
            match open.get(&order.order.merchant) {
                Some(Ok(true)) => {}
                Some(Ok(false)) => order.refused = Some((FailureReason::MerchantClosed, None)),
                Some(Err(e)) => order.error = Some(copy(e)),
                None => order.error = Some(CommandError::NotFound("merchant".into())),
            }
        }
    }

    /// Every line of every order still going, to the SKU writers at once.
    async fn reserve(&self, orders: &mut [Submission<'_>]) {
        let mut commands = Vec::new();
        let mut owners = Vec::new();
        for (k, o) in orders.iter_mut().enumerate() {
            if o.refused.is_some() || o.error.is_some() {
                continue;
            }
            let expires_at = o.order.at.plus(self.ctx.timings.reservation_ttl);
            for line in &o.order.lines {
                let id = format!("saga:reserve:{}:{}", o.order.order_no, line.sku);
                let meta = match self.ctx.meta(o.event, id) {
                    Ok(meta) => meta,
                    Err(e) => {
                        o.error = Some(e);
                        break;
                    }
                };
                let command = SkuCommand::Reserve {
                    order_no: o.order.order_no.clone(),
                    merchant: o.order.merchant,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                    expires_at,
                    at: meta.at,
                };
                commands.push((line.sku.clone(), command, meta));
                owners.push((k, line.sku.clone()));
            }
        }
        let answers = self.ctx.stock.execute_many(commands).await;
        for ((k, sku), answer) in owners.into_iter().zip(answers) {
            let order = &mut orders[k];
            match answer {
                Ok(_) => order.reserved.push(sku),
                Err(CommandError::Refused {
                    reason: Some(reason),
                    ..
                }) => {
                    if order.refused.is_none() {
                        order.refused = Some((reason, Some(sku)));
                    }
                }
                Err(e) => {
                    if order.error.is_none() {
                        order.error = Some(e);
                    }
                }
            }
        }
    }

    /// Releases and outcomes for every order that got an answer.
    async fn settle(&self, orders: &mut [Submission<'_>]) {
        let now = self.ctx.clock.now();
        let deadline = now.plus(self.ctx.timings.payment_window);
        // Releases of failed orders' reserved lines, all at once.
        let mut releases = Vec::new();
        let mut release_owner = Vec::new();
        for (k, o) in orders.iter_mut().enumerate() {
            if o.error.is_none() && o.refused.is_some() {
                for sku in &o.reserved {
                    match release(&self.ctx, o, sku, "saga:release") {
                        Ok(item) => {
                            releases.push(item);
                            release_owner.push(k);
                        }
                        Err(e) => o.error = Some(e),
                    }
                }
            }
        }
        let released = self.ctx.stock.execute_many(releases).await;
        for (k, answer) in release_owner.into_iter().zip(released) {
            if let Err(e) = answer {
                orders[k].error.get_or_insert(e);
            }
        }

        // Outcomes, decided on the order as the submission left it.
        let mut requests = Vec::new();
        let mut plans = Vec::new();
        for (k, o) in orders.iter_mut().enumerate() {
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
            match outcome_request(&self.ctx, o, &command, id) {
                Ok((request, meta)) => {
                    requests.push(request);
                    plans.push((k, command, meta));
                }
                Err(e) => o.error = Some(e),
            }
        }
        let appended = self.ctx.executor.store().append_many(requests).await;
        let mut slow = Vec::new();
        for ((k, command, meta), result) in plans.into_iter().zip(appended) {
            match result {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => slow.push((k, command, meta)),
                Err(e) => orders[k].error = Some(e.into()),
            }
        }
        // The order moved on since its submission: decide on its real state. Rare (a
        // redelivery), so one by one is fine.
        for (k, command, meta) in slow {
            let o = &mut orders[k];
            let stream = o.event.stream.clone();
            match self
                .ctx
                .executor
                .execute::<Order>(&stream, &command, &meta)
                .await
            {
                Ok(_) => {}
                Err(CommandError::Refused { message, .. }) => {
                    tracing::info!(order_no = %o.order.order_no, %message,
                        "order already decided by an earlier run");
                    if matches!(command, OrderCommand::Create { .. }) {
                        // This run reserved for an order that failed meanwhile: give back.
                        self.give_back(o).await;
                    }
                }
                Err(e) => o.error = Some(e),
            }
        }
    }

    async fn give_back(&self, o: &mut Submission<'_>) {
        let mut items = Vec::new();
        for sku in &o.reserved {
            match release(&self.ctx, o, sku, "saga:release") {
                Ok(item) => items.push(item),
                Err(e) => o.error = Some(e),
            }
        }
        for answer in self.ctx.stock.execute_many(items).await {
            if let Err(e) = answer {
                o.error.get_or_insert(e);
            }
        }
    }
}

fn release(
    ctx: &Ctx,
    o: &Submission<'_>,
    sku: &SkuId,
    kind: &str,
) -> Result<(SkuId, SkuCommand, CommandMeta), CommandError> {
    let meta = ctx.meta(o.event, format!("{kind}:{}:{sku}", o.order.order_no))?;
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
    o: &Submission<'_>,
    command: &OrderCommand,
    id: String,
) -> Result<(AppendRequest, CommandMeta), CommandError> {
    let meta = ctx.meta(o.event, id)?;
    let state = Order::evolve(
        OrderState::default(),
        &OrderEvent::Submitted(o.order.clone()),
    );
    let events = Order::decide(command, &state).map_err(CommandError::refused)?;
    let request = AppendRequest {
        stream: o.event.stream.clone(),
        expected: ExpectedVersion::Exact(o.event.stream_version),
        events: events.iter().map(encode).collect::<Result<_, _>>()?,
        metadata: meta.metadata(),
    };
    Ok((request, meta))
}

/// Errors are not `Clone`; a merchant's load failure is told to each of its orders.
fn copy(e: &CommandError) -> CommandError {
    CommandError::Store(StoreError::Unavailable(e.to_string()))
}
