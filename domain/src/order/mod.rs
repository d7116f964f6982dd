//! The order aggregate (stream `order-{order_no}`): from submission to closing.
//!
//! ```text
//! CREATING ─┬─> CREATED ─┬─> PAID <──> NOTIFIED ──> DELIVERING ─┬─> RECEIVED ─┬─> CLOSED
//!           └─> FAILED   └─> CANCELLED                         └─> TIMED_OUT ─┘     ^
//!                                                      (ever late) RECEIVED ─> COMPENSATED
//! ```
//!
//! Terminal: FAILED, CANCELLED, CLOSED. What a command handler must know:
//! - prices and listings live in the sku streams: the order records the lines as submitted
//!   and the reservation saga answers with `Create` or `Reject(FailureReason)`;
//! - a payment is idempotent on its transaction id (same id and amount: `Ok(vec![])`); a
//!   payment the order cannot take (cancelled, failed, already paid by another transaction)
//!   is recorded and refunded (`PaymentReceived` + `PaymentRefunded`), never dropped;
//! - time comes with the command (`now`/`at`); deadline commands are refused until the
//!   deadline has really passed, so an early or duplicated timer is harmless;
//! - rider capacity is the rider aggregate's business: assign there, then grab here.

mod command;
mod decide;
mod error;
mod event;
mod state;
mod status;
#[cfg(test)]
mod tests;

pub use command::{CancelCause, LineRefusal, OrderCommand, OrderLine};
pub use error::{OrderError, MAX_LINES, MAX_RADIUS_M};
pub use event::*;
pub use state::{Offer, OrderState, PaymentRecord, PlacedOrder};
pub use status::OrderStatus;

use crate::decider::Decider;

/// The order decider; see the module docs for its rules.
pub struct Order;

impl Decider for Order {
    type Command = OrderCommand;
    type Event = OrderEvent;
    type State = OrderState;
    type Error = OrderError;

    fn decide(command: &OrderCommand, state: &OrderState) -> Result<Vec<OrderEvent>, OrderError> {
        decide::decide(command, state)
    }

    fn evolve(state: OrderState, event: &OrderEvent) -> OrderState {
        state::evolve(state, event)
    }
}
