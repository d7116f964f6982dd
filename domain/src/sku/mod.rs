//! The sku aggregate (stream `sku-{sku_id}`): one dish's listing and its stock ledger.
//!
//! Listing and stock live in one stream so that one single writer decides a reservation
//! against both at once (listed? this price? enough left?) with no cross-stream read.
//! What a command handler must know:
//! - the sku holds the price and the listed flag; the order only records what the buyer saw,
//!   and `Reserve` refuses with the contract's `FailureReason` (`SkuError::failure_reason`):
//!   `UNKNOWN_SKU` (never listed, or another merchant's), `DISH_DELISTED`, `PRICE_CHANGED`,
//!   `OUT_OF_STOCK`;
//! - exact repeats are `Ok(vec![])`: reserving again for the same order and quantity while
//!   reserved or deducted, deducting a deducted reservation, releasing a released one. So a
//!   retrying saga never double-reserves, double-deducts or double-releases;
//! - deducting a released reservation, releasing a deducted one, or releasing for `Expired`
//!   before `expires_at` are refused; a deduct after expiry but before the reaper released it
//!   succeeds (the payment won the race);
//! - restock only adds, with overflow checked; nothing sets a quantity.

mod command;
mod decide;
mod error;
mod event;
mod state;
#[cfg(test)]
mod tests;

pub use command::{ReleaseReason, SkuCommand};
pub use decide::refusal as reservation_refusal;
pub use error::SkuError;
pub use event::*;
pub use state::{Listing, Reservation, ReservationState, SkuState, StockLevel};

use crate::decider::Decider;

/// The sku decider; see the module docs for its rules.
pub struct Sku;

impl Decider for Sku {
    type Command = SkuCommand;
    type Event = SkuEvent;
    type State = SkuState;
    type Error = SkuError;

    fn decide(command: &SkuCommand, state: &SkuState) -> Result<Vec<SkuEvent>, SkuError> {
        decide::decide(command, state)
    }

    fn evolve(state: SkuState, event: &SkuEvent) -> SkuState {
        state::evolve(state, event)
    }
}
