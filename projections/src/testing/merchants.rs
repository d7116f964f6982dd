//! The cases of the `merchant_catalog` conformance suite.

use std::sync::Arc;

use orderflow_domain::merchant::{MerchantClosed, MerchantMoved};
use orderflow_domain::{GeoPoint, Shard};

use super::fixtures::*;
use crate::merchants::{MerchantReader, NearbyCursor};
use crate::model::ProjectionModel;

fn opened_at(name: &str, lat: f64, lng: f64) -> orderflow_domain::merchant::MerchantOpened {
    let mut e = opened(name);
    e.location = GeoPoint::new(lat, lng).expect("point");
    e
}

pub async fn merchant_catalog_follows_each_merchant<M>(model: Arc<M>)
where
    M: ProjectionModel + MerchantReader,
{
    // Given a merchant opened, renamed, closed and moved
    let mut log = Log::new();
    log.merchant(merchant(7), opened("Noodle Bar"));
    log.merchant(merchant(7), renamed("Noodle House"));
    log.merchant(merchant(7), MerchantClosed { at: at(5) });
    log.merchant(
        merchant(7),
        MerchantMoved {
            location: GeoPoint::new(31.24, 121.48).expect("point"),
            at: at(6),
        },
    );
    // When it is projected in batches of 3, and delivered again whole
    log.apply_to(model.as_ref(), 3).await;
    let shard = merchant(7).stream_id().shard();
    let again = model.apply(shard, &log.shard(shard)).await.unwrap();
    // Then the row is its last state, and the repeat changed nothing
    let row = model.get(merchant(7)).await.unwrap().expect("projected");
    assert_eq!(
        (row.name.as_str(), row.open, row.location.lat(), row.version),
        ("Noodle House", false, 31.24, 4)
    );
    assert!(again.changes.is_empty());
    assert!(model.get(merchant(8)).await.unwrap().is_none());
    let checkpoints = model.checkpoints().await.unwrap();
    assert_eq!(checkpoints.get(&shard).map(|p| p.get()), Some(4));
    assert!(Shard::all()
        .filter(|s| *s != shard)
        .all(|s| checkpoints.get(&s).is_none_or(|p| p.get() == 0)));
}

pub async fn merchant_catalog_finds_merchants_nearby_nearest_first<M>(model: Arc<M>)
where
    M: ProjectionModel + MerchantReader,
{
    // Given five shops north of a point (~111 m per 0.001°) and one 20 km away
    let mut log = Log::new();
    for (id, d) in [(1, 0.004), (2, 0.001), (3, 0.003), (4, 0.002), (5, 0.005)] {
        log.merchant(merchant(id), opened_at("Shop", 31.23 + d, 121.47));
    }
    log.merchant(merchant(6), opened_at("Far", 31.41, 121.47));
    log.merchant(merchant(3), MerchantClosed { at: at(9) });
    log.apply_to(model.as_ref(), 4).await;
    let center = GeoPoint::new(31.23, 121.47).expect("point");
    // When they are paged two at a time within 1 km
    let mut seen = Vec::new();
    let mut after: Option<NearbyCursor> = None;
    loop {
        let page = model.nearby(center, 1_000, after, 2).await.unwrap();
        assert!(page.merchants.len() <= 2);
        seen.extend(
            page.merchants
                .iter()
                .map(|m| (m.row.merchant.get(), m.distance_m, m.row.open)),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // Then each is seen once, nearest first, closed ones flagged, the far one not at all
    assert_eq!(
        seen,
        [
            (2, 111, true),
            (4, 222, true),
            (3, 334, false),
            (1, 445, true),
            (5, 556, true)
        ]
    );
    // And a wide radius reaches the far one
    let wide = model.nearby(center, 30_000, None, 10).await.unwrap();
    assert_eq!(wide.merchants.len(), 6);
}
