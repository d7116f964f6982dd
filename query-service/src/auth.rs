//! Who may read what (issue 4 §2), as pure functions over the authenticated [`Caller`].
//!
//! - an order (`GetOrder`, `IsCreated`, `WatchOrder`, `GetOrderHistory`, `GetOrderAsOf`):
//!   its buyer, its merchant, the rider carrying it, ops and admin. Who owns an order is known
//!   once it is read, so these check after the read ([`may_read_order`]) and a refused caller
//!   learns nothing but the refusal;
//! - `ListBuyerOrders`: the buyer itself, ops, admin;
//! - `ListSellerOrders`: the merchant itself, ops, admin;
//! - `SearchOrders`: ops and admin (it spans every buyer and merchant);
//! - `GetStock`, `ListReservations`: the merchant owning the sku, ops, admin. The whole ledger
//!   (reserved, deducted, who holds what) is the merchant's business; buyers see a dish's
//!   availability through `GetMenu`, which any signed-in caller may browse
//!   ([`may_browse`], with `ListMerchantsNearby`);
//! - `NearbyRiders`: ops and admin anywhere; a merchant around its own shop only (where its
//!   orders are picked up) — rider positions are personal data;
//! - `ListOffers`, `WatchOffers`: the rider itself, ops, admin.
//!
//! No token or a bad one is UNAUTHENTICATED; the wrong role or owner is PERMISSION_DENIED.

use orderflow_domain::{BuyerId, MerchantId, RiderId, Role, Timestamp};
use orderflow_infra::auth::{AuthError, Caller, JwtAuth};
use orderflow_projections::stock::StockRow;
use orderflow_proto::convert::SearchCenter;

use crate::error::QueryError;
use crate::tokens::TokenCache;

/// The metadata key of the bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// The caller of a request from its `authorization: Bearer <jwt>` metadata, at `now`: a
/// token seen before is answered from `tokens` until it expires (see [`crate::tokens`]).
pub fn authenticate(
    auth: &JwtAuth,
    tokens: &TokenCache,
    metadata: &tonic::metadata::MetadataMap,
    now: Timestamp,
) -> Result<Caller, QueryError> {
    let value = metadata.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    Ok(tokens.verify_at(auth, value, now)?)
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

/// Whether `caller` may read the ledger and reservations of the sku `row` is of.
pub fn may_read_stock(caller: &Caller, row: &StockRow) -> Result<(), QueryError> {
    if sees_everything(caller) || caller.merchant_id() == Some(row.merchant) {
        return Ok(());
    }
    Err(QueryError::denied(format_args!(
        "{} {} may not read the stock of sku {}",
        caller.role().as_str(),
        caller.subject(),
        row.sku
    )))
}

/// The catalog (merchants, menus) is what a buyer browses: any signed-in caller.
pub fn may_browse(_caller: &Caller) -> Result<(), QueryError> {
    Ok(())
}

pub fn may_find_riders(caller: &Caller, center: SearchCenter) -> Result<(), QueryError> {
    let own_shop = matches!(center, SearchCenter::Merchant(m) if caller.merchant_id() == Some(m));
    if sees_everything(caller) || own_shop {
        return Ok(());
    }
    Err(QueryError::denied(format_args!(
        "NearbyRiders is for ops, admin, or a merchant around its own shop, not {} {}",
        caller.role().as_str(),
        caller.subject()
    )))
}

pub fn may_read_offers(caller: &Caller, rider: RiderId) -> Result<(), QueryError> {
    if sees_everything(caller) || caller.rider_id() == Some(rider) {
        return Ok(());
    }
    Err(QueryError::denied(format_args!(
        "{} {} may not read the offers of rider {rider}",
        caller.role().as_str(),
        caller.subject()
    )))
}

/// Whether a menu shows `caller` the delisted dishes of `merchant` too.
pub fn sees_all_dishes(caller: &Caller, merchant: MerchantId) -> bool {
    sees_everything(caller) || caller.merchant_id() == Some(merchant)
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
    fn stock_is_for_the_skus_merchant_and_ops() {
        let row = StockRow {
            sku: orderflow_domain::SkuId::parse("latte").unwrap(),
            merchant: MerchantId::new(7).unwrap(),
            name: orderflow_domain::Name::parse("Latte").unwrap(),
            price: orderflow_domain::Money::parse("CNY", 1800).unwrap(),
            listed: true,
            added: 1,
            available: 1,
            reserved: 0,
            deducted: 0,
            released: 0,
            version: 2,
        };
        assert!(may_read_stock(&caller(Role::Merchant, "7"), &row).is_ok());
        assert!(may_read_stock(&caller(Role::Ops, "alice"), &row).is_ok());
        assert!(may_read_stock(&caller(Role::Admin, "root"), &row).is_ok());
        for (role, sub) in [
            (Role::Merchant, "8"),
            (Role::Buyer, "7"),
            (Role::Rider, "7"),
            (Role::Service, "payments"),
        ] {
            let err = may_read_stock(&caller(role, sub), &row).unwrap_err();
            assert!(matches!(err, QueryError::PermissionDenied(_)), "{role:?}");
        }
        let m = MerchantId::new(7).unwrap();
        assert!(sees_all_dishes(&caller(Role::Merchant, "7"), m));
        assert!(!sees_all_dishes(&caller(Role::Merchant, "8"), m));
        assert!(!sees_all_dishes(&caller(Role::Buyer, "1"), m));
    }

    #[test]
    fn riders_are_found_by_ops_or_around_ones_own_shop() {
        let m7 = SearchCenter::Merchant(MerchantId::new(7).unwrap());
        let point = SearchCenter::Point(orderflow_domain::GeoPoint::new(31.2, 121.4).unwrap());
        assert!(may_find_riders(&caller(Role::Ops, "alice"), point).is_ok());
        assert!(may_find_riders(&caller(Role::Merchant, "7"), m7).is_ok());
        assert!(may_find_riders(&caller(Role::Merchant, "7"), point).is_err());
        assert!(may_find_riders(&caller(Role::Merchant, "8"), m7).is_err());
        assert!(may_find_riders(&caller(Role::Buyer, "7"), m7).is_err());
        let r3 = RiderId::new(3).unwrap();
        assert!(may_read_offers(&caller(Role::Rider, "3"), r3).is_ok());
        assert!(may_read_offers(&caller(Role::Admin, "root"), r3).is_ok());
        assert!(may_read_offers(&caller(Role::Rider, "4"), r3).is_err());
        assert!(may_read_offers(&caller(Role::Buyer, "3"), r3).is_err());
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
