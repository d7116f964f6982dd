//! Every stock and catalog RPC refuses a missing token, a stranger and a malformed field.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stock_and_catalog_rpc_refuses_strangers() -> anyhow::Result<()> {
    // Given shop 7 with a dish, projected
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    wait_until("the dish in the stock view", WAIT, || async {
        Ok(get_stock(&read, &app, SKU).await.is_ok())
    })
    .await?;
    let reservations = || pb::ListReservationsRequest {
        sku_id: SKU.into(),
        state: 0,
        page_size: 0,
        page_token: String::new(),
    };
    let nearby = || pb::ListMerchantsNearbyRequest {
        location: Some(point(MERCHANT_LAT, MERCHANT_LNG)),
        radius_m: 1_000,
        page_size: 0,
        page_token: String::new(),
    };
    let menu = || pb::GetMenuRequest { merchant_id: SHOP };
    let q = read.q();

    // Without a token: UNAUTHENTICATED, everywhere
    let codes = [
        q.clone()
            .get_stock(authed(&app, None, stock_request(SKU)))
            .await
            .map(drop),
        q.clone()
            .list_reservations(authed(&app, None, reservations()))
            .await
            .map(drop),
        q.clone()
            .list_merchants_nearby(authed(&app, None, nearby()))
            .await
            .map(drop),
        q.clone()
            .get_menu(authed(&app, None, menu()))
            .await
            .map(drop),
    ];
    for (i, result) in codes.into_iter().enumerate() {
        assert_eq!(result.unwrap_err().code(), Code::Unauthenticated, "rpc {i}");
    }

    // Another merchant, a buyer, a rider: PERMISSION_DENIED on the ledger and reservations
    for who in [
        (Role::Merchant, "8"),
        (Role::Buyer, "1"),
        (Role::Rider, "3"),
    ] {
        let err = q
            .clone()
            .get_stock(authed(&app, Some(who), stock_request(SKU)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who:?}");
        let err = q
            .clone()
            .list_reservations(authed(&app, Some(who), reservations()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who:?}");
    }

    // Malformed fields: INVALID_ARGUMENT naming the field
    let err = q
        .clone()
        .get_stock(authed(&app, OPS, stock_request("not a sku")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("sku_id"), "{}", err.message());
    let err = q
        .clone()
        .list_reservations(authed(
            &app,
            OPS,
            pb::ListReservationsRequest {
                page_token: "forged".into(),
                ..reservations()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());
    let err = q
        .clone()
        .list_merchants_nearby(authed(
            &app,
            OPS,
            pb::ListMerchantsNearbyRequest {
                radius_m: 0,
                ..nearby()
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("radius_m"), "{}", err.message());
    let err = q
        .clone()
        .get_menu(authed(&app, OPS, pb::GetMenuRequest { merchant_id: 0 }))
        .await
        .unwrap_err();
    assert!(err.message().contains("merchant_id"), "{}", err.message());

    // Unknown rows: NOT_FOUND, after authentication
    let err = q
        .clone()
        .get_stock(authed(&app, OPS, stock_request("nothing-here")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = q
        .clone()
        .get_menu(authed(&app, OPS, pb::GetMenuRequest { merchant_id: 999 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    drop(q);
    read.shutdown().await?;
    app.shutdown().await
}
