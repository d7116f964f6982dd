//! The `orderflow` binary's library: what the binary runs and tests drive as well.
//!
//! - [`demo`]: `orderflow demo`, a simulated city (merchants, moving riders, buyers, a flash
//!   sale) driven through the real gRPC API in fast time, with a report of what happened.
//! - [`scratch`]: the database and NATS prefix one demo or bench run creates and removes.
//! - [`redact`]: URLs with their passwords hidden.
#![forbid(unsafe_code)]

pub mod demo;
pub mod redact;
pub mod scratch;
