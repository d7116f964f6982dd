//! The QueryService requests of the stock, catalog and rider views (beside [`super::query`],
//! which holds the order queries): validated structs, each bad field an `INVALID_ARGUMENT`
//! naming it. Page and consistency tokens stay opaque strings here.

use orderflow_domain::sku::ReservationState;
use orderflow_domain::{GeoPoint, MerchantId, RiderId, SkuId};

use super::field::{FieldError, FieldResult};
use super::query::{PageSize, MAX_RADIUS_M};
use super::values::required_geo_point;
use crate::v1 as pb;

/// `GetStock`: one sku's ledger, optionally after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStock {
    pub sku: SkuId,
    pub consistency_token: String,
}

impl TryFrom<&pb::GetStockRequest> for GetStock {
    type Error = FieldError;
    fn try_from(r: &pb::GetStockRequest) -> Result<Self, FieldError> {
        Ok(GetStock {
            sku: SkuId::parse(r.sku_id.as_str()).field("sku_id")?,
            consistency_token: r.consistency_token.clone(),
        })
    }
}

/// `ListReservations`: one sku's reservations, all or in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListReservations {
    pub sku: SkuId,
    /// `None`: every state (the proto's UNSPECIFIED).
    pub state: Option<ReservationState>,
    pub page_size: PageSize,
    pub page_token: String,
}

impl TryFrom<&pb::ListReservationsRequest> for ListReservations {
    type Error = FieldError;
    fn try_from(r: &pb::ListReservationsRequest) -> Result<Self, FieldError> {
        let sku = SkuId::parse(r.sku_id.as_str()).field("sku_id")?;
        let state = match pb::ReservationState::try_from(r.state) {
            Ok(pb::ReservationState::Unspecified) => None,
            Ok(pb::ReservationState::Reserved) => Some(ReservationState::Reserved),
            Ok(pb::ReservationState::Deducted) => Some(ReservationState::Deducted),
            Ok(pb::ReservationState::Released) => Some(ReservationState::Released),
            Err(_) => {
                return Err(FieldError::new(
                    "state",
                    format_args!("must be a known reservation state, got {}", r.state),
                ))
            }
        };
        Ok(ListReservations {
            sku,
            state,
            page_size: PageSize::parse(r.page_size, "page_size")?,
            page_token: r.page_token.clone(),
        })
    }
}

/// `ListMerchantsNearby`: merchants within `radius_m` of a point, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ListMerchantsNearby {
    pub location: GeoPoint,
    /// 1..=50,000 metres.
    pub radius_m: u32,
    pub page_size: PageSize,
    pub page_token: String,
}

impl TryFrom<&pb::ListMerchantsNearbyRequest> for ListMerchantsNearby {
    type Error = FieldError;
    fn try_from(r: &pb::ListMerchantsNearbyRequest) -> Result<Self, FieldError> {
        let location = required_geo_point(&r.location, "location")?;
        if !(1..=MAX_RADIUS_M).contains(&r.radius_m) {
            return Err(FieldError::new(
                "radius_m",
                format_args!("must be 1..={MAX_RADIUS_M}, got {}", r.radius_m),
            ));
        }
        Ok(ListMerchantsNearby {
            location,
            radius_m: r.radius_m.unsigned_abs(),
            page_size: PageSize::parse(r.page_size, "page_size")?,
            page_token: r.page_token.clone(),
        })
    }
}

/// `GetMenu`: one merchant's dishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetMenu {
    pub merchant: MerchantId,
}

impl TryFrom<&pb::GetMenuRequest> for GetMenu {
    type Error = FieldError;
    fn try_from(r: &pb::GetMenuRequest) -> Result<Self, FieldError> {
        Ok(GetMenu {
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
        })
    }
}

/// `ListOffers` / `WatchOffers`: one rider's open offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffers {
    pub rider: RiderId,
}

impl TryFrom<&pb::ListOffersRequest> for ListOffers {
    type Error = FieldError;
    fn try_from(r: &pb::ListOffersRequest) -> Result<Self, FieldError> {
        Ok(ListOffers {
            rider: RiderId::new(r.rider_id).field("rider_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_stock_names_a_bad_sku() {
        let ok = GetStock::try_from(&pb::GetStockRequest {
            sku_id: "latte_L-2".into(),
            consistency_token: "t".into(),
        })
        .unwrap();
        assert_eq!(
            (ok.sku.as_str(), ok.consistency_token.as_str()),
            ("latte_L-2", "t")
        );
        let err = GetStock::try_from(&pb::GetStockRequest {
            sku_id: "no spaces".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "sku_id");
    }

    #[test]
    fn list_reservations_reads_the_state_filter() {
        let request = |state: i32| pb::ListReservationsRequest {
            sku_id: "latte".into(),
            state,
            page_size: 0,
            page_token: String::new(),
        };
        assert_eq!(ListReservations::try_from(&request(0)).unwrap().state, None);
        assert_eq!(
            ListReservations::try_from(&request(2)).unwrap().state,
            Some(ReservationState::Deducted)
        );
        assert_eq!(
            ListReservations::try_from(&request(9)).unwrap_err().field,
            "state"
        );
        let too_big = pb::ListReservationsRequest {
            page_size: 101,
            ..request(0)
        };
        assert_eq!(
            ListReservations::try_from(&too_big).unwrap_err().field,
            "page_size"
        );
    }

    #[test]
    fn merchants_nearby_needs_a_point_and_a_radius() {
        let request = pb::ListMerchantsNearbyRequest {
            location: Some(pb::GeoPoint {
                lat: 31.23,
                lng: 121.47,
            }),
            radius_m: 3000,
            page_size: 10,
            page_token: String::new(),
        };
        let q = ListMerchantsNearby::try_from(&request).unwrap();
        assert_eq!((q.radius_m, q.page_size.get()), (3000, 10));
        let no_point = pb::ListMerchantsNearbyRequest {
            location: None,
            ..request.clone()
        };
        assert_eq!(
            ListMerchantsNearby::try_from(&no_point).unwrap_err().field,
            "location"
        );
        let far = pb::ListMerchantsNearbyRequest {
            radius_m: 50_001,
            ..request
        };
        assert_eq!(
            ListMerchantsNearby::try_from(&far).unwrap_err().field,
            "radius_m"
        );
    }

    #[test]
    fn ids_must_be_positive() {
        assert_eq!(
            GetMenu::try_from(&pb::GetMenuRequest { merchant_id: 0 })
                .unwrap_err()
                .field,
            "merchant_id"
        );
        assert_eq!(
            ListOffers::try_from(&pb::ListOffersRequest { rider_id: -1 })
                .unwrap_err()
                .field,
            "rider_id"
        );
    }
}
