//! orderflow's adapters: the event store (PostgreSQL and in-memory), the event bus (NATS
//! JetStream and in-process), the relay between them, schema migrations, and bearer-token
//! authentication ([`auth`]), and the metric names every service records ([`telemetry`]).
//!
//! Ports (traits) live next to their adapters here because every service needs them;
//! `domain` knows nothing of this crate.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bus;
pub mod duration;
pub mod migrate;
pub mod store;
pub mod telemetry;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
