//! Test support shared by every crate's tests: throw-away databases, unique NATS prefixes, and
//! the conformance suites every adapter of a port must pass.
//!
//! Compiled for this crate's own tests and, with the `testing` feature, for other crates.

pub mod bus;
mod database;
pub mod store;
mod store_claims;
mod store_group;

pub use database::{nats_url, unique_name, TestDatabase};
