//! Who may send which command (issue 3 §6), as pure functions over the authenticated
//! [`Caller`] and the validated request.
//!
//! - merchants' RPCs: role merchant with its own `merchant_id`, or admin;
//! - `SubmitOrder`: role buyer, as itself (`buyer_id` = token `sub`);
//! - `CancelOrder`: role buyer on its own order, or ops/admin. Who owns the order is known
//!   only once it is loaded, so the handler finishes the check with [`ensure_buyer_owns`];
//! - `ConfirmPayment`: role service only (the payment provider's callback);
//! - riders' RPCs: role rider, as itself (`rider_id` = `sub`). That a grab presents an offer
//!   made to this rider, and that only the rider who grabbed picks up and delivers, are the
//!   order aggregate's rules (they need its state);
//! - `Compensate`, `CloseOrder`: ops or admin.
//!
//! No token or a bad one is UNAUTHENTICATED; the wrong role or owner is PERMISSION_DENIED.
//! Both are decided before anything is loaded or appended.

use orderflow_domain::{BuyerId, MerchantId, RiderId, Role, Timestamp};
use orderflow_infra::auth::{AuthError, Caller, JwtAuth};
use orderflow_proto::convert::{
    CancelOrder, CloseOrder, Compensate, ConfirmDelivery, ConfirmPayment, DelistDish, GoOffline,
    GoOnline, GrabOrder, ListDish, OpenMerchant, PickUp, ReportLocation, Restock, SubmitOrder,
};

use crate::error::CommandError;

/// The metadata key of the bearer token (gRPC lower-cases every key).
pub const AUTHORIZATION: &str = "authorization";

/// The caller of a gRPC request, from its `authorization: Bearer <jwt>` metadata, checked at
/// `now` (the service's clock, so tests drive token expiry too).
pub fn authenticate<T>(
    auth: &JwtAuth,
    request: &tonic::Request<T>,
    now: Timestamp,
) -> Result<Caller, CommandError> {
    caller_from_metadata(auth, request.metadata(), now)
}

/// As [`authenticate`], from the metadata alone (streams, interceptors).
pub fn caller_from_metadata(
    auth: &JwtAuth,
    metadata: &tonic::metadata::MetadataMap,
    now: Timestamp,
) -> Result<Caller, CommandError> {
    let value = metadata.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    // A value with bytes outside visible ASCII cannot be a bearer token.
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    Ok(auth.verify_at(value, now)?)
}

/// Whether a caller may send a request, judged from the request alone.
pub trait Authorize {
    /// The RPC's name, for messages.
    const RPC: &'static str;

    fn authorize(&self, caller: &Caller) -> Result<(), CommandError>;
}

/// The order is `order_buyer`'s: its buyer may act on it, and so may ops and admin, who act
/// on any order. Everyone else is refused.
pub fn ensure_buyer_owns(caller: &Caller, order_buyer: BuyerId) -> Result<(), CommandError> {
    match caller.role() {
        Role::Ops | Role::Admin => Ok(()),
        Role::Buyer if caller.buyer_id() == Some(order_buyer) => Ok(()),
        Role::Buyer => Err(denied("the order belongs to another buyer")),
        other => Err(denied(format_args!(
            "role {} may not act on a buyer's order",
            other.as_str()
        ))),
    }
}

fn denied(message: impl std::fmt::Display) -> CommandError {
    CommandError::PermissionDenied(message.to_string())
}

/// The caller's role is one of `allowed`.
fn require_role(caller: &Caller, allowed: &[Role], rpc: &str) -> Result<(), CommandError> {
    if allowed.contains(&caller.role()) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
    Err(denied(format_args!(
        "{rpc} is for role {}, not {}",
        names.join(" or "),
        caller.role().as_str()
    )))
}

/// A merchant on its own shop, or an admin on any.
fn merchant_itself_or_admin(
    caller: &Caller,
    merchant: MerchantId,
    rpc: &str,
) -> Result<(), CommandError> {
    require_role(caller, &[Role::Merchant, Role::Admin], rpc)?;
    match caller.merchant_id() {
        Some(me) if me != merchant => Err(denied(format_args!(
            "merchant {me} may not act as merchant_id {merchant}"
        ))),
        _ => Ok(()),
    }
}

fn buyer_itself(caller: &Caller, buyer: BuyerId, rpc: &str) -> Result<(), CommandError> {
    require_role(caller, &[Role::Buyer], rpc)?;
    match caller.buyer_id() {
        Some(me) if me == buyer => Ok(()),
        _ => Err(denied(format_args!(
            "buyer {} may not act as buyer_id {buyer}",
            caller.subject()
        ))),
    }
}

fn rider_itself(caller: &Caller, rider: RiderId, rpc: &str) -> Result<(), CommandError> {
    require_role(caller, &[Role::Rider], rpc)?;
    match caller.rider_id() {
        Some(me) if me == rider => Ok(()),
        _ => Err(denied(format_args!(
            "rider {} may not act as rider_id {rider}",
            caller.subject()
        ))),
    }
}

macro_rules! authorize {
    ($($request:ident => |$req:ident, $caller:ident| $rule:expr;)*) => {$(
        impl Authorize for $request {
            const RPC: &'static str = stringify!($request);
            fn authorize(&self, $caller: &Caller) -> Result<(), CommandError> {
                let $req = self;
                $rule
            }
        }
    )*};
}

authorize! {
    OpenMerchant => |r, c| merchant_itself_or_admin(c, r.merchant, Self::RPC);
    ListDish => |r, c| merchant_itself_or_admin(c, r.merchant, Self::RPC);
    DelistDish => |r, c| merchant_itself_or_admin(c, r.merchant, Self::RPC);
    Restock => |r, c| merchant_itself_or_admin(c, r.merchant, Self::RPC);

    SubmitOrder => |r, c| buyer_itself(c, r.buyer, Self::RPC);
    // The order's owner is checked once the order is loaded: `ensure_buyer_owns`.
    CancelOrder => |_r, c| require_role(c, &[Role::Buyer, Role::Ops, Role::Admin], Self::RPC);
    ConfirmPayment => |_r, c| require_role(c, &[Role::Service], Self::RPC);

    GoOnline => |r, c| rider_itself(c, r.rider, Self::RPC);
    ReportLocation => |r, c| rider_itself(c, r.rider, Self::RPC);
    GoOffline => |r, c| rider_itself(c, r.rider, Self::RPC);
    GrabOrder => |r, c| rider_itself(c, r.rider, Self::RPC);
    PickUp => |r, c| rider_itself(c, r.rider, Self::RPC);
    ConfirmDelivery => |r, c| rider_itself(c, r.rider, Self::RPC);

    Compensate => |_r, c| require_role(c, &[Role::Ops, Role::Admin], Self::RPC);
    CloseOrder => |_r, c| require_role(c, &[Role::Ops, Role::Admin], Self::RPC);
}

#[cfg(test)]
mod tests;
