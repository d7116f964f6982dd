//! Metric names and one-line recorders, through the `metrics` facade.
//!
//! Every service records here and only here, so the names are written once and documented
//! in `docs/operations.md`. Recording is a no-op until a process installs a recorder
//! (`orderflow serve` installs the Prometheus one), so libraries, tests and benches pay
//! nothing for it.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | [`COMMANDS_TOTAL`] | counter | `command` (RPC name), `outcome` (gRPC code, snake case) |
//! | [`COMMAND_DURATION`] | histogram (s) | `command` |
//! | [`APPEND_DURATION`] | histogram (s) | `op` (`append`, `append_many`), `outcome` |
//! | [`APPENDED_EVENTS`] | counter | — |
//! | [`PROJECTION_LAG`] | gauge (events) | `projector` |
//! | [`CONSUMER_LAG`] | gauge (events) | `consumer` (process managers, the relay) |
//! | [`SAGA_BACKLOG`] | gauge (events) | — |
//! | [`OPEN_DEADLINES`] | gauge | — |

mod timed_store;

use std::time::Duration;

pub use timed_store::TimedEventStore;

/// Commands answered, by RPC and outcome (`ok`, `invalid_argument`, `failed_precondition`…).
pub const COMMANDS_TOTAL: &str = "orderflow_commands_total";
/// Time from request to answer of a command RPC.
pub const COMMAND_DURATION: &str = "orderflow_command_duration_seconds";
/// Time of one event-store append (or batch of appends), from submit to commit.
pub const APPEND_DURATION: &str = "orderflow_store_append_duration_seconds";
/// Events committed to the event store by this process.
pub const APPENDED_EVENTS: &str = "orderflow_store_appended_events_total";
/// Events a projector still has to apply: store head minus its checkpoint, summed over shards.
pub const PROJECTION_LAG: &str = "orderflow_projection_lag_events";
/// The same for the other durable consumers (saga, notifier, deadline scheduler, relay).
pub const CONSUMER_LAG: &str = "orderflow_consumer_lag_events";
/// Events the submit/settlement saga has not handled yet (both of its consumers).
pub const SAGA_BACKLOG: &str = "orderflow_saga_backlog_events";
/// Deadlines scheduled and not yet fired or cancelled.
pub const OPEN_DEADLINES: &str = "orderflow_open_deadlines";

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(COMMANDS_TOTAL, "commands answered, by rpc and grpc outcome");
    describe_histogram!(
        COMMAND_DURATION,
        Unit::Seconds,
        "time from request to answer of a command rpc"
    );
    describe_histogram!(
        APPEND_DURATION,
        Unit::Seconds,
        "event store append latency, submit to commit"
    );
    describe_counter!(APPENDED_EVENTS, "events committed by this process");
    describe_gauge!(
        PROJECTION_LAG,
        "events a projector has not applied yet (store head - checkpoint)"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "events a durable consumer has not handled yet (store head - checkpoint)"
    );
    describe_gauge!(SAGA_BACKLOG, "events the submit saga has not handled yet");
    describe_gauge!(OPEN_DEADLINES, "deadlines scheduled and not yet fired");
}

/// One command RPC answered.
pub fn command_answered(command: &str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!(COMMANDS_TOTAL, "command" => command.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(COMMAND_DURATION, "command" => command.to_owned()).record(elapsed);
}

/// How far a projector is behind the event store, in events. The read side calls this (or
/// lets `orderflow serve`'s sampler compute it from the projector's checkpoints).
pub fn projection_lag(projector: &str, events: u64) {
    metrics::gauge!(PROJECTION_LAG, "projector" => projector.to_owned()).set(events as f64);
}

/// How far a process manager (or the relay) is behind the event store, in events.
pub fn consumer_lag(consumer: &str, events: u64) {
    metrics::gauge!(CONSUMER_LAG, "consumer" => consumer.to_owned()).set(events as f64);
}

pub fn saga_backlog(events: u64) {
    metrics::gauge!(SAGA_BACKLOG).set(events as f64);
}

pub fn open_deadlines(count: u64) {
    metrics::gauge!(OPEN_DEADLINES).set(count as f64);
}
