//! Proto value messages → domain values, each error naming its field path.
//!
//! Request conversions build on these; the query side may use them directly.

use orderflow_domain::geo::GeoError;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::{
    Address, AddressText, FailureReason, GeoPoint, Money, OrderNo, Role, Timestamp,
};

use super::field::{join, required, FieldError, FieldResult};
use super::request_id::RequestId;
use crate::v1 as pb;

/// Earliest and latest seconds a `google.protobuf.Timestamp` may hold (0001-01-01 and
/// 9999-12-31T23:59:59Z), per its definition.
const MIN_TIMESTAMP_SECS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECS: i64 = 253_402_300_799;

/// Every request's `request_id`.
pub fn request_id(s: &str) -> Result<RequestId, FieldError> {
    RequestId::parse(s).field("request_id")
}

/// An order number field (`order_no`), in the 25-digit form of [`OrderNo`].
pub fn order_no(s: &str, path: &str) -> Result<OrderNo, FieldError> {
    OrderNo::parse(s).field(path)
}

/// A point; an out-of-range coordinate is reported at `{path}.lat` or `{path}.lng`.
pub fn geo_point(p: &pb::GeoPoint, path: &str) -> Result<GeoPoint, FieldError> {
    GeoPoint::new(p.lat, p.lng).map_err(|e| {
        let field = match e {
            GeoError::Lat(_) => join(path, "lat"),
            GeoError::Lng(_) => join(path, "lng"),
            // `GeoPoint::new` checks no text; keep the point's own path should it ever do.
            GeoError::Text(_) => path.to_owned(),
        };
        FieldError::new(field, e)
    })
}

/// A point the contract requires (`location`).
pub fn required_geo_point(p: &Option<pb::GeoPoint>, path: &str) -> Result<GeoPoint, FieldError> {
    geo_point(required(p, path)?, path)
}

/// A required address: `{path}.text` 1..=200 characters, `{path}.location` required and valid.
pub fn address(a: &Option<pb::Address>, path: &str) -> Result<Address, FieldError> {
    let a = required(a, path)?;
    let text = AddressText::parse(a.text.as_str()).field_with(|| join(path, "text"))?;
    let location = required_geo_point(&a.location, &join(path, "location"))?;
    Ok(Address::new(text, location))
}

/// Any amount (any sign) with a valid currency code, at `{path}.currency_code`.
pub fn money(m: &pb::Money, path: &str) -> Result<Money, FieldError> {
    Money::parse(&m.currency_code, m.minor_units).field_with(|| join(path, "currency_code"))
}

/// A required amount that must be > 0 (prices, payments, compensation); a non-positive amount
/// is reported at `{path}.minor_units`.
pub fn positive_money(m: &Option<pb::Money>, path: &str) -> Result<Money, FieldError> {
    let money = money(required(m, path)?, path)?;
    if money.is_positive() {
        Ok(money)
    } else {
        Err(FieldError::new(
            join(path, "minor_units"),
            format_args!("must be > 0, got {}", money.minor_units()),
        ))
    }
}

/// A `google.protobuf.Timestamp`, to the millisecond (finer digits are dropped: the domain
/// keeps milliseconds).
pub fn timestamp(t: &prost_types::Timestamp, path: &str) -> Result<Timestamp, FieldError> {
    if !(MIN_TIMESTAMP_SECS..=MAX_TIMESTAMP_SECS).contains(&t.seconds) {
        return Err(FieldError::new(
            join(path, "seconds"),
            format_args!("must be in years 1..=9999, got {}", t.seconds),
        ));
    }
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(FieldError::new(
            join(path, "nanos"),
            format_args!("must be 0..=999999999, got {}", t.nanos),
        ));
    }
    // In range, so neither the product nor the sum can overflow an i64.
    Ok(Timestamp::from_millis(
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000),
    ))
}

/// An `OrderStatus` number other than UNSPECIFIED (status filters of the list queries).
pub fn order_status(n: i32, path: &str) -> Result<OrderStatus, FieldError> {
    OrderStatus::ALL
        .into_iter()
        .find(|s| s.proto_number() == n)
        .ok_or_else(|| FieldError::new(path, format_args!("must be a known order status, got {n}")))
}

/// A `FailureReason` number; UNSPECIFIED (0) is no reason.
pub fn failure_reason(n: i32, path: &str) -> Result<Option<FailureReason>, FieldError> {
    const ALL: [FailureReason; 5] = [
        FailureReason::OutOfStock,
        FailureReason::DishDelisted,
        FailureReason::MerchantClosed,
        FailureReason::PriceChanged,
        FailureReason::UnknownSku,
    ];
    if n == 0 {
        return Ok(None);
    }
    ALL.into_iter()
        .find(|r| r.proto_number() == n)
        .map(Some)
        .ok_or_else(|| {
            FieldError::new(
                path,
                format_args!("must be a known failure reason, got {n}"),
            )
        })
}

/// A `Role` number other than UNSPECIFIED.
pub fn role(n: i32, path: &str) -> Result<Role, FieldError> {
    match pb::Role::try_from(n) {
        Ok(pb::Role::Buyer) => Ok(Role::Buyer),
        Ok(pb::Role::Merchant) => Ok(Role::Merchant),
        Ok(pb::Role::Rider) => Ok(Role::Rider),
        Ok(pb::Role::Ops) => Ok(Role::Ops),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Service) => Ok(Role::Service),
        Ok(pb::Role::Unspecified) | Err(_) => Err(FieldError::new(
            path,
            format_args!("must be a known role, got {n}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lat: f64, lng: f64) -> pb::GeoPoint {
        pb::GeoPoint { lat, lng }
    }

    fn cny(minor_units: i64) -> pb::Money {
        pb::Money {
            currency_code: "CNY".into(),
            minor_units,
        }
    }

    #[test]
    fn bad_coordinates_name_lat_or_lng() {
        let e = geo_point(&point(91.0, 0.0), "location").unwrap_err();
        assert_eq!(e.field, "location.lat");
        let e = geo_point(&point(0.0, f64::NAN), "a.location").unwrap_err();
        assert_eq!(e.field, "a.location.lng");
        assert_eq!(
            required_geo_point(&None, "location").unwrap_err().field,
            "location"
        );
        assert_eq!(geo_point(&point(-90.0, 180.0), "x").unwrap().lat(), -90.0);
    }

    #[test]
    fn addresses_need_text_and_a_location() {
        let path = "delivery_address";
        assert_eq!(
            address(&None, path).unwrap_err().to_string(),
            "delivery_address: is required"
        );
        let no_text = pb::Address {
            text: String::new(),
            location: Some(point(1.0, 1.0)),
        };
        assert_eq!(
            address(&Some(no_text), path).unwrap_err().field,
            "delivery_address.text"
        );
        let no_point = pb::Address {
            text: "1 Main St".into(),
            location: None,
        };
        assert_eq!(
            address(&Some(no_point), path).unwrap_err().field,
            "delivery_address.location"
        );
        let bad = pb::Address {
            text: "1 Main St".into(),
            location: Some(point(0.0, 200.0)),
        };
        assert_eq!(
            address(&Some(bad), path).unwrap_err().field,
            "delivery_address.location.lng"
        );
    }

    #[test]
    fn money_needs_a_currency_and_a_positive_amount_where_required() {
        let bad = pb::Money {
            currency_code: "cny".into(),
            minor_units: 1,
        };
        assert_eq!(
            money(&bad, "price").unwrap_err().field,
            "price.currency_code"
        );
        assert_eq!(positive_money(&None, "price").unwrap_err().field, "price");
        assert_eq!(
            positive_money(&Some(cny(0)), "price")
                .unwrap_err()
                .to_string(),
            "price.minor_units: must be > 0, got 0"
        );
        assert_eq!(
            positive_money(&Some(cny(5)), "price")
                .unwrap()
                .minor_units(),
            5
        );
        assert_eq!(money(&cny(-5), "refund").unwrap().minor_units(), -5);
    }

    #[test]
    fn timestamps_keep_milliseconds_and_refuse_impossible_values() {
        let t = prost_types::Timestamp {
            seconds: -1,
            nanos: 999_999_999,
        };
        assert_eq!(timestamp(&t, "as_of").unwrap(), Timestamp::from_millis(-1));
        let t = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(timestamp(&t, "as_of").unwrap_err().field, "as_of.nanos");
        let t = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(timestamp(&t, "as_of").unwrap_err().field, "as_of.seconds");
    }

    #[test]
    fn enum_numbers_map_back_to_domain_values() {
        assert_eq!(
            order_status(8, "statuses[0]").unwrap(),
            OrderStatus::TimedOut
        );
        assert_eq!(
            order_status(0, "statuses[0]").unwrap_err().field,
            "statuses[0]"
        );
        assert_eq!(
            order_status(12, "s").unwrap_err().reason,
            "must be a known order status, got 12"
        );
        assert_eq!(failure_reason(0, "r").unwrap(), None);
        assert_eq!(
            failure_reason(4, "r").unwrap(),
            Some(FailureReason::PriceChanged)
        );
        assert!(failure_reason(6, "r").is_err());
        assert_eq!(role(6, "role").unwrap(), Role::Service);
        assert!(role(0, "role").is_err());
        assert!(role(7, "role").is_err());
        assert_eq!(order_no("123", "order_no").unwrap_err().field, "order_no");
        assert_eq!(
            request_id("").unwrap_err().to_string(),
            "request_id: must be 1..=64 characters, got 0"
        );
    }
}
