//! The catalog: menus with availability and the listed flag; merchants nearest first.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menus_show_availability_and_merchants_are_found_nearest_first() -> anyhow::Result<()> {
    // Given shop 7 at the fixture point with a dish of 5 units, and shop 8 ~2 km north with
    // a second dish delisted
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    let north = north_of_merchant(2_000.0);
    let m8 = app.merchant(8);
    m8.open_merchant(pb::OpenMerchantRequest {
        request_id: rid(),
        merchant_id: 8,
        name: "Noodle Bar".into(),
        location: Some(north),
    })
    .await?;
    for (sku, price) in [("noodles", 2_800), ("dumplings", 1_500)] {
        m8.list_dish(pb::ListDishRequest {
            request_id: rid(),
            merchant_id: 8,
            sku_id: sku.into(),
            name: format!("dish {sku}"),
            price: Some(money(price)),
        })
        .await?;
    }
    m8.restock(pb::RestockRequest {
        request_id: rid(),
        merchant_id: 8,
        sku_id: "noodles".into(),
        quantity: 9,
    })
    .await?;
    let delisted = m8
        .delist_dish(pb::DelistDishRequest {
            request_id: rid(),
            merchant_id: 8,
            sku_id: "dumplings".into(),
        })
        .await?;
    // And one order of 2 units of shop 7's dish
    let no = app.submit(1, SHOP, SKU, 2, PRICE).await?;
    app.wait_for_status(&no, OrderStatus::Created).await?;

    // When a buyer reads shop 7's menu, once the reservation is in the view
    wait_until("the menu to show the reservation", WAIT, || async {
        let menu = read
            .q()
            .get_menu(authed(
                &app,
                Some((Role::Buyer, "1")),
                pb::GetMenuRequest { merchant_id: SHOP },
            ))
            .await?
            .into_inner();
        Ok(menu.dishes.first().is_some_and(|d| d.available == 3))
    })
    .await?;
    let menu = read
        .q()
        .get_menu(authed(
            &app,
            Some((Role::Buyer, "1")),
            pb::GetMenuRequest { merchant_id: SHOP },
        ))
        .await?
        .into_inner();
    // Then it has the dish with its price and what is left
    assert_eq!(menu.name, format!("Shop {SHOP}"));
    assert_eq!(menu.dishes.len(), 1);
    let dish = &menu.dishes[0];
    assert_eq!(
        (
            dish.sku_id.as_str(),
            dish.price.as_ref().map(|p| p.minor_units),
            dish.available,
            dish.listed
        ),
        (SKU, Some(PRICE), 3, true)
    );

    // And shop 8's menu hides the delisted dish from a buyer but not from its merchant
    let _ = read
        .q()
        .get_stock(authed(
            &app,
            OPS,
            pb::GetStockRequest {
                sku_id: "dumplings".into(),
                consistency_token: delisted.consistency_token,
            },
        ))
        .await?;
    wait_until("shop 8 in the catalog", WAIT, || async {
        Ok(read
            .q()
            .get_menu(authed(&app, OPS, pb::GetMenuRequest { merchant_id: 8 }))
            .await
            .is_ok())
    })
    .await?;
    let for_buyer = read
        .q()
        .get_menu(authed(
            &app,
            Some((Role::Buyer, "1")),
            pb::GetMenuRequest { merchant_id: 8 },
        ))
        .await?
        .into_inner();
    let skus: Vec<_> = for_buyer.dishes.iter().map(|d| d.sku_id.as_str()).collect();
    assert_eq!(skus, ["noodles"]);
    assert_eq!(for_buyer.dishes[0].available, 9);
    let for_owner = read
        .q()
        .get_menu(authed(
            &app,
            Some((Role::Merchant, "8")),
            pb::GetMenuRequest { merchant_id: 8 },
        ))
        .await?
        .into_inner();
    let flags: Vec<_> = for_owner
        .dishes
        .iter()
        .map(|d| (d.sku_id.as_str(), d.listed))
        .collect();
    assert_eq!(flags, [("dumplings", false), ("noodles", true)]);

    // And nearby search finds shop 7 within 1 km, both within 3 km nearest first, one a page
    let nearby = |radius_m: i32, page_size: i32, page_token: String| {
        let mut q = read.q();
        let request = authed(
            &app,
            Some((Role::Buyer, "1")),
            pb::ListMerchantsNearbyRequest {
                location: Some(point(MERCHANT_LAT, MERCHANT_LNG)),
                radius_m,
                page_size,
                page_token,
            },
        );
        async move {
            q.list_merchants_nearby(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let near = nearby(1_000, 10, String::new()).await?;
    let ids: Vec<_> = near.merchants.iter().map(|m| m.merchant_id).collect();
    assert_eq!(ids, [SHOP]);
    assert_eq!(near.merchants[0].distance_m, 0);
    assert!(near.merchants[0].open);
    let first = nearby(3_000, 1, String::new()).await?;
    assert_eq!(first.merchants[0].merchant_id, SHOP);
    assert!(!first.next_page_token.is_empty());
    let second = nearby(3_000, 1, first.next_page_token).await?;
    assert_eq!(second.merchants.len(), 1);
    let m = &second.merchants[0];
    assert_eq!((m.merchant_id, m.name.as_str()), (8, "Noodle Bar"));
    assert!((1_990..=2_010).contains(&m.distance_m), "{}", m.distance_m);
    assert!(second.next_page_token.is_empty());

    read.shutdown().await?;
    app.shutdown().await
}
