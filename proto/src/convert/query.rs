//! QueryService requests whose fields have simple ranges, so the read side validates them the
//! same way the write side does. Page and consistency tokens stay opaque strings here: only
//! the query service can read them.

use std::time::Duration;

use orderflow_domain::order::OrderStatus;
use orderflow_domain::{BuyerId, GeoPoint, MerchantId, OrderNo, Timestamp};

use super::field::{FieldError, FieldResult};
use super::values::{geo_point, order_no, order_status, timestamp};
use crate::v1 as pb;

/// The longest an `IsCreated` long-poll may wait.
pub const MAX_WAIT_MS: u32 = 30_000;

/// Seed 001's is-created, long-polled for at most `wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsCreated {
    pub order_no: OrderNo,
    /// 0..=30 s; zero answers at once.
    pub wait: Duration,
}

impl TryFrom<&pb::IsCreatedRequest> for IsCreated {
    type Error = FieldError;
    fn try_from(r: &pb::IsCreatedRequest) -> Result<Self, FieldError> {
        let order_no = order_no(&r.order_no, "order_no")?;
        if r.wait_ms > MAX_WAIT_MS {
            return Err(FieldError::new(
                "wait_ms",
                format_args!("must be 0..={MAX_WAIT_MS}, got {}", r.wait_ms),
            ));
        }
        Ok(IsCreated {
            order_no,
            wait: Duration::from_millis(u64::from(r.wait_ms)),
        })
    }
}

/// How many rows one page holds: 1..=100, and 20 when the client leaves it at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageSize(u8);

impl PageSize {
    pub const DEFAULT: PageSize = PageSize(20);
    pub const MAX: u8 = 100;

    /// `field` is the request's name for it (`page_size`).
    pub fn parse(n: i32, field: &str) -> Result<Self, FieldError> {
        match n {
            0 => Ok(PageSize::DEFAULT),
            // In 1..=100, so it fits a u8.
            1..=100 => Ok(PageSize(n as u8)),
            _ => Err(FieldError::new(
                field,
                format_args!("must be 1..={} (0 means 20), got {n}", PageSize::MAX),
            )),
        }
    }

    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// The status filter of a list query: empty means every status.
fn statuses(numbers: &[i32]) -> Result<Vec<OrderStatus>, FieldError> {
    numbers
        .iter()
        .enumerate()
        .map(|(i, &n)| order_status(n, &format!("statuses[{i}]")))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListBuyerOrders {
    pub buyer: BuyerId,
    pub page_size: PageSize,
    pub page_token: String,
    pub statuses: Vec<OrderStatus>,
    pub consistency_token: String,
}

impl TryFrom<&pb::ListBuyerOrdersRequest> for ListBuyerOrders {
    type Error = FieldError;
    fn try_from(r: &pb::ListBuyerOrdersRequest) -> Result<Self, FieldError> {
        Ok(ListBuyerOrders {
            buyer: BuyerId::new(r.buyer_id).field("buyer_id")?,
            page_size: PageSize::parse(r.page_size, "page_size")?,
            page_token: r.page_token.clone(),
            statuses: statuses(&r.statuses)?,
            consistency_token: r.consistency_token.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSellerOrders {
    pub merchant: MerchantId,
    pub page_size: PageSize,
    pub page_token: String,
    pub statuses: Vec<OrderStatus>,
    pub consistency_token: String,
}

impl TryFrom<&pb::ListSellerOrdersRequest> for ListSellerOrders {
    type Error = FieldError;
    fn try_from(r: &pb::ListSellerOrdersRequest) -> Result<Self, FieldError> {
        Ok(ListSellerOrders {
            merchant: MerchantId::new(r.merchant_id).field("merchant_id")?,
            page_size: PageSize::parse(r.page_size, "page_size")?,
            page_token: r.page_token.clone(),
            statuses: statuses(&r.statuses)?,
            consistency_token: r.consistency_token.clone(),
        })
    }
}

/// `GetOrder`: one order, optionally after a write (`consistency_token`, opaque here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOrder {
    pub order_no: OrderNo,
    pub consistency_token: String,
}

impl TryFrom<&pb::GetOrderRequest> for GetOrder {
    type Error = FieldError;
    fn try_from(r: &pb::GetOrderRequest) -> Result<Self, FieldError> {
        Ok(GetOrder {
            order_no: order_no(&r.order_no, "order_no")?,
            consistency_token: r.consistency_token.clone(),
        })
    }
}

/// `WatchOrder`: the status changes of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOrder {
    pub order_no: OrderNo,
}

impl TryFrom<&pb::WatchOrderRequest> for WatchOrder {
    type Error = FieldError;
    fn try_from(r: &pb::WatchOrderRequest) -> Result<Self, FieldError> {
        Ok(WatchOrder {
            order_no: order_no(&r.order_no, "order_no")?,
        })
    }
}

/// Longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// `SearchOrders`: full text over dish names, merchant name, address and order number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOrders {
    /// 1..=200 characters, not only spaces.
    pub query: String,
    pub page_size: PageSize,
    pub page_token: String,
}

impl TryFrom<&pb::SearchOrdersRequest> for SearchOrders {
    type Error = FieldError;
    fn try_from(r: &pb::SearchOrdersRequest) -> Result<Self, FieldError> {
        let chars = r.query.chars().count();
        if r.query.trim().is_empty() || chars > MAX_SEARCH_CHARS {
            return Err(FieldError::new(
                "query",
                format_args!(
                    "must be 1..={MAX_SEARCH_CHARS} characters and not blank, got {chars}"
                ),
            ));
        }
        if r.query.chars().any(char::is_control) {
            return Err(FieldError::new("query", "must not hold control characters"));
        }
        Ok(SearchOrders {
            query: r.query.clone(),
            page_size: PageSize::parse(r.page_size, "page_size")?,
            page_token: r.page_token.clone(),
        })
    }
}

/// `GetOrderHistory`: every event of an order's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOrderHistory {
    pub order_no: OrderNo,
}

impl TryFrom<&pb::GetOrderHistoryRequest> for GetOrderHistory {
    type Error = FieldError;
    fn try_from(r: &pb::GetOrderHistoryRequest) -> Result<Self, FieldError> {
        Ok(GetOrderHistory {
            order_no: order_no(&r.order_no, "order_no")?,
        })
    }
}

/// `GetOrderAsOf`: the order as its events up to `as_of` left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOrderAsOf {
    pub order_no: OrderNo,
    pub as_of: Timestamp,
}

impl TryFrom<&pb::GetOrderAsOfRequest> for GetOrderAsOf {
    type Error = FieldError;
    fn try_from(r: &pb::GetOrderAsOfRequest) -> Result<Self, FieldError> {
        let order_no = order_no(&r.order_no, "order_no")?;
        let as_of = r
            .as_of
            .as_ref()
            .ok_or_else(|| FieldError::required("as_of"))?;
        Ok(GetOrderAsOf {
            order_no,
            as_of: timestamp(as_of, "as_of")?,
        })
    }
}

/// Where a nearby-riders search is centred.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchCenter {
    Merchant(MerchantId),
    Point(GeoPoint),
}

/// Bounds of a nearby-riders search.
pub const MAX_RADIUS_M: i32 = 50_000;
pub const MAX_RIDERS: i32 = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearbyRiders {
    pub center: SearchCenter,
    /// 1..=50,000 metres.
    pub radius_m: u32,
    /// 1..=200 riders, nearest first.
    pub limit: u32,
}

impl TryFrom<&pb::NearbyRidersRequest> for NearbyRiders {
    type Error = FieldError;
    fn try_from(r: &pb::NearbyRidersRequest) -> Result<Self, FieldError> {
        use pb::nearby_riders_request::Center;
        // A oneof has no field of its own on the wire; its name is the clearest path.
        let center = match &r.center {
            None => {
                return Err(FieldError::new(
                    "center",
                    "one of merchant_id or location is required",
                ))
            }
            Some(Center::MerchantId(id)) => {
                SearchCenter::Merchant(MerchantId::new(*id).field("merchant_id")?)
            }
            Some(Center::Location(p)) => SearchCenter::Point(geo_point(p, "location")?),
        };
        Ok(NearbyRiders {
            center,
            radius_m: bounded(r.radius_m, "radius_m", MAX_RADIUS_M)?,
            limit: bounded(r.limit, "limit", MAX_RIDERS)?,
        })
    }
}

/// `1..=max`, as the unsigned count it is.
fn bounded(n: i32, field: &str, max: i32) -> Result<u32, FieldError> {
    if (1..=max).contains(&n) {
        // Positive, so the conversion is lossless.
        Ok(n.unsigned_abs())
    } else {
        Err(FieldError::new(
            field,
            format_args!("must be 1..={max}, got {n}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER_NO: &str = "2026112207171234500004217";

    #[test]
    fn is_created_round_trip_and_wait_bounds() {
        let r = pb::IsCreatedRequest {
            order_no: ORDER_NO.into(),
            wait_ms: MAX_WAIT_MS,
        };
        let q = IsCreated::try_from(&r).unwrap();
        assert_eq!(
            (q.order_no.as_str(), q.wait),
            (ORDER_NO, Duration::from_secs(30))
        );
        let zero = pb::IsCreatedRequest {
            wait_ms: 0,
            ..r.clone()
        };
        assert_eq!(IsCreated::try_from(&zero).unwrap().wait, Duration::ZERO);
        let long = pb::IsCreatedRequest {
            wait_ms: 30_001,
            ..r.clone()
        };
        assert_eq!(
            IsCreated::try_from(&long).unwrap_err().to_string(),
            "wait_ms: must be 0..=30000, got 30001"
        );
        let bad = pb::IsCreatedRequest {
            order_no: "x".into(),
            ..r
        };
        assert_eq!(IsCreated::try_from(&bad).unwrap_err().field, "order_no");
    }

    #[test]
    fn page_size_defaults_to_20_and_stays_within_1_to_100() {
        assert_eq!(PageSize::parse(0, "page_size").unwrap().get(), 20);
        assert_eq!(PageSize::parse(1, "page_size").unwrap().get(), 1);
        assert_eq!(PageSize::parse(100, "page_size").unwrap().get(), 100);
        assert_eq!(
            PageSize::parse(101, "page_size").unwrap_err().field,
            "page_size"
        );
        assert!(PageSize::parse(-1, "page_size").is_err());
    }

    #[test]
    fn list_buyer_orders_round_trip_and_bad_fields() {
        let r = pb::ListBuyerOrdersRequest {
            buyer_id: 17,
            page_size: 0,
            page_token: "opaque".into(),
            statuses: vec![2, 4],
            consistency_token: "tok".into(),
        };
        let q = ListBuyerOrders::try_from(&r).unwrap();
        assert_eq!(q.buyer.get(), 17);
        assert_eq!(q.page_size, PageSize::DEFAULT);
        assert_eq!(q.statuses, [OrderStatus::Created, OrderStatus::Paid]);
        assert_eq!(
            (q.page_token.as_str(), q.consistency_token.as_str()),
            ("opaque", "tok")
        );
        let bad = pb::ListBuyerOrdersRequest {
            statuses: vec![2, 0],
            ..r.clone()
        };
        assert_eq!(
            ListBuyerOrders::try_from(&bad).unwrap_err().field,
            "statuses[1]"
        );
        let bad = pb::ListBuyerOrdersRequest {
            buyer_id: 0,
            ..r.clone()
        };
        assert_eq!(
            ListBuyerOrders::try_from(&bad).unwrap_err().field,
            "buyer_id"
        );
        let bad = pb::ListBuyerOrdersRequest {
            page_size: 500,
            ..r
        };
        assert_eq!(
            ListBuyerOrders::try_from(&bad).unwrap_err().field,
            "page_size"
        );
    }

    #[test]
    fn list_seller_orders_round_trip_and_bad_fields() {
        let r = pb::ListSellerOrdersRequest {
            merchant_id: 7,
            page_size: 50,
            page_token: String::new(),
            statuses: vec![],
            consistency_token: String::new(),
        };
        let q = ListSellerOrders::try_from(&r).unwrap();
        assert_eq!(
            (q.merchant.get(), q.page_size.get(), q.statuses.len()),
            (7, 50, 0)
        );
        let bad = pb::ListSellerOrdersRequest {
            merchant_id: -7,
            ..r.clone()
        };
        assert_eq!(
            ListSellerOrders::try_from(&bad).unwrap_err().field,
            "merchant_id"
        );
        let bad = pb::ListSellerOrdersRequest {
            statuses: vec![99],
            ..r
        };
        assert_eq!(
            ListSellerOrders::try_from(&bad).unwrap_err().field,
            "statuses[0]"
        );
    }

    #[test]
    fn order_requests_need_a_valid_order_no() {
        let q = GetOrder::try_from(&pb::GetOrderRequest {
            order_no: ORDER_NO.into(),
            consistency_token: "v1.1.2".into(),
        })
        .unwrap();
        assert_eq!(
            (q.order_no.as_str(), q.consistency_token.as_str()),
            (ORDER_NO, "v1.1.2")
        );
        let bad = pb::GetOrderRequest {
            order_no: "nope".into(),
            consistency_token: String::new(),
        };
        assert_eq!(GetOrder::try_from(&bad).unwrap_err().field, "order_no");
        let bad = pb::WatchOrderRequest {
            order_no: String::new(),
        };
        assert_eq!(WatchOrder::try_from(&bad).unwrap_err().field, "order_no");
        let bad = pb::GetOrderHistoryRequest {
            order_no: "1".into(),
        };
        assert_eq!(
            GetOrderHistory::try_from(&bad).unwrap_err().field,
            "order_no"
        );
    }

    #[test]
    fn as_of_is_required() {
        let r = pb::GetOrderAsOfRequest {
            order_no: ORDER_NO.into(),
            as_of: Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 0,
            }),
        };
        assert_eq!(GetOrderAsOf::try_from(&r).unwrap().as_of.as_millis(), 5_000);
        let missing = pb::GetOrderAsOfRequest { as_of: None, ..r };
        assert_eq!(
            GetOrderAsOf::try_from(&missing).unwrap_err().to_string(),
            "as_of: is required"
        );
    }

    #[test]
    fn search_text_is_bounded_and_not_blank() {
        let r = pb::SearchOrdersRequest {
            query: "beef noodles".into(),
            page_size: 0,
            page_token: String::new(),
        };
        let q = SearchOrders::try_from(&r).unwrap();
        assert_eq!(
            (q.query.as_str(), q.page_size),
            ("beef noodles", PageSize::DEFAULT)
        );
        for bad in ["", "   ", &"x".repeat(201), "a\u{0}b"] {
            let r = pb::SearchOrdersRequest {
                query: bad.into(),
                ..r.clone()
            };
            assert_eq!(
                SearchOrders::try_from(&r).unwrap_err().field,
                "query",
                "{bad:?}"
            );
        }
    }

    fn nearby() -> pb::NearbyRidersRequest {
        pb::NearbyRidersRequest {
            center: Some(pb::nearby_riders_request::Center::MerchantId(7)),
            radius_m: 3_000,
            limit: 5,
        }
    }

    #[test]
    fn nearby_riders_round_trip_for_both_centers() {
        let q = NearbyRiders::try_from(&nearby()).unwrap();
        assert_eq!(
            q.center,
            SearchCenter::Merchant(MerchantId::new(7).unwrap())
        );
        assert_eq!((q.radius_m, q.limit), (3_000, 5));
        let mut r = nearby();
        r.center = Some(pb::nearby_riders_request::Center::Location(pb::GeoPoint {
            lat: 1.0,
            lng: 2.0,
        }));
        let q = NearbyRiders::try_from(&r).unwrap();
        assert_eq!(
            q.center,
            SearchCenter::Point(GeoPoint::new(1.0, 2.0).unwrap())
        );
    }

    #[test]
    fn nearby_riders_needs_a_center_and_bounded_radius_and_limit() {
        let mut r = nearby();
        r.center = None;
        assert_eq!(NearbyRiders::try_from(&r).unwrap_err().field, "center");
        let mut r = nearby();
        r.center = Some(pb::nearby_riders_request::Center::MerchantId(0));
        assert_eq!(NearbyRiders::try_from(&r).unwrap_err().field, "merchant_id");
        let mut r = nearby();
        r.center = Some(pb::nearby_riders_request::Center::Location(pb::GeoPoint {
            lat: 100.0,
            lng: 0.0,
        }));
        assert_eq!(
            NearbyRiders::try_from(&r).unwrap_err().field,
            "location.lat"
        );
        for (radius_m, limit, field) in [
            (0, 5, "radius_m"),
            (50_001, 5, "radius_m"),
            (10, 0, "limit"),
            (10, 201, "limit"),
        ] {
            let r = pb::NearbyRidersRequest {
                radius_m,
                limit,
                ..nearby()
            };
            assert_eq!(NearbyRiders::try_from(&r).unwrap_err().field, field);
        }
        let edge = pb::NearbyRidersRequest {
            radius_m: 50_000,
            limit: 200,
            ..nearby()
        };
        assert!(NearbyRiders::try_from(&edge).is_ok());
    }
}
