//! `saga-settle`: what happens to reserved stock once the order is decided by someone else.
//!
//! - `OrderPaid` → `Deduct` every line (`saga:deduct:{order_no}:{sku}`);
//! - `OrderCancelled` → `Release` every line, reason `OrderCancelled`
//!   (`saga:cancel:{order_no}:{sku}`);
//! - `PaymentRefunded` → a [`RefundRequest`] on `{prefix}.payments.refunds.{order_no}`,
//!   message id = the event id, so a redelivered event is stored once by the bus.
//!
//! The lines are not in the paid/cancelled events: each such order is loaded, all loads of
//! a batch concurrently, and all stock commands of the batch go to the writers together.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_domain::order::{Order, OrderEvent, OrderLine, PaymentRefunded, RefundReason};
use orderflow_domain::sku::{ReleaseReason, SkuCommand};
use orderflow_domain::stream::ORDER_CATEGORY;
use orderflow_domain::{Money, OrderNo, PaymentTxnId, Timestamp};
use orderflow_infra::bus::{BatchEventHandler, HandlerError, OutgoingMessage};
use orderflow_infra::store::RecordedEvent;
use serde::{Deserialize, Serialize};
use tracing::instrument;
use uuid::Uuid;

use super::{failed, Ctx};
use crate::error::CommandError;
use crate::execute::decode;

/// The `version` field of every refund message this code writes.
pub const REFUND_MESSAGE_VERSION: u16 = 1;

/// The body of a refund message (JSON), documented in `docs/bus.md`. Stable: fields may be
/// added, never renamed or retyped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub version: u16,
    /// The `PaymentRefunded` event's id: the provider's idempotency key for this refund.
    pub refund_id: Uuid,
    pub order_no: OrderNo,
    /// The payment transaction to refund.
    pub txn: PaymentTxnId,
    pub amount: Money,
    pub reason: RefundReason,
    /// When the refund was decided.
    pub at: Timestamp,
    pub correlation_id: String,
}

pub(super) struct SettleHandler {
    ctx: Arc<Ctx>,
}

enum Work {
    Deduct,
    Release,
}

impl SettleHandler {
    pub(super) fn new(ctx: Arc<Ctx>) -> Self {
        SettleHandler { ctx }
    }
}

/// The events the settlement half reacts to (all of the `order` category).
pub(super) const SETTLED_TYPES: &[&str] = &["OrderPaid", "OrderCancelled", "PaymentRefunded"];

#[async_trait]
impl BatchEventHandler for SettleHandler {
    fn wants(&self, category: &str, event_type: &str) -> bool {
        category == ORDER_CATEGORY && SETTLED_TYPES.contains(&event_type)
    }

    #[instrument(skip_all, fields(events = events.len()))]
    async fn handle_batch(&mut self, events: &[RecordedEvent]) -> Vec<Result<(), HandlerError>> {
        let mut results: Vec<Result<(), HandlerError>> = events.iter().map(|_| Ok(())).collect();
        let mut stock_work = Vec::new();
        let mut refunds = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if event.stream.category() != ORDER_CATEGORY {
                continue;
            }
            let work = match event.event_type.as_str() {
                "OrderPaid" => Work::Deduct,
                "OrderCancelled" => Work::Release,
                "PaymentRefunded" => match decode::<Order>(event) {
                    Ok(OrderEvent::PaymentRefunded(refund)) => {
                        refunds.push((index, event, refund));
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        results[index] = Err(failed(e));
                        continue;
                    }
                },
                _ => continue,
            };
            stock_work.push((index, event, work));
        }
        let (stock, refunded) = futures::join!(
            self.settle_stock(&stock_work),
            self.hand_over_refunds(&refunds)
        );
        for (index, result) in stock.into_iter().chain(refunded) {
            if let Err(e) = result {
                results[index] = Err(e);
            }
        }
        results
    }
}

impl SettleHandler {
    /// Loads the orders, then deducts or releases every line of every one, at once.
    async fn settle_stock(
        &self,
        work: &[(usize, &RecordedEvent, Work)],
    ) -> Vec<(usize, Result<(), HandlerError>)> {
        let loaded = futures::future::join_all(work.iter().map(|(_, event, _)| async move {
            let loaded = self.ctx.executor.load::<Order>(&event.stream).await?;
            loaded
                .state
                .order()
                .map(|o| (o.order_no.clone(), o.lines.clone()))
                .ok_or_else(|| CommandError::NotFound(event.stream.to_string()))
        }))
        .await;
        let mut out = Vec::new();
        let mut commands = Vec::new();
        let mut owners = Vec::new();
        for ((index, event, work), order) in work.iter().zip(loaded) {
            let built =
                order.and_then(|(order_no, lines)| self.commands(event, work, &order_no, &lines));
            match built {
                Ok(items) => {
                    owners.extend(std::iter::repeat_n(*index, items.len()));
                    commands.extend(items);
                    out.push((*index, Ok(())));
                }
                Err(e) => out.push((*index, Err(failed(e)))),
            }
        }
        let answers = self.ctx.stock.execute_many(commands).await;
        for (index, answer) in owners.into_iter().zip(answers) {
            if let Err(e) = answer {
                tracing::warn!(error = %e, "settling a reservation failed");
                if let Some(slot) = out.iter_mut().find(|(i, r)| *i == index && r.is_ok()) {
                    slot.1 = Err(failed(e));
                }
            }
        }
        out
    }

    fn commands(
        &self,
        event: &RecordedEvent,
        work: &Work,
        order_no: &OrderNo,
        lines: &[OrderLine],
    ) -> Result<Vec<(orderflow_domain::SkuId, SkuCommand, crate::CommandMeta)>, CommandError> {
        lines
            .iter()
            .map(|line| {
                let (kind, build): (&str, fn(OrderNo, Timestamp) -> SkuCommand) = match work {
                    Work::Deduct => ("deduct", |order_no, at| SkuCommand::Deduct { order_no, at }),
                    Work::Release => ("cancel", |order_no, at| SkuCommand::Release {
                        order_no,
                        reason: ReleaseReason::OrderCancelled,
                        at,
                    }),
                };
                let meta = self
                    .ctx
                    .meta(event, format!("saga:{kind}:{order_no}:{}", line.sku))?;
                let command = build(order_no.clone(), meta.at);
                Ok((line.sku.clone(), command, meta))
            })
            .collect()
    }

    /// Publishes every refund of the batch, in order, then waits for the bus to store them.
    async fn hand_over_refunds(
        &self,
        refunds: &[(usize, &RecordedEvent, PaymentRefunded)],
    ) -> Vec<(usize, Result<(), HandlerError>)> {
        let subjects = self.ctx.bus.subjects().clone();
        let mut pending = Vec::new();
        for (index, event, refund) in refunds {
            let Ok(order_no) = OrderNo::parse(event.stream.id()) else {
                pending.push((
                    *index,
                    Err(failed(CommandError::NotFound(event.stream.to_string()))),
                ));
                continue;
            };
            let body = RefundRequest {
                version: REFUND_MESSAGE_VERSION,
                refund_id: event.event_id,
                order_no: order_no.clone(),
                txn: refund.txn.clone(),
                amount: refund.amount,
                reason: refund.reason,
                at: refund.at,
                correlation_id: event.metadata.correlation_id.to_string(),
            };
            let payload = match serde_json::to_vec(&body) {
                Ok(payload) => payload,
                Err(e) => {
                    pending.push((*index, Err(Box::new(e) as HandlerError)));
                    continue;
                }
            };
            let message = OutgoingMessage::new(subjects.payment_refund(order_no.as_str()), payload)
                .with_msg_id(event.event_id.to_string())
                .with_header("Content-Type", "application/json")
                .with_header(
                    "Orderflow-Correlation-Id",
                    event.metadata.correlation_id.as_str(),
                );
            match self.ctx.bus.start_publish(message).await {
                Ok(ack) => pending.push((*index, Ok(Some(ack)))),
                Err(e) => pending.push((*index, Err(Box::new(e) as HandlerError))),
            }
        }
        let mut out = Vec::new();
        for (index, started) in pending {
            let result = match started {
                Ok(Some(ack)) => ack
                    .await
                    .map(|_| ())
                    .map_err(|e| Box::new(e) as HandlerError),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            out.push((index, result));
        }
        out
    }
}
