//! The rider fold and the offer rules, pure.

use orderflow_domain::order::{OfferExpired, OrderEvent, OrderGrabbed, OrderPaid, RidersNotified};
use orderflow_domain::rider::{
    RiderEvent, RiderLocationReported, RiderOrderAssigned, RiderOrderFinished, RiderWentOffline,
    RiderWentOnline,
};
use orderflow_domain::{Capacity, GeoPoint, OfferId, PaymentTxnId, RiderId};

use super::*;
use crate::testing::fixtures::{at, cny, order_no};

fn rider(n: i64) -> RiderId {
    RiderId::new(n).unwrap()
}

fn point(lat: f64) -> GeoPoint {
    GeoPoint::new(lat, 121.47).unwrap()
}

#[test]
fn a_rider_goes_online_moves_carries_and_goes_offline() {
    let no = order_no(0, 1);
    let events: Vec<RiderEvent> = vec![
        RiderWentOnline {
            location: point(31.23),
            capacity: Capacity::new(2).unwrap(),
            at: at(0),
        }
        .into(),
        RiderLocationReported {
            location: point(31.24),
            at: at(1),
        }
        .into(),
        RiderOrderAssigned {
            order_no: no.clone(),
            at: at(2),
        }
        .into(),
    ];
    let mut row = None;
    for (i, e) in events.iter().enumerate() {
        row = RiderRow::apply(rider(3), row.as_ref(), e, i as u64 + 1);
    }
    let row = row.unwrap();
    assert_eq!(
        (row.online, row.location, row.capacity, row.active.clone()),
        (true, point(31.24), 2, vec![no.clone()])
    );
    let finished: RiderEvent = RiderOrderFinished {
        order_no: no,
        at: at(3),
    }
    .into();
    let row = RiderRow::apply(rider(3), Some(&row), &finished, 4).unwrap();
    assert!(row.active.is_empty());
    let offline: RiderEvent = RiderWentOffline { at: at(4) }.into();
    assert!(
        !RiderRow::apply(rider(3), Some(&row), &offline, 5)
            .unwrap()
            .online
    );
    // A repeat changes nothing; no rider is invented from the middle of a history.
    assert_eq!(
        RiderRow::apply(rider(3), Some(&row), &offline, 4),
        Some(row)
    );
    assert_eq!(RiderRow::apply(rider(4), None, &offline, 1), None);
}

fn notified(round: u32, riders: &[i64]) -> OrderEvent {
    RidersNotified {
        offer_id: OfferId::parse(format!("offer-r{round}")).unwrap(),
        round,
        riders: riders.iter().map(|r| rider(*r)).collect(),
        radius_m: 3000,
        expires_at: at(30_000 * i64::from(round)),
        at: at(i64::from(round)),
    }
    .into()
}

#[test]
fn a_round_replaces_the_last_and_a_grab_or_expiry_closes_it() {
    let no = order_no(0, 1);
    let round1 = apply_offers(&no, &[], &notified(1, &[3, 4]));
    assert_eq!(round1.len(), 2);
    let paid: OrderEvent = OrderPaid {
        txn: PaymentTxnId::parse("txn-1").unwrap(),
        amount: cny(100),
        at: at(5),
    }
    .into();
    assert_eq!(apply_offers(&no, &round1, &paid), round1);
    let round2 = apply_offers(&no, &round1, &notified(2, &[5]));
    assert_eq!(
        round2.iter().map(|o| o.rider.get()).collect::<Vec<_>>(),
        [5]
    );
    let stale: OrderEvent = OfferExpired {
        offer_id: OfferId::parse("offer-r1").unwrap(),
        round: 1,
        at: at(6),
    }
    .into();
    assert_eq!(apply_offers(&no, &round2, &stale), round2);
    let expired: OrderEvent = OfferExpired {
        offer_id: OfferId::parse("offer-r2").unwrap(),
        round: 2,
        at: at(7),
    }
    .into();
    assert!(apply_offers(&no, &round2, &expired).is_empty());
    let grabbed: OrderEvent = OrderGrabbed {
        rider: rider(5),
        offer_id: OfferId::parse("offer-r2").unwrap(),
        delivery_deadline: at(99),
        at: at(8),
    }
    .into();
    assert!(apply_offers(&no, &round2, &grabbed).is_empty());
}

#[test]
fn nearest_online_riders_first_within_the_radius() {
    let row = |id: i64, lat: f64, online: bool| RiderRow {
        rider: rider(id),
        online,
        location: point(lat),
        capacity: 2,
        active: Vec::new(),
        version: 1,
    };
    let found = nearest_riders(
        vec![
            row(1, 31.233, true),
            row(2, 31.231, true),
            row(3, 31.2305, false),
            row(4, 31.40, true),
        ],
        point(31.23),
        1_000,
        10,
    );
    let ids: Vec<i64> = found.iter().map(|r| r.row.rider.get()).collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(found[0].distance_m, 111);
}
