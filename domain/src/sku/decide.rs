//! Every rule of a sku, one function per command.

use super::command::{ReleaseReason, SkuCommand};
use super::error::SkuError;
use super::event::*;
use super::state::{Listing, ReservationState, SkuState};
use crate::ids::MerchantId;
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::quantity::Quantity;
use crate::time::Timestamp;

type Decision = Result<Vec<SkuEvent>, SkuError>;

pub(super) fn decide(command: &SkuCommand, state: &SkuState) -> Decision {
    match command {
        SkuCommand::List {
            merchant,
            name,
            price,
            at,
        } => {
            if let Some(listing) = state.listing() {
                owned_by(listing, *merchant)?;
            }
            if !price.is_positive() {
                return Err(SkuError::NonPositivePrice(*price));
            }
            one(DishListed {
                merchant: *merchant,
                name: name.clone(),
                price: *price,
                at: *at,
            })
        }
        SkuCommand::Delist { merchant, at } => {
            let listing = state.listing().ok_or(SkuError::UnknownSku)?;
            owned_by(listing, *merchant)?;
            if !listing.listed {
                return Err(SkuError::DishDelisted);
            }
            one(DishDelisted { at: *at })
        }
        SkuCommand::Restock {
            merchant,
            quantity,
            at,
        } => {
            let listing = state.listing().ok_or(SkuError::UnknownSku)?;
            owned_by(listing, *merchant)?;
            let added = state.stock().added;
            if added.checked_add(quantity.get()).is_none() {
                return Err(SkuError::StockOverflow {
                    added,
                    more: quantity.get(),
                });
            }
            one(StockAdded {
                quantity: *quantity,
                at: *at,
            })
        }
        SkuCommand::Reserve {
            order_no,
            merchant,
            quantity,
            unit_price,
            expires_at,
            at,
        } => reserve(
            state,
            order_no,
            *merchant,
            *quantity,
            *unit_price,
            *expires_at,
            *at,
        ),
        SkuCommand::Deduct { order_no, at } => {
            let held = held(state, order_no)?;
            match held.state {
                ReservationState::Reserved => one(StockDeducted {
                    order_no: order_no.clone(),
                    quantity: held.quantity,
                    at: *at,
                }),
                // The payment handler retrying: the units are sold once.
                ReservationState::Deducted => Ok(vec![]),
                ReservationState::Released => Err(SkuError::ReservationReleased(order_no.clone())),
            }
        }
        SkuCommand::Release {
            order_no,
            reason,
            at,
        } => {
            let held = held(state, order_no)?;
            match held.state {
                ReservationState::Reserved => {
                    if *reason == ReleaseReason::Expired && *at < held.expires_at {
                        return Err(SkuError::ReservationNotExpired {
                            order_no: order_no.clone(),
                            expires_at: held.expires_at,
                            at: *at,
                        });
                    }
                    one(StockReleased {
                        order_no: order_no.clone(),
                        quantity: held.quantity,
                        reason: *reason,
                        at: *at,
                    })
                }
                // A second release (the saga and the reaper racing) gives nothing back twice.
                ReservationState::Released => Ok(vec![]),
                ReservationState::Deducted => Err(SkuError::ReservationDeducted(order_no.clone())),
            }
        }
    }
}

fn one(event: impl Into<SkuEvent>) -> Decision {
    Ok(vec![event.into()])
}

fn owned_by(listing: &Listing, merchant: MerchantId) -> Result<(), SkuError> {
    if listing.merchant == merchant {
        Ok(())
    } else {
        Err(SkuError::OtherMerchant {
            owner: listing.merchant,
        })
    }
}

fn held<'a>(
    state: &'a SkuState,
    order_no: &OrderNo,
) -> Result<&'a super::state::Reservation, SkuError> {
    state
        .reservation(order_no)
        .ok_or_else(|| SkuError::ReservationNotFound(order_no.clone()))
}

/// Whether a new reservation of `quantity` at `unit_price` is refused by the stock alone, on
/// `listing` with `available` units: delisted, repriced, or not enough left. The same rule,
/// in the same order, that a `Reserve` applies; the submit path asks it of a SKU's last
/// durable state to refuse an order at once, without a saga round.
pub fn refusal(
    listing: &Listing,
    available: i64,
    quantity: Quantity,
    unit_price: Money,
) -> Result<(), SkuError> {
    if !listing.listed {
        return Err(SkuError::DishDelisted);
    }
    if unit_price != listing.price {
        return Err(SkuError::PriceChanged {
            seen: unit_price,
            current: listing.price,
        });
    }
    if available < quantity.get() {
        return Err(SkuError::OutOfStock {
            requested: quantity.get(),
            available,
        });
    }
    Ok(())
}

fn reserve(
    state: &SkuState,
    order_no: &OrderNo,
    merchant: MerchantId,
    quantity: Quantity,
    unit_price: Money,
    expires_at: Timestamp,
    at: Timestamp,
) -> Decision {
    // A sku of another merchant is, to this order, a sku that does not exist.
    let listing = match state.listing() {
        Some(listing) if listing.merchant == merchant => listing,
        _ => return Err(SkuError::UnknownSku),
    };
    // The saga retrying: answer as the first time did, whatever the stock is now.
    if let Some(held) = state.reservation(order_no) {
        return match held.state {
            ReservationState::Released => Err(SkuError::ReservationReleased(order_no.clone())),
            _ if held.quantity != quantity => Err(SkuError::ReservationConflict {
                order_no: order_no.clone(),
                reserved: held.quantity.get(),
                requested: quantity.get(),
            }),
            _ => Ok(vec![]),
        };
    }
    refusal(listing, state.stock().available, quantity, unit_price)?;
    if expires_at <= at {
        return Err(SkuError::ExpiryNotAfter { expires_at, at });
    }
    one(StockReserved {
        order_no: order_no.clone(),
        quantity,
        unit_price,
        expires_at,
        at,
    })
}
