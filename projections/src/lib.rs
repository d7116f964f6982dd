//! The projectors of orderflow (not built yet).
//!
//! Here will live the durable consumers that turn the event log into read models in
//! PostgreSQL (buyer and seller order lists, order detail, stock ledger, merchant catalog,
//! ops statistics, order search) and the in-memory rider-geo index, each with its own
//! checkpoint, idempotent on replay, and rebuildable from position 0.
#![forbid(unsafe_code)]
