//! The read side's gRPC `QueryService` (not built yet).
//!
//! Here will live the queries over the read models built by `projections`, with
//! read-your-writes consistency tokens and long-polling `IsCreated`.
#![forbid(unsafe_code)]
