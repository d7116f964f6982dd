//! The merchant fold and the nearby paging, pure.

use orderflow_domain::merchant::{MerchantClosed, MerchantEvent, MerchantMoved, MerchantReopened};
use orderflow_domain::{GeoPoint, MerchantId};

use super::*;
use crate::testing::fixtures::{at, opened, renamed};

fn id(n: i64) -> MerchantId {
    MerchantId::new(n).unwrap()
}

#[test]
fn a_merchant_opens_closes_reopens_is_renamed_and_moves() {
    let moved_to = GeoPoint::new(31.3, 121.5).unwrap();
    let events: Vec<MerchantEvent> = vec![
        opened("Noodle Bar").into(),
        MerchantClosed { at: at(1) }.into(),
        MerchantReopened { at: at(2) }.into(),
        renamed("Noodle House").into(),
        MerchantMoved {
            location: moved_to,
            at: at(3),
        }
        .into(),
    ];
    let mut row = None;
    for (i, e) in events.iter().enumerate() {
        row = MerchantRow::apply(id(7), row.as_ref(), e, i as u64 + 1);
        if i == 1 {
            assert!(!row.as_ref().unwrap().open);
        }
    }
    let row = row.unwrap();
    assert_eq!(
        (row.name.as_str(), row.open, row.location, row.version),
        ("Noodle House", true, moved_to, 5)
    );
    // A repeat changes nothing; a history without its opening is not invented.
    let closed: MerchantEvent = MerchantClosed { at: at(9) }.into();
    assert_eq!(MerchantRow::apply(id(7), Some(&row), &closed, 5), Some(row));
    assert_eq!(MerchantRow::apply(id(8), None, &closed, 1), None);
}

fn shop(n: i64, lat: f64, lng: f64) -> MerchantRow {
    MerchantRow {
        merchant: id(n),
        name: orderflow_domain::Name::parse("Shop").unwrap(),
        location: GeoPoint::new(lat, lng).unwrap(),
        open: true,
        version: 1,
    }
}

#[test]
fn nearest_first_within_the_radius_paged_by_distance_and_id() {
    let center = GeoPoint::new(31.23, 121.47).unwrap();
    // ~111 m per 0.001° of latitude: 1 and 2 at the same spot, 3 further, 4 out of range.
    let rows = vec![
        shop(3, 31.235, 121.47),
        shop(2, 31.231, 121.47),
        shop(1, 31.231, 121.47),
        shop(4, 31.30, 121.47),
    ];
    let first = nearest_page(rows.clone(), center, 1_000, None, 2);
    let ids: Vec<i64> = first
        .merchants
        .iter()
        .map(|m| m.row.merchant.get())
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(first.merchants[0].distance_m, 111);
    let next = first.next.expect("a second page");
    let token = NearbyCursor::parse_token(&next.token()).unwrap();
    let second = nearest_page(rows, center, 1_000, token, 2);
    let ids: Vec<i64> = second
        .merchants
        .iter()
        .map(|m| m.row.merchant.get())
        .collect();
    assert_eq!(ids, [3]);
    assert!(second.next.is_none());
    assert!(NearbyCursor::parse_token("v1.x").is_err());
}

#[test]
fn the_search_box_holds_the_whole_circle() {
    let center = GeoPoint::new(31.23, 121.47).unwrap();
    let (lat_min, lat_max, lng_min, lng_max) = search_box(center, 5_000);
    for bearing in 0..36 {
        let angle = f64::from(bearing * 10).to_radians();
        // A point ~4.99 km away on this bearing.
        let lat = 31.23 + 4_990.0 * angle.cos() / METRES_PER_DEGREE;
        let lng =
            121.47 + 4_990.0 * angle.sin() / (METRES_PER_DEGREE * 31.23_f64.to_radians().cos());
        assert!((lat_min..=lat_max).contains(&lat), "bearing {bearing}");
        assert!((lng_min..=lng_max).contains(&lng), "bearing {bearing}");
    }
    let pole = GeoPoint::new(89.99, 10.0).unwrap();
    assert_eq!(search_box(pole, 5_000).2, -180.0);
}
