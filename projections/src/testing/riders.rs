//! The cases of the `rider_geo` conformance suite.

use std::sync::Arc;

use orderflow_domain::order::{OfferExpired, OrderGrabbed, RidersNotified};
use orderflow_domain::rider::{RiderLocationReported, RiderOrderAssigned, RiderWentOnline};
use orderflow_domain::{Capacity, GeoPoint, OfferId, RiderId};

use super::fixtures::*;
use crate::model::ProjectionModel;
use crate::riders::RiderReader;

fn rider(n: i64) -> RiderId {
    RiderId::new(n).expect("rider id")
}

fn north(metres: f64) -> GeoPoint {
    GeoPoint::new(31.23 + metres / 111_195.0, 121.47).expect("point")
}

impl Log {
    pub fn rider(&mut self, id: i64, event: impl Into<orderflow_domain::rider::RiderEvent>) {
        self.record(&rider(id).stream_id(), event.into());
    }
}

fn online(metres: f64) -> RiderWentOnline {
    RiderWentOnline {
        location: north(metres),
        capacity: Capacity::new(2).expect("capacity"),
        at: at(0),
    }
}

pub async fn rider_geo_finds_online_riders_nearest_first<M>(model: Arc<M>)
where
    M: ProjectionModel + RiderReader,
{
    // Given riders at 300 m, 100 m (carrying an order), 200 m then moved to 5 km, 50 km
    let mut log = Log::new();
    log.rider(1, online(300.0));
    log.rider(2, online(100.0));
    log.rider(
        2,
        RiderOrderAssigned {
            order_no: order_no(0, 9),
            at: at(1),
        },
    );
    log.rider(3, online(200.0));
    log.rider(
        3,
        RiderLocationReported {
            location: north(5_000.0),
            at: at(2),
        },
    );
    log.rider(4, online(50_000.0));
    // When projected in batches of 2, then again whole
    log.apply_to(model.as_ref(), 2).await;
    log.apply_to(model.as_ref(), 100).await;
    // Then within 1 km: 2 then 1, with what they carry and their room
    let center = north(0.0);
    let near = model.nearby(center, 1_000, 10).await.unwrap();
    let seen: Vec<_> = near
        .iter()
        .map(|r| {
            (
                r.row.rider.get(),
                r.distance_m,
                r.row.active.len(),
                r.row.capacity,
            )
        })
        .collect();
    assert_eq!(seen, [(2, 100, 1, 2), (1, 300, 0, 2)]);
    // And the limit keeps the nearest; a wider radius finds the one who moved
    assert_eq!(model.nearby(center, 1_000, 1).await.unwrap().len(), 1);
    let wide = model.nearby(center, 10_000, 10).await.unwrap();
    assert_eq!(wide.last().map(|r| r.row.rider.get()), Some(3));
}

pub async fn rider_geo_keeps_each_riders_open_offers<M>(model: Arc<M>)
where
    M: ProjectionModel + RiderReader,
{
    // Given two orders offered: a to riders 3 and 4, b to rider 3, then a again to 4 and 5
    let mut log = Log::new();
    let (a, b) = (order_no(0, 1), order_no(10, 2));
    let round = |id: &str, round: u32, riders: &[i64], offset: i64| RidersNotified {
        offer_id: OfferId::parse(id).expect("offer id"),
        round,
        riders: riders.iter().map(|r| rider(*r)).collect(),
        radius_m: 3000,
        expires_at: at(offset + 30_000),
        at: at(offset),
    };
    log.order(&a, round("a-r1", 1, &[3, 4], 100));
    log.order(&b, round("b-r1", 1, &[3], 200));
    log.apply_to(model.as_ref(), 1).await;
    let ids = |offers: Vec<crate::riders::OfferRow>| -> Vec<String> {
        offers.iter().map(|o| o.offer_id.to_string()).collect()
    };
    // Then rider 3 sees both, oldest first
    assert_eq!(
        ids(model.offers(rider(3), at(150)).await.unwrap()),
        ["a-r1", "b-r1"]
    );
    // When a is offered again further out, and b's round expires
    log.order(&a, round("a-r2", 2, &[4, 5], 300));
    log.order(
        &b,
        OfferExpired {
            offer_id: OfferId::parse("b-r1").expect("offer id"),
            round: 1,
            at: at(30_200),
        },
    );
    log.apply_to(model.as_ref(), 3).await;
    // Then rider 3 has none, 4 and 5 have a's second round
    assert!(model.offers(rider(3), at(400)).await.unwrap().is_empty());
    assert_eq!(
        ids(model.offers(rider(4), at(400)).await.unwrap()),
        ["a-r2"]
    );
    assert_eq!(
        ids(model.offers(rider(5), at(400)).await.unwrap()),
        ["a-r2"]
    );
    // And past its expiry it is not open, even before anything records it
    assert!(model.offers(rider(5), at(30_300)).await.unwrap().is_empty());
    // When rider 5 grabs it
    log.order(
        &a,
        OrderGrabbed {
            rider: rider(5),
            offer_id: OfferId::parse("a-r2").expect("offer id"),
            delivery_deadline: at(99_999),
            at: at(500),
        },
    );
    log.apply_to(model.as_ref(), 10).await;
    // Then nobody has it any more
    for r in [3, 4, 5] {
        assert!(
            model.offers(rider(r), at(600)).await.unwrap().is_empty(),
            "rider {r}"
        );
    }
}
