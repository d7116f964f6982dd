//! Riders nearby and their offers: streamed, listed, closed by a grab; refusals.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn riders_are_found_nearby_and_offers_appear_then_disappear() -> anyhow::Result<()> {
    // Given a shop and two riders online, 300 m and 800 m north of it, both seen by the view
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    app.rider_online(31, north_of_merchant(300.0), 2).await?;
    app.rider_online(32, north_of_merchant(800.0), 3).await?;
    let around_shop = |radius_m: i32, who: (Role, &str)| {
        let mut q = read.q();
        let request = authed(
            &app,
            Some(who),
            pb::NearbyRidersRequest {
                center: Some(pb::nearby_riders_request::Center::MerchantId(SHOP)),
                radius_m,
                limit: 10,
            },
        );
        async move { q.nearby_riders(request).await.map(|r| r.into_inner()) }
    };
    wait_until("both riders in the rider view", WAIT, || async {
        Ok(around_shop(1_000, (Role::Merchant, "7"))
            .await?
            .riders
            .len()
            == 2)
    })
    .await?;

    // Then the shop's merchant finds them nearest first, with their room
    let near = around_shop(1_000, (Role::Merchant, "7")).await?;
    let seen: Vec<_> = near
        .riders
        .iter()
        .map(|r| (r.rider_id, r.active_orders, r.capacity))
        .collect();
    assert_eq!(seen, [(31, 0, 2), (32, 0, 3)]);
    assert!((295..=305).contains(&near.riders[0].distance_m));
    // And ops find only the nearer one within 500 m of a point
    let by_point = read
        .q()
        .nearby_riders(authed(
            &app,
            OPS,
            pb::NearbyRidersRequest {
                center: Some(pb::nearby_riders_request::Center::Location(point(
                    MERCHANT_LAT,
                    MERCHANT_LNG,
                ))),
                radius_m: 500,
                limit: 10,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(
        by_point
            .riders
            .iter()
            .map(|r| r.rider_id)
            .collect::<Vec<_>>(),
        [31]
    );

    // When rider 31 watches its offers and a paid order is offered
    let mut watch = read
        .q()
        .watch_offers(authed(
            &app,
            Some((Role::Rider, "31")),
            pb::ListOffersRequest { rider_id: 31 },
        ))
        .await?
        .into_inner();
    let order_no = app.submit(42, SHOP, SKU, 1, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    app.pay(&order_no, PRICE).await?;

    // Then the watch streams the offer, with the shop as pickup and the buyer as dropoff
    let offer = tokio::time::timeout(WAIT, watch.message())
        .await
        .context("no offer streamed")??
        .context("offer stream ended")?;
    assert_eq!(
        (offer.order_no.as_str(), offer.merchant_id),
        (order_no.as_str(), SHOP)
    );
    let pickup = offer.pickup.context("pickup")?;
    assert_eq!((pickup.lat, pickup.lng), (MERCHANT_LAT, MERCHANT_LNG));
    assert!(offer.dropoff.is_some() && offer.expires_at.is_some());
    // And ListOffers shows it to each rider offered
    let list = |rider: i64| {
        let mut q = read.q();
        let sub = rider.to_string();
        let request = authed(
            &app,
            Some((Role::Rider, sub.as_str())),
            pb::ListOffersRequest { rider_id: rider },
        );
        async move { q.list_offers(request).await.map(|r| r.into_inner().offers) }
    };
    let open = list(31).await?;
    assert_eq!(
        open.iter().map(|o| o.offer_id.as_str()).collect::<Vec<_>>(),
        [offer.offer_id.as_str()]
    );

    // When rider 31 grabs it
    app.rider(31)
        .grab_order(grab_request(31, &order_no, &offer.offer_id))
        .await?;
    app.wait_for_status(&order_no, OrderStatus::Delivering)
        .await?;

    // Then it is gone from every rider's offers, and rider 31 carries an order
    wait_until("the grabbed offer to close", WAIT, || async {
        Ok(list(31).await?.is_empty() && list(32).await?.is_empty())
    })
    .await?;
    wait_until("rider 31 to carry the order", WAIT, || async {
        let near = around_shop(1_000, (Role::Merchant, "7")).await?;
        Ok(near
            .riders
            .iter()
            .any(|r| r.rider_id == 31 && r.active_orders == 1))
    })
    .await?;

    // And strangers are refused: another rider's offers, a buyer or another shop's merchant
    // looking for riders, and anyone without a token
    let q = read.q();
    let err = q
        .clone()
        .list_offers(authed(
            &app,
            Some((Role::Rider, "32")),
            pb::ListOffersRequest { rider_id: 31 },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = q
        .clone()
        .watch_offers(authed(
            &app,
            Some((Role::Buyer, "42")),
            pb::ListOffersRequest { rider_id: 31 },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for who in [(Role::Buyer, "42"), (Role::Merchant, "8")] {
        let err = around_shop(1_000, who).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who:?}");
    }
    let err = q
        .clone()
        .list_offers(authed(&app, None, pb::ListOffersRequest { rider_id: 31 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = q
        .clone()
        .watch_offers(authed(&app, None, pb::ListOffersRequest { rider_id: 31 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = q
        .clone()
        .nearby_riders(authed(&app, None, pb::NearbyRidersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = q
        .clone()
        .nearby_riders(authed(&app, OPS, pb::NearbyRidersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    drop((q, watch));
    read.shutdown().await?;
    app.shutdown().await
}
