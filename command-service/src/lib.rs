//! The write side of orderflow (not built yet).
//!
//! Here will live the gRPC `CommandService`, the command handlers that load an aggregate from
//! the event store, decide with the pure `domain` model and append the result; the per-SKU
//! single writers that serialise flash-sale reservations; and the process managers (submit /
//! reservation saga, rider notifier, durable deadlines, reservation reaper).
#![forbid(unsafe_code)]
