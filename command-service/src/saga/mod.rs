//! The submit/reservation saga (seed 001's 下单 flow) as two durable process managers on the
//! bus, each an ordered consumer with its own checkpoint:
//!
//! - **`saga-submit`** ([`submit`]): `OrderSubmitted` → merchant open? (else `MERCHANT_CLOSED`)
//!   → `Reserve` every line on its SKU → all reserved: `Order::Create` with the payment
//!   deadline; any refused: `Release` what was reserved and `Order::Reject` with the reason.
//! - **`saga-settle`** ([`settle`]): `OrderPaid` → `Deduct` every line; `OrderCancelled` →
//!   `Release` every line; `PaymentRefunded` → a durable refund message for the payment
//!   provider on `{prefix}.payments.refunds.{order_no}` (message id = the event id).
//!
//! **Idempotent, crash-safe**: every command carries an id derived from what it does
//! (`saga:reserve:{order_no}:{sku}`, `saga:create:{order_no}`, …) through
//! [`CommandMeta::caused_by`]. The consumers checkpoint before they ack, so after a crash
//! the events past the checkpoint come again; re-sent commands then return their first
//! answer (a reserve that succeeded stays a success even if the stock is gone by now), so a
//! resumed saga finishes the order without reserving or releasing anything twice.
//!
//! **Fast**: each fetch (up to `batch` events) is handled at once: merchants loaded once per
//! batch, every reservation of the batch sent to the SKU writers together (one append per
//! SKU per batch), every order outcome appended with one `append_many`. The submit half is
//! pipelined: a batch's outcomes are appended while the next batch is checked and reserved
//! (`OrderedConsumer::run_pipelined`), and a batch is acknowledged once its outcomes are.

mod settle;
mod submit;

use std::sync::Arc;

use orderflow_infra::bus::{
    CheckpointStore, ConsumerError, EventBus, HandlerError, OrderedConsumer, OrderedConsumerConfig,
};
use orderflow_infra::store::{CommandId, RecordedEvent};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::clock::Clock;
use crate::config::CommandConfig;
use crate::error::CommandError;
use crate::execute::{CommandMeta, Executor};
use crate::stock::StockWriters;

pub use settle::{RefundRequest, REFUND_MESSAGE_VERSION};

/// Durable consumer (and checkpoint) name of the submit half.
pub const SUBMIT_CONSUMER: &str = "saga-submit";
/// Durable consumer (and checkpoint) name of the settlement half.
pub const SETTLE_CONSUMER: &str = "saga-settle";
/// The actor of every command the saga sends (`service:orderflow:saga`).
pub const COMPONENT: &str = "saga";

#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// Payment window and reservation TTL.
    pub timings: CommandConfig,
    pub submit: OrderedConsumerConfig,
    pub settle: OrderedConsumerConfig,
}

impl SagaConfig {
    pub fn new(timings: CommandConfig) -> Self {
        let mut submit = OrderedConsumerConfig::new(SUBMIT_CONSUMER);
        // A flash sale arrives as thousands of submissions per second: bigger batches mean
        // fewer commits per order.
        submit.batch = 1_024;
        submit.checkpoint_every = 4_096;
        SagaConfig {
            timings,
            submit,
            settle: OrderedConsumerConfig::new(SETTLE_CONSUMER),
        }
    }
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig::new(CommandConfig::default())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("saga consumer {name}: {source}")]
    Consumer { name: String, source: ConsumerError },
    #[error("saga task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What both halves share.
pub(crate) struct Ctx {
    pub executor: Executor,
    pub stock: StockWriters,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub timings: CommandConfig,
    #[cfg(test)]
    pub hooks: TestHooks,
}

/// Tests: ways to stop the submit half between its steps.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestHooks {
    /// Panic right after the reservations of the n-th batch (1 = the first), before its
    /// outcomes: a crash mid-saga.
    pub crash_after_reserving: Option<usize>,
    /// Every second stage waits for a permit here before its outcomes: holds batches
    /// between the stages.
    pub outcomes_gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Ctx {
    /// The metadata of a saga command reacting to `event`, with a deterministic id.
    pub fn meta(&self, event: &RecordedEvent, id: String) -> Result<CommandMeta, CommandError> {
        let command_id = CommandId::parse(id)?;
        Ok(CommandMeta::caused_by(
            event,
            COMPONENT,
            command_id,
            self.clock.now(),
        ))
    }
}

/// The saga: build it with its dependencies, then `run` it until shutdown.
pub struct Saga {
    ctx: Arc<Ctx>,
    checkpoints: Arc<dyn CheckpointStore>,
    config: SagaConfig,
}

impl Saga {
    pub fn new(
        executor: Executor,
        stock: StockWriters,
        bus: Arc<dyn EventBus>,
        checkpoints: Arc<dyn CheckpointStore>,
        clock: Arc<dyn Clock>,
        config: SagaConfig,
    ) -> Self {
        Saga {
            ctx: Arc::new(Ctx {
                executor,
                stock,
                bus,
                clock,
                timings: config.timings.clone(),
                #[cfg(test)]
                hooks: TestHooks::default(),
            }),
            checkpoints,
            config,
        }
    }

    /// Tests: the submit half panics after reserving (a crash between two steps).
    #[cfg(test)]
    pub(crate) fn crashing_after_reserve(self) -> Self {
        self.with_hooks(TestHooks {
            crash_after_reserving: Some(1),
            outcomes_gate: None,
        })
    }

    #[cfg(test)]
    pub(crate) fn with_hooks(mut self, hooks: TestHooks) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.hooks = hooks;
        }
        self
    }

    /// Runs both consumers until `shutdown` (each finishes the batch in hand, saves its
    /// checkpoint, acks). If one stops with an error, the other is stopped too and the
    /// error returned.
    #[instrument(skip_all)]
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SagaError> {
        let stop = shutdown.child_token();
        let consumer = |config: OrderedConsumerConfig| {
            let (bus, checkpoints) = (self.ctx.bus.clone(), self.checkpoints.clone());
            async move {
                let name = config.name.clone();
                OrderedConsumer::new(bus, checkpoints, config)
                    .await
                    .map_err(|source| SagaError::Consumer { name, source })
            }
        };
        let submit = consumer(self.config.submit.clone()).await?;
        let settle = consumer(self.config.settle.clone()).await?;
        let mut submit_task = tokio::spawn({
            let (handler, stop) = (submit::SubmitHandler::new(self.ctx.clone()), stop.clone());
            async move {
                let result = submit.run_pipelined(handler, stop.clone()).await;
                stop.cancel();
                result.map(|_| ()).map_err(|source| SagaError::Consumer {
                    name: SUBMIT_CONSUMER.to_owned(),
                    source,
                })
            }
        });
        let mut settle_task = tokio::spawn({
            let (handler, stop) = (settle::SettleHandler::new(self.ctx.clone()), stop.clone());
            async move {
                let result = settle.run_batched(handler, stop.clone()).await;
                stop.cancel();
                result.map(|_| ()).map_err(|source| SagaError::Consumer {
                    name: SETTLE_CONSUMER.to_owned(),
                    source,
                })
            }
        });
        // Whichever ends first (shutdown, an error, a panic) stops the other.
        let (first, other) = tokio::select! {
            r = &mut submit_task => (r, settle_task),
            r = &mut settle_task => (r, submit_task),
        };
        stop.cancel();
        let other = other.await;
        first??;
        other??;
        Ok(())
    }
}

/// A command-side failure as a handler failure (retried, then dead-lettered).
pub(crate) fn failed(e: CommandError) -> HandlerError {
    Box::new(e)
}

#[cfg(test)]
mod tests;
