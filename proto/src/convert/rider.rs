//! Rider requests: online, location, offline, and the life of an order it carries.

use orderflow_domain::{Capacity, GeoPoint, OfferId, OrderNo, RiderId};

use super::field::{FieldError, FieldResult};
use super::request_id::RequestId;
use super::values::{order_no, request_id, required_geo_point};
use crate::v1 as pb;

#[derive(Debug, Clone, PartialEq)]
pub struct GoOnline {
    pub request_id: RequestId,
    pub rider: RiderId,
    pub location: GeoPoint,
    /// 1..=10 orders carried at once.
    pub capacity: Capacity,
}

impl TryFrom<&pb::GoOnlineRequest> for GoOnline {
    type Error = FieldError;
    fn try_from(r: &pb::GoOnlineRequest) -> Result<Self, FieldError> {
        Ok(GoOnline {
            request_id: request_id(&r.request_id)?,
            rider: RiderId::new(r.rider_id).field("rider_id")?,
            location: required_geo_point(&r.location, "location")?,
            capacity: Capacity::new(i64::from(r.capacity)).field("capacity")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportLocation {
    pub request_id: RequestId,
    pub rider: RiderId,
    pub location: GeoPoint,
}

impl TryFrom<&pb::ReportLocationRequest> for ReportLocation {
    type Error = FieldError;
    fn try_from(r: &pb::ReportLocationRequest) -> Result<Self, FieldError> {
        Ok(ReportLocation {
            request_id: request_id(&r.request_id)?,
            rider: RiderId::new(r.rider_id).field("rider_id")?,
            location: required_geo_point(&r.location, "location")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoOffline {
    pub request_id: RequestId,
    pub rider: RiderId,
}

impl TryFrom<&pb::GoOfflineRequest> for GoOffline {
    type Error = FieldError;
    fn try_from(r: &pb::GoOfflineRequest) -> Result<Self, FieldError> {
        Ok(GoOffline {
            request_id: request_id(&r.request_id)?,
            rider: RiderId::new(r.rider_id).field("rider_id")?,
        })
    }
}

/// A grab must present the offer id the rider received: the fencing token of the round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrabOrder {
    pub request_id: RequestId,
    pub rider: RiderId,
    pub order_no: OrderNo,
    pub offer_id: OfferId,
}

impl TryFrom<&pb::GrabOrderRequest> for GrabOrder {
    type Error = FieldError;
    fn try_from(r: &pb::GrabOrderRequest) -> Result<Self, FieldError> {
        Ok(GrabOrder {
            request_id: request_id(&r.request_id)?,
            rider: RiderId::new(r.rider_id).field("rider_id")?,
            order_no: order_no(&r.order_no, "order_no")?,
            offer_id: OfferId::parse(r.offer_id.as_str()).field("offer_id")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickUp {
    pub request_id: RequestId,
    pub rider: RiderId,
    pub order_no: OrderNo,
}

impl TryFrom<&pb::PickUpRequest> for PickUp {
    type Error = FieldError;
    fn try_from(r: &pb::PickUpRequest) -> Result<Self, FieldError> {
        Ok(PickUp {
            request_id: request_id(&r.request_id)?,
            rider: RiderId::new(r.rider_id).field("rider_id")?,
            order_no: order_no(&r.order_no, "order_no")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmDelivery {
    pub request_id: RequestId,
    pub rider: RiderId,
    pub order_no: OrderNo,
}

impl TryFrom<&pb::ConfirmDeliveryRequest> for ConfirmDelivery {
    type Error = FieldError;
    fn try_from(r: &pb::ConfirmDeliveryRequest) -> Result<Self, FieldError> {
        Ok(ConfirmDelivery {
            request_id: request_id(&r.request_id)?,
            rider: RiderId::new(r.rider_id).field("rider_id")?,
            order_no: order_no(&r.order_no, "order_no")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER_NO: &str = "2026112207171234500004217";

    fn here() -> Option<pb::GeoPoint> {
        Some(pb::GeoPoint {
            lat: 31.24,
            lng: 121.49,
        })
    }

    fn online() -> pb::GoOnlineRequest {
        pb::GoOnlineRequest {
            request_id: "on-1".into(),
            rider_id: 42,
            location: here(),
            capacity: 3,
        }
    }

    fn grab() -> pb::GrabOrderRequest {
        pb::GrabOrderRequest {
            request_id: "grab-1".into(),
            rider_id: 42,
            order_no: ORDER_NO.into(),
            offer_id: "offer-1".into(),
        }
    }

    #[test]
    fn go_online_round_trip() {
        let g = GoOnline::try_from(&online()).unwrap();
        assert_eq!((g.rider.get(), g.capacity.get()), (42, 3));
        assert_eq!(Some(pb::GeoPoint::from(g.location)), here());
        assert_eq!(g.request_id.as_str(), "on-1");
    }

    #[test]
    fn go_online_capacity_must_be_1_to_10() {
        for bad in [0, 11, -1] {
            let mut r = online();
            r.capacity = bad;
            let e = GoOnline::try_from(&r).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("capacity: capacity must be 1..=10, got {bad}")
            );
        }
    }

    #[test]
    fn go_online_names_rider_and_location() {
        let mut r = online();
        r.rider_id = 0;
        assert_eq!(GoOnline::try_from(&r).unwrap_err().field, "rider_id");
        let mut r = online();
        r.location = None;
        assert_eq!(GoOnline::try_from(&r).unwrap_err().field, "location");
        let mut r = online();
        r.location = Some(pb::GeoPoint {
            lat: 0.0,
            lng: -180.5,
        });
        assert_eq!(GoOnline::try_from(&r).unwrap_err().field, "location.lng");
    }

    #[test]
    fn report_location_round_trip_and_bad_fields() {
        let r = pb::ReportLocationRequest {
            request_id: "loc-1".into(),
            rider_id: 42,
            location: here(),
        };
        let l = ReportLocation::try_from(&r).unwrap();
        assert_eq!(
            (l.rider.get(), Some(pb::GeoPoint::from(l.location))),
            (42, here())
        );
        let mut bad = r.clone();
        bad.location = Some(pb::GeoPoint {
            lat: f64::INFINITY,
            lng: 0.0,
        });
        assert_eq!(
            ReportLocation::try_from(&bad).unwrap_err().field,
            "location.lat"
        );
        let mut bad = r;
        bad.request_id = "\u{0}".into();
        assert_eq!(
            ReportLocation::try_from(&bad).unwrap_err().field,
            "request_id"
        );
    }

    #[test]
    fn go_offline_round_trip_and_bad_fields() {
        let r = pb::GoOfflineRequest {
            request_id: "off-1".into(),
            rider_id: 42,
        };
        assert_eq!(GoOffline::try_from(&r).unwrap().rider.get(), 42);
        let bad = pb::GoOfflineRequest { rider_id: -42, ..r };
        assert_eq!(GoOffline::try_from(&bad).unwrap_err().field, "rider_id");
    }

    #[test]
    fn grab_order_round_trip() {
        let g = GrabOrder::try_from(&grab()).unwrap();
        assert_eq!(
            (g.rider.get(), g.order_no.as_str(), g.offer_id.as_str()),
            (42, ORDER_NO, "offer-1")
        );
    }

    #[test]
    fn grab_order_needs_an_offer_id_and_an_order_number() {
        let mut r = grab();
        r.offer_id.clear();
        assert_eq!(
            GrabOrder::try_from(&r).unwrap_err().to_string(),
            "offer_id: offer_id must be 1..=64 characters, got 0"
        );
        let mut r = grab();
        r.order_no = "not-a-number".into();
        assert_eq!(GrabOrder::try_from(&r).unwrap_err().field, "order_no");
    }

    #[test]
    fn pick_up_and_confirm_delivery_round_trip_and_bad_fields() {
        let p = pb::PickUpRequest {
            request_id: "pick-1".into(),
            rider_id: 42,
            order_no: ORDER_NO.into(),
        };
        let parsed = PickUp::try_from(&p).unwrap();
        assert_eq!(
            (parsed.rider.get(), parsed.order_no.as_str()),
            (42, ORDER_NO)
        );
        let bad = pb::PickUpRequest {
            order_no: String::new(),
            ..p
        };
        assert_eq!(PickUp::try_from(&bad).unwrap_err().field, "order_no");

        let d = pb::ConfirmDeliveryRequest {
            request_id: "drop-1".into(),
            rider_id: 42,
            order_no: ORDER_NO.into(),
        };
        let parsed = ConfirmDelivery::try_from(&d).unwrap();
        assert_eq!(
            (parsed.request_id.as_str(), parsed.order_no.as_str()),
            ("drop-1", ORDER_NO)
        );
        let bad = pb::ConfirmDeliveryRequest { rider_id: 0, ..d };
        assert_eq!(
            ConfirmDelivery::try_from(&bad).unwrap_err().field,
            "rider_id"
        );
    }
}
