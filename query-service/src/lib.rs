//! The read side's gRPC `QueryService`, and the read app that serves it.
//!
//! - [`service`]: the handler (one module per RPC group) — authenticate, parse, authorize,
//!   read-your-writes, read, answer;
//! - [`auth`]: who may read what; [`tokens`]: verified bearer tokens kept until they
//!   expire; [`error`]: the one error type and its gRPC codes;
//! - [`read_models`]: the read ports the handler answers from, each with the applied
//!   positions of its projector;
//! - [`history`]: audit — an order's events and the order as of a time (also for the CLI);
//! - [`app`]: projections + handler assembled (embedded or PostgreSQL), started with a
//!   cancellation token and drained on shutdown.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod convert;
pub mod error;
pub mod history;
pub mod read_models;
pub mod service;
pub mod tokens;

pub use app::{ReadApp, ReadAppBuilder};
pub use error::QueryError;
pub use service::{system_now, Now, QueryConfig, QueryHandler};
