//! The `orderflow` binary's library: what the binary runs and tests drive as well.
//!
//! - [`demo`]: `orderflow demo`, a simulated city (merchants, moving riders, buyers, a flash
//!   sale) driven through the real gRPC API in fast time, with a report of what happened.
#![forbid(unsafe_code)]

pub mod demo;
