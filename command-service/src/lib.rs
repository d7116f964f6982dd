//! The write side of orderflow.
//!
//! - [`auth`]: who may send which command, and the caller of a gRPC request;
//! - [`execute`]: runs a command against one aggregate (load, decide, append) with
//!   idempotency by command id and optimistic-concurrency retries;
//! - [`error`]: the one error type and its one mapping to gRPC codes;
//! - [`clock`]: where "now" comes from (a manual clock in tests);
//! - [`riders`]: the rider-geo index and the notifier that offers paid orders to riders;
//! - [`service`]: the gRPC `CommandService` (every RPC: authenticate, parse, authorize,
//!   execute, answer with a consistency token), request idempotency, order numbers;
//! - [`app`]: the command side assembled (store, bus, relay, background tasks) and its
//!   graceful shutdown; [`server`]: `run(app, listener, shutdown)` with health and reflection.
//! - [`deadlines`]: durable deadlines (payment, offer, delivery, close, reservation expiry):
//!   stored, scheduled from events by the `deadline-scheduler` consumer, fired once in effect.
//!
//! - [`stock`]: the per-SKU single writers every Sku command goes through;
//! - [`saga`]: the submit/reservation saga (`saga-submit`, `saga-settle` consumers);
//! - [`processes`]: starts every process manager as a background task of the app.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod deadlines;
pub mod error;
pub mod execute;
pub mod processes;
pub mod riders;
pub mod saga;
pub mod server;
pub mod service;
pub mod stock;

pub use app::{AppError, CommandApp, CommandAppBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::CommandConfig;
pub use error::CommandError;
pub use execute::{Aggregate, CommandMeta, Executed, Executor};
pub use saga::{Saga, SagaConfig, SagaError};
pub use stock::{StockConfig, StockWriters};
