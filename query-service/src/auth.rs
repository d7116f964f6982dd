//! Who may read what (issue 4 §2), as pure functions over the authenticated [`Caller`].
//!
//! - an order (`GetOrder`, `IsCreated`, `WatchOrder`, `GetOrderHistory`, `GetOrderAsOf`):
//!   its buyer, its merchant, the rider carrying it, ops and admin. Who owns an order is known
//!   once it is read, so these check after the read ([`may_read_order`]) and a refused caller
//!   learns nothing but the refusal;
//! - `ListBuyerOrders`: the buyer itself, ops, admin;
//! - `ListSellerOrders`: the merchant itself, ops, admin;
//! - `SearchOrders`: ops and admin (it spans every buyer and merchant).
//!
//! No token or a bad one is UNAUTHENTICATED; the wrong role or owner is PERMISSION_DENIED.

use orderflow_domain::{BuyerId, MerchantId, RiderId, Role, Timestamp};
use orderflow_infra::auth::{AuthError, Caller, JwtAuth};

use crate::error::QueryError;

/// The metadata key of the bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// The caller of a request from its `authorization: Bearer <jwt>` metadata, at `now`.
pub fn authenticate(
    auth: &JwtAuth,
    metadata: &tonic::metadata::MetadataMap,
    now: Timestamp,
) -> Result<Caller, QueryError> {
    let value = metadata.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    Ok(auth.verify_at(value, now)?)
}

/// Who an order concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderParties {
    pub buyer: BuyerId,
    pub merchant: MerchantId,
    pub rider: Option<RiderId>,
}

fn sees_everything(caller: &Caller) -> bool {
    matches!(caller.role(), Role::Ops | Role::Admin)
}

/// Whether `caller` may read an order concerning `parties`.
pub fn may_read_order(caller: &Caller, parties: OrderParties) -> Result<(), QueryError> {
    let allowed = sees_everything(caller)
        || caller.buyer_id() == Some(parties.buyer)
        || caller.merchant_id() == Some(parties.merchant)
        || (caller.rider_id().is_some() && caller.rider_id() == parties.rider);
    if allowed {
        Ok(())
    } else {
        Err(QueryError::denied(format_args!(
            "{} {} may not read this order",
            caller.role().as_str(),
            caller.subject()
        )))
    }
}

pub fn may_list_buyer(caller: &Caller, buyer: BuyerId) -> Result<(), QueryError> {
    if sees_everything(caller) || caller.buyer_id() == Some(buyer) {
        return Ok(());
    }
    Err(QueryError::denied(format_args!(
        "{} {} may not list the orders of buyer {buyer}",
        caller.role().as_str(),
        caller.subject()
    )))
}

pub fn may_list_seller(caller: &Caller, merchant: MerchantId) -> Result<(), QueryError> {
    if sees_everything(caller) || caller.merchant_id() == Some(merchant) {
        return Ok(());
    }
    Err(QueryError::denied(format_args!(
        "{} {} may not list the orders of merchant {merchant}",
        caller.role().as_str(),
        caller.subject()
    )))
}

pub fn may_search(caller: &Caller) -> Result<(), QueryError> {
    if sees_everything(caller) {
        return Ok(());
    }
    Err(QueryError::denied(format_args!(
        "SearchOrders is for role ops or admin, not {}",
        caller.role().as_str()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, sub: &str) -> Caller {
        Caller::new(role, sub).unwrap()
    }

    fn parties() -> OrderParties {
        OrderParties {
            buyer: BuyerId::new(42).unwrap(),
            merchant: MerchantId::new(7).unwrap(),
            rider: Some(RiderId::new(3).unwrap()),
        }
    }

    #[test]
    fn an_order_is_read_by_its_parties_and_ops() {
        for (role, sub) in [
            (Role::Buyer, "42"),
            (Role::Merchant, "7"),
            (Role::Rider, "3"),
            (Role::Ops, "alice"),
            (Role::Admin, "root"),
        ] {
            assert!(
                may_read_order(&caller(role, sub), parties()).is_ok(),
                "{role:?}"
            );
        }
    }

    #[test]
    fn strangers_may_not_read_an_order() {
        for (role, sub) in [
            (Role::Buyer, "43"),
            (Role::Merchant, "8"),
            (Role::Rider, "4"),
            (Role::Service, "payments"),
        ] {
            let err = may_read_order(&caller(role, sub), parties()).unwrap_err();
            assert!(matches!(err, QueryError::PermissionDenied(_)), "{role:?}");
        }
        let unassigned = OrderParties {
            rider: None,
            ..parties()
        };
        assert!(may_read_order(&caller(Role::Rider, "3"), unassigned).is_err());
    }

    #[test]
    fn lists_are_for_their_owner_and_ops() {
        let (b, m) = (BuyerId::new(42).unwrap(), MerchantId::new(7).unwrap());
        assert!(may_list_buyer(&caller(Role::Buyer, "42"), b).is_ok());
        assert!(may_list_buyer(&caller(Role::Buyer, "43"), b).is_err());
        assert!(may_list_buyer(&caller(Role::Merchant, "42"), b).is_err());
        assert!(may_list_seller(&caller(Role::Merchant, "7"), m).is_ok());
        assert!(may_list_seller(&caller(Role::Merchant, "8"), m).is_err());
        assert!(may_list_seller(&caller(Role::Ops, "alice"), m).is_ok());
        assert!(may_search(&caller(Role::Admin, "root")).is_ok());
        assert!(may_search(&caller(Role::Buyer, "42")).is_err());
    }
}
