//! The pure orderflow model: aggregates as deciders, their commands and events, value types.
//!
//! No IO, no async, no clock: time and ids come in through commands, so every decision is a
//! deterministic function of the past events and the command.
#![forbid(unsafe_code)]

pub mod actor;
pub mod shard;
pub mod stream;
pub mod time;

pub use actor::{Actor, Role};
pub use shard::{Shard, SHARD_COUNT};
pub use stream::StreamId;
pub use time::Timestamp;
