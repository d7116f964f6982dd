//! `saga-submit`: every `OrderSubmitted` of a batch to CREATED or FAILED, in two stages that
//! the consumer pipelines (`OrderedConsumer::run_pipelined`): batch N+1's first stage runs
//! while batch N's second stage writes its outcomes.
//!
//! First stage (batch after batch, in log order):
//! 1. decode the submissions; load each distinct merchant once. The read starts after every
//!    submission of the batch was committed (they came from the bus), so a close committed
//!    before a submission is always seen;
//! 2. every line of every order of an open merchant → `Reserve` on its SKU writer, all at
//!    once (`StockWriters::execute_many`), in submission order. A batch's reservations are
//!    sent only once the previous batch's were answered, so a flash sale is served first
//!    come, first served across batches too.
//!
//! Second stage ([`outcomes`], beside the next batch's first stage):
//! 3. per order: all reserved → `Create`; a line refused with a contract reason → `Release`
//!    the reserved lines and `Reject` with that reason; anything else (store down) → the
//!    event fails and is retried (both stages again): every step is idempotent, so the retry
//!    resumes;
//! 4. the outcomes are appended together (`append_many`), decided on the order as the
//!    submission left it and expecting its version: no read per order. If the order moved
//!    on (a redelivery after it was decided), the conflict sends that order through the
//!    executor, which answers a repeated command id with its first answer.
//!
//! A batch is acknowledged only once its second stage is done; a crash between the stages
//! redelivers both batches in flight, and the repeated reservations return their first
//! answers.

mod outcomes;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use orderflow_domain::merchant::Merchant;
use orderflow_domain::order::{Order, OrderEvent, OrderSubmitted};
use orderflow_domain::sku::SkuCommand;
use orderflow_domain::stream::ORDER_CATEGORY;
use orderflow_domain::{FailureReason, MerchantId, SkuId};
use orderflow_infra::bus::{HandlerError, PipelinedHandler, SecondStage};
use orderflow_infra::store::{RecordedEvent, StoreError};
use tracing::instrument;

use super::{failed, Ctx};
use crate::error::CommandError;
use crate::execute::decode;

pub(super) struct SubmitHandler {
    ctx: Arc<Ctx>,
    /// Batches whose first stage began (the test hooks count them).
    #[cfg(test)]
    started: usize,
}

/// One submission of a batch and how far it got.
struct Submission {
    /// Index of its event in the batch.
    index: usize,
    order: OrderSubmitted,
    /// Lines reserved (or found reserved by an earlier run).
    reserved: Vec<SkuId>,
    /// The first line refused with a contract reason.
    refused: Option<(FailureReason, Option<SkuId>)>,
    /// A failure that makes the whole event retry.
    error: Option<CommandError>,
}

/// A batch between the stages: what the second stage needs, owned (it outlives the call).
struct Batch {
    events: Arc<[RecordedEvent]>,
    orders: Vec<Submission>,
    results: Vec<Result<(), HandlerError>>,
}

impl SubmitHandler {
    pub(super) fn new(ctx: Arc<Ctx>) -> Self {
        SubmitHandler {
            ctx,
            #[cfg(test)]
            started: 0,
        }
    }
}

/// The one event the submit half reacts to.
pub(super) const ORDER_SUBMITTED: &str = "OrderSubmitted";

#[async_trait]
impl PipelinedHandler for SubmitHandler {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        category == ORDER_CATEGORY && event_type == ORDER_SUBMITTED
    }

    #[instrument(skip_all, fields(events = events.len()))]
    async fn start(&mut self, events: Arc<[RecordedEvent]>) -> SecondStage {
        let mut batch = Batch {
            results: events.iter().map(|_| Ok(())).collect(),
            orders: Vec::new(),
            events,
        };
        for (index, event) in batch.events.iter().enumerate() {
            if !self.wants(event.stream.category(), &event.event_type) {
                continue;
            }
            match decode::<Order>(event) {
                Ok(OrderEvent::Submitted(order)) => batch.orders.push(Submission {
                    index,
                    order,
                    reserved: Vec::new(),
                    refused: None,
                    error: None,
                }),
                Ok(_) => {}
                Err(e) => batch.results[index] = Err(failed(e)),
            }
        }
        let ctx = Arc::clone(&self.ctx);
        if batch.orders.is_empty() {
            return Box::pin(async move { batch.results });
        }
        let started = std::time::Instant::now();
        self.check_merchants(&mut batch.orders).await;
        let merchants_took = started.elapsed();
        self.reserve(&mut batch).await;
        let reserve_took = started.elapsed() - merchants_took;
        tracing::debug!(
            orders = batch.orders.len(),
            ?merchants_took,
            ?reserve_took,
            "submissions reserved"
        );
        #[cfg(test)]
        let gate = self.test_hooks();
        Box::pin(async move {
            #[cfg(test)]
            if let Some(gate) = gate {
                let _pass = gate.acquire().await;
            }
            let started = std::time::Instant::now();
            outcomes::settle(&ctx, &mut batch).await;
            tracing::debug!(orders = batch.orders.len(), outcomes_took = ?started.elapsed(),
                "submissions settled");
            for order in batch.orders {
                if let Some(e) = order.error {
                    batch.results[order.index] = Err(failed(e));
                }
            }
            batch.results
        })
    }
}

impl SubmitHandler {
    /// Tests: crashes after the reservations of the batch `crash_after_reserving` names, and
    /// returns the gate the second stage waits at, if any.
    #[cfg(test)]
    fn test_hooks(&mut self) -> Option<Arc<tokio::sync::Semaphore>> {
        self.started += 1;
        if self.ctx.hooks.crash_after_reserving == Some(self.started) {
            panic!("simulated crash between the reservations and the outcome");
        }
        self.ctx.hooks.outcomes_gate.clone()
    }

    /// Loads each distinct merchant once; a closed one fails its orders with
    /// `MERCHANT_CLOSED` before anything is reserved.
    async fn check_merchants(&self, orders: &mut [Submission]) {
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
    async fn reserve(&self, batch: &mut Batch) {
        let mut commands = Vec::new();
        let mut owners = Vec::new();
        for (k, o) in batch.orders.iter_mut().enumerate() {
            if o.refused.is_some() || o.error.is_some() {
                continue;
            }
            let event = &batch.events[o.index];
            let expires_at = o.order.at.plus(self.ctx.timings.reservation_ttl);
            for line in &o.order.lines {
                let id = format!("saga:reserve:{}:{}", o.order.order_no, line.sku);
                let meta = match self.ctx.meta(event, id) {
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
            let order = &mut batch.orders[k];
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
}

/// Errors are not `Clone`; a merchant's load failure is told to each of its orders.
fn copy(e: &CommandError) -> CommandError {
    CommandError::Store(StoreError::Unavailable(e.to_string()))
}
