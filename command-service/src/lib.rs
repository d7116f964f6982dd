//! The write side of orderflow.
//!
//! - [`auth`]: who may send which command, and the caller of a gRPC request;
//! - [`execute`]: runs a command against one aggregate (load, decide, append) with
//!   idempotency by command id and optimistic-concurrency retries;
//! - [`error`]: the one error type and its one mapping to gRPC codes;
//! - [`clock`]: where "now" comes from (a manual clock in tests);
//! - [`stock`]: the per-SKU single writers every Sku command goes through;
//! - [`saga`]: the submit/reservation saga (`saga-submit`, `saga-settle` consumers).
//!
//! Still to come (issue 3): the gRPC `CommandService`, and the other process managers
//! (rider notifier, durable deadlines, reservation reaper).
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod execute;
pub mod saga;
pub mod stock;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::CommandConfig;
pub use error::CommandError;
pub use execute::{Aggregate, CommandMeta, Executed, Executor};
pub use saga::{Saga, SagaConfig, SagaError};
pub use stock::{StockConfig, StockWriters};
