//! Domain values → proto messages and enum numbers, for replies and published events.

use orderflow_domain::order::OrderStatus;
use orderflow_domain::{Actor, Address, FailureReason, GeoPoint, Money, Role, Timestamp};

use crate::v1 as pb;

impl From<Money> for pb::Money {
    fn from(m: Money) -> pb::Money {
        pb::Money {
            currency_code: m.currency().as_str().to_owned(),
            minor_units: m.minor_units(),
        }
    }
}

impl From<GeoPoint> for pb::GeoPoint {
    fn from(p: GeoPoint) -> pb::GeoPoint {
        pb::GeoPoint {
            lat: p.lat(),
            lng: p.lng(),
        }
    }
}

impl From<&Address> for pb::Address {
    fn from(a: &Address) -> pb::Address {
        pb::Address {
            text: a.text().as_str().to_owned(),
            location: Some(a.location().into()),
        }
    }
}

impl From<OrderStatus> for pb::OrderStatus {
    fn from(s: OrderStatus) -> pb::OrderStatus {
        match s {
            OrderStatus::Creating => pb::OrderStatus::Creating,
            OrderStatus::Created => pb::OrderStatus::Created,
            OrderStatus::Failed => pb::OrderStatus::Failed,
            OrderStatus::Paid => pb::OrderStatus::Paid,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
            OrderStatus::Notified => pb::OrderStatus::Notified,
            OrderStatus::Delivering => pb::OrderStatus::Delivering,
            OrderStatus::TimedOut => pb::OrderStatus::TimedOut,
            OrderStatus::Received => pb::OrderStatus::Received,
            OrderStatus::Compensated => pb::OrderStatus::Compensated,
            OrderStatus::Closed => pb::OrderStatus::Closed,
        }
    }
}

impl From<FailureReason> for pb::FailureReason {
    fn from(r: FailureReason) -> pb::FailureReason {
        match r {
            FailureReason::OutOfStock => pb::FailureReason::OutOfStock,
            FailureReason::DishDelisted => pb::FailureReason::DishDelisted,
            FailureReason::MerchantClosed => pb::FailureReason::MerchantClosed,
            FailureReason::PriceChanged => pb::FailureReason::PriceChanged,
            FailureReason::UnknownSku => pb::FailureReason::UnknownSku,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> pb::Role {
        match r {
            Role::Buyer => pb::Role::Buyer,
            Role::Merchant => pb::Role::Merchant,
            Role::Rider => pb::Role::Rider,
            Role::Ops => pb::Role::Ops,
            Role::Admin => pb::Role::Admin,
            Role::Service => pb::Role::Service,
        }
    }
}

impl From<&Actor> for pb::Actor {
    fn from(a: &Actor) -> pb::Actor {
        pb::Actor {
            role: role(a.role),
            subject: a.subject.clone(),
        }
    }
}

/// The number prost stores in an `OrderStatus` field.
pub fn order_status(s: OrderStatus) -> i32 {
    pb::OrderStatus::from(s).into()
}

/// The number prost stores in a `FailureReason` field; no reason is UNSPECIFIED (0).
pub fn failure_reason(r: Option<FailureReason>) -> i32 {
    r.map_or(pb::FailureReason::Unspecified, pb::FailureReason::from)
        .into()
}

/// The number prost stores in a `Role` field.
pub fn role(r: Role) -> i32 {
    pb::Role::from(r).into()
}

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // Euclidean remainder: nanos stay in 0..1e9 for instants before 1970 too, as the
        // well-known type requires. Below 1e9, so the cast cannot truncate.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::values;

    #[test]
    fn enum_numbers_match_the_domain_numbering() {
        for s in OrderStatus::ALL {
            assert_eq!(order_status(s), s.proto_number());
            assert_eq!(values::order_status(order_status(s), "s").unwrap(), s);
        }
        for r in [
            FailureReason::OutOfStock,
            FailureReason::DishDelisted,
            FailureReason::MerchantClosed,
            FailureReason::PriceChanged,
            FailureReason::UnknownSku,
        ] {
            assert_eq!(failure_reason(Some(r)), r.proto_number());
            assert_eq!(
                values::failure_reason(failure_reason(Some(r)), "r").unwrap(),
                Some(r)
            );
        }
        assert_eq!(failure_reason(None), 0);
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Buyer,
            Role::Merchant,
            Role::Rider,
            Role::Ops,
            Role::Admin,
            Role::Service,
        ] {
            assert_eq!(values::role(role(r), "role").unwrap(), r);
        }
        let actor = pb::Actor::from(&Actor::new(Role::Rider, "42"));
        assert_eq!(actor.role, pb::Role::Rider as i32);
        assert_eq!(actor.subject, "42");
    }

    #[test]
    fn timestamps_round_trip_before_and_after_the_epoch() {
        for ms in [-1_001, -1, 0, 1, 1_795_331_832_345] {
            let t = Timestamp::from_millis(ms);
            let p = timestamp(t);
            assert!((0..1_000_000_000).contains(&p.nanos));
            assert_eq!(values::timestamp(&p, "at").unwrap(), t);
        }
        assert_eq!(timestamp(Timestamp::from_millis(-1)).seconds, -1);
    }

    #[test]
    fn values_round_trip() {
        let m = Money::parse("CNY", 1234).unwrap();
        assert_eq!(values::money(&m.into(), "m").unwrap(), m);
        let a = Address::parse("1 Chang'an Ave", 39.9, 116.4).unwrap();
        assert_eq!(values::address(&Some((&a).into()), "a").unwrap(), a);
    }
}
