use orderflow_domain::merchant::{MerchantMoved, MerchantOpened};
use orderflow_domain::rider::{
    RiderLocationReported, RiderOrderAssigned, RiderOrderFinished, RiderWentOffline,
    RiderWentOnline,
};
use orderflow_domain::{BuyerId, Capacity, Name, OrderNo, Timestamp};

use super::*;

/// Metres per degree of latitude on the haversine sphere.
const M_PER_DEG_LAT: f64 = 111_195.08;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn rider(n: i64) -> RiderId {
    RiderId::new(n).unwrap()
}

fn shanghai() -> GeoPoint {
    GeoPoint::new(31.2304, 121.4737).unwrap()
}

/// The point `metres` north of `p` (exact on the haversine sphere).
fn north(p: GeoPoint, metres: f64) -> GeoPoint {
    GeoPoint::new(p.lat() + metres / M_PER_DEG_LAT, p.lng()).unwrap()
}

fn online(index: &RiderGeoIndex, id: i64, at: GeoPoint, capacity: i64) {
    index.apply_rider(
        rider(id),
        &RiderWentOnline {
            location: at,
            capacity: Capacity::new(capacity).unwrap(),
            at: t(0),
        }
        .into(),
    );
}

fn moved(index: &RiderGeoIndex, id: i64, to: GeoPoint) {
    index.apply_rider(
        rider(id),
        &RiderLocationReported {
            location: to,
            at: t(1),
        }
        .into(),
    );
}

fn ids(found: &[NearbyRider]) -> Vec<i64> {
    found.iter().map(|r| r.rider.get()).collect()
}

fn order(n: u32) -> OrderNo {
    OrderNo::new(t(1_000), n, BuyerId::new(3).unwrap()).unwrap()
}

#[test]
fn riders_come_back_nearest_first_with_their_details() {
    let index = RiderGeoIndex::new();
    let c = shanghai();
    online(&index, 3, north(c, 900.0), 2);
    online(&index, 1, north(c, 100.0), 1);
    online(&index, 2, north(c, 500.0), 3);
    let found = index.nearest(c, 1_000, 10, RiderFilter::Online);
    assert_eq!(ids(&found), vec![1, 2, 3]);
    assert!((found[1].distance_m - 500.0).abs() < 0.5, "{found:?}");
    assert_eq!((found[1].capacity, found[1].active_orders), (3, 0));
    assert_eq!(
        ids(&index.nearest(c, 1_000, 2, RiderFilter::Online)),
        vec![1, 2]
    );
    assert!(index.nearest(c, 1_000, 0, RiderFilter::Online).is_empty());
}

#[test]
fn a_moving_rider_changes_cells_and_an_offline_one_leaves_the_index() {
    let index = RiderGeoIndex::new();
    let c = shanghai();
    online(&index, 1, north(c, 20_000.0), 1);
    assert!(index.nearest(c, 3_000, 5, RiderFilter::Online).is_empty());
    moved(&index, 1, north(c, 1_000.0));
    assert_eq!(
        ids(&index.nearest(c, 3_000, 5, RiderFilter::Online)),
        vec![1]
    );
    // One cell per online rider, whatever the path it took.
    let snapshot = index.snapshot();
    assert_eq!(snapshot.cells.values().map(BTreeSet::len).sum::<usize>(), 1);

    index.apply_rider(rider(1), &RiderWentOffline { at: t(2) }.into());
    assert!(index.nearest(c, 3_000, 5, RiderFilter::Online).is_empty());
    assert!(index.snapshot().cells.is_empty());
    assert_eq!(index.online_count(), 0);
    // Still known (it may still be delivering), just not offered.
    assert!(index.rider(rider(1)).is_some_and(|s| !s.online));
    online(&index, 1, north(c, 10.0), 1);
    assert_eq!(
        ids(&index.nearest(c, 3_000, 5, RiderFilter::Online)),
        vec![1]
    );
}

#[test]
fn the_radius_is_inclusive_and_exact() {
    let index = RiderGeoIndex::new();
    let c = shanghai();
    online(&index, 1, north(c, 2_999.0), 1);
    online(&index, 2, north(c, 3_001.0), 1);
    online(&index, 3, c, 1);
    assert_eq!(
        ids(&index.nearest(c, 3_000, 10, RiderFilter::Online)),
        vec![3, 1]
    );
    assert_eq!(
        ids(&index.nearest(c, 3_002, 10, RiderFilter::Online)),
        vec![3, 1, 2]
    );
    // A radius of 1 m finds the rider standing on the point.
    assert_eq!(ids(&index.nearest(c, 1, 10, RiderFilter::Online)), vec![3]);
    // The widest radius reaches 50 km and no further.
    online(&index, 4, north(c, 49_990.0), 1);
    online(&index, 5, north(c, 50_010.0), 1);
    let wide = index.nearest(c, 50_000, 10, RiderFilter::Online);
    assert_eq!(ids(&wide), vec![3, 1, 2, 4]);
}

#[test]
fn riders_without_room_are_filtered_out() {
    let index = RiderGeoIndex::new();
    let c = shanghai();
    online(&index, 1, north(c, 100.0), 1);
    online(&index, 2, north(c, 200.0), 2);
    let assign = |id, n| {
        index.apply_rider(
            rider(id),
            &RiderOrderAssigned {
                order_no: order(n),
                at: t(3),
            }
            .into(),
        )
    };
    assign(1, 1);
    assign(2, 2);
    assert_eq!(
        ids(&index.nearest(c, 1_000, 5, RiderFilter::HasRoom)),
        vec![2]
    );
    assert_eq!(
        ids(&index.nearest(c, 1_000, 5, RiderFilter::Online)),
        vec![1, 2]
    );
    let found = index.nearest(c, 1_000, 5, RiderFilter::Online);
    assert_eq!((found[0].active_orders, found[0].capacity), (1, 1));
    index.apply_rider(
        rider(1),
        &RiderOrderFinished {
            order_no: order(1),
            at: t(4),
        }
        .into(),
    );
    assert_eq!(
        ids(&index.nearest(c, 1_000, 5, RiderFilter::HasRoom)),
        vec![1, 2]
    );
}

#[test]
fn merchants_are_located_by_their_latest_event() {
    let index = RiderGeoIndex::new();
    let m = MerchantId::new(7).unwrap();
    assert_eq!(index.merchant_location(m), None);
    let opened = MerchantOpened {
        name: Name::parse("Noodle Bar").unwrap(),
        location: shanghai(),
        at: t(0),
    };
    index.apply_merchant(m, &opened.into());
    assert_eq!(index.merchant_location(m), Some(shanghai()));
    let to = north(shanghai(), 50.0);
    index.apply_merchant(
        m,
        &MerchantMoved {
            location: to,
            at: t(1),
        }
        .into(),
    );
    assert_eq!(index.merchant_location(m), Some(to));
}

/// A small deterministic generator (xorshift), so the test needs no extra crate and every run
/// checks the same points.
struct Xorshift(u64);

impl Xorshift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The cell prefilter must never drop a rider that brute force finds, at any radius, in a
/// crowded city and near the poles and the antimeridian, where cells are distorted.
#[test]
fn search_matches_brute_force_for_many_riders() {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    for (center, spread_deg) in [
        (shanghai(), 0.6),
        (GeoPoint::new(-33.87, 151.21).unwrap(), 0.3),
        (GeoPoint::new(69.65, 18.96).unwrap(), 0.8),
        (GeoPoint::new(0.5, 179.8).unwrap(), 0.4),
    ] {
        let index = RiderGeoIndex::new();
        let mut all = Vec::new();
        for id in 1..=3_000 {
            let lat = (center.lat() + (rng.unit() - 0.5) * spread_deg).clamp(-90.0, 90.0);
            let mut lng = center.lng() + (rng.unit() - 0.5) * spread_deg * 2.0;
            if lng > 180.0 {
                lng -= 360.0;
            }
            let p = GeoPoint::new(lat, lng).unwrap();
            online(&index, id, p, 2);
            all.push((id, p));
        }
        for radius in [1u32, 500, 3_000, 6_000, 12_000, 24_000, 50_000] {
            for _ in 0..5 {
                let q = GeoPoint::new(
                    center.lat() + (rng.unit() - 0.5) * spread_deg,
                    (center.lng() + (rng.unit() - 0.5) * spread_deg).min(180.0),
                )
                .unwrap();
                let mut expected: Vec<(f64, i64)> = all
                    .iter()
                    .map(|(id, p)| (q.distance_m(p), *id))
                    .filter(|(d, _)| *d <= f64::from(radius))
                    .collect();
                expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                expected.truncate(200);
                let got = index.nearest(q, radius, 200, RiderFilter::Online);
                let expected: Vec<i64> = expected.into_iter().map(|(_, id)| id).collect();
                assert_eq!(ids(&got), expected, "center {q:?} radius {radius}");
            }
        }
    }
}

#[test]
fn the_disk_covers_the_radius_at_every_size() {
    let origin = cell_of(shanghai()).unwrap();
    let k_small = disk_k(origin, 3_000.0);
    let k_wide = disk_k(origin, 50_000.0);
    assert!((3..=8).contains(&k_small), "{k_small}");
    assert!(k_wide < 60, "{k_wide}");
    assert_eq!(disk_size(0), 1);
    assert_eq!(disk_size(1), 7);
    assert_eq!(
        origin.grid_disk::<Vec<_>>(k_small).len(),
        disk_size(k_small)
    );
}

#[tokio::test]
async fn readiness_is_signalled_once() {
    let index = std::sync::Arc::new(RiderGeoIndex::new());
    assert!(!index.is_ready());
    let waiter = tokio::spawn({
        let index = index.clone();
        async move { index.wait_ready().await }
    });
    index.mark_ready();
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(index.is_ready());
}
