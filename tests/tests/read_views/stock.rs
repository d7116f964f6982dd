//! The stock views: after a flash sale the ledger equals the log; a restock's token reads its
//! own write.

use std::collections::HashMap;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_flash_sale_the_stock_view_equals_the_event_log() -> anyhow::Result<()> {
    // Given a read side following a shop with 20 units, and analytics listening for its rows
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    let mut changes = app
        .nats
        .subscribe(&app.nats.subjects().view_changes_all("stock_ledger"))
        .await?;
    app.open_shop(SHOP, SKU, PRICE, 20).await?;

    // When 40 buyers submit one unit each at once, 5 of the created orders are paid and 3
    // cancelled
    let replies = futures::stream::iter(1..=40i64)
        .map(|buyer| {
            let client = app.buyer(buyer);
            tokio::spawn(async move {
                client
                    .submit_order(submit_request(rid(), buyer, SHOP, SKU, 1, PRICE))
                    .await
            })
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut order_nos = Vec::new();
    for reply in replies {
        order_nos.push(reply??.order_no);
    }
    let orders = app
        .wait_all_decided(&order_nos, Duration::from_secs(60))
        .await?;
    let created: Vec<_> = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Created)
        .collect();
    assert_eq!(created.len(), 20, "exactly the stock is sold");
    for order in &created[..5] {
        app.pay(order.order_no.as_str(), PRICE).await?;
    }
    for order in &created[5..8] {
        app.buyer(order.buyer.get())
            .cancel_order(pb::CancelOrderRequest {
                request_id: rid(),
                order_no: order.order_no.to_string(),
                reason: "changed my mind".into(),
            })
            .await?;
    }
    // (A paid order moves on to NOTIFIED at once: wait on the sku's log instead.)
    wait_until("5 deductions and 3 releases in the log", WAIT, || async {
        let level = app.stock(SKU).await?;
        Ok((level.deducted, level.released) == (5, 3))
    })
    .await?;
    let level = app.stock(SKU).await?;
    assert_eq!((level.deducted, level.released), (5, 3));

    // Then GetStock catches up with the log folded by the domain, identity included
    wait_until("the stock view to equal the event log", WAIT, || async {
        let view = get_stock(&read, &app, SKU).await?;
        Ok((
            view.added,
            view.available,
            view.reserved,
            view.deducted,
            view.released,
        ) == (
            level.added,
            level.available,
            level.reserved,
            level.deducted,
            level.released,
        ))
    })
    .await?;
    let view = get_stock(&read, &app, SKU).await?;
    assert_eq!(view.added, view.available + view.reserved + view.deducted);
    assert_eq!(view.merchant_id, SHOP);

    // And the reservations, paged 7 at a time, are exactly the decider's, state by state
    let (sku_state, _) = app.sku(SKU).await?;
    let expected: HashMap<String, (i64, ReservationState)> = sku_state
        .reservations()
        .map(|(no, r)| (no.to_string(), (r.quantity.get(), r.state)))
        .collect();
    let all = all_reservations(&read, &app, SKU, pb::ReservationState::Unspecified, 7).await?;
    assert_eq!(all.len(), expected.len());
    assert_eq!(all.len(), 20);
    let mut sorted: Vec<_> = all.iter().map(|r| r.order_no.clone()).collect();
    sorted.sort();
    assert_eq!(
        all.iter().map(|r| r.order_no.clone()).collect::<Vec<_>>(),
        sorted,
        "paged in order-number order, each once"
    );
    for r in &all {
        let (quantity, state) = expected[&r.order_no];
        let wire = match state {
            ReservationState::Reserved => pb::ReservationState::Reserved,
            ReservationState::Deducted => pb::ReservationState::Deducted,
            ReservationState::Released => pb::ReservationState::Released,
        };
        assert_eq!(
            (r.quantity, r.state),
            (quantity, wire as i32),
            "{}",
            r.order_no
        );
        assert!(r.expires_at.is_some());
    }
    let deducted = all_reservations(&read, &app, SKU, pb::ReservationState::Deducted, 2).await?;
    let released = all_reservations(&read, &app, SKU, pb::ReservationState::Released, 2).await?;
    assert_eq!((deducted.len(), released.len()), (5, 3));

    // And the shop's hourly statistics count the sale: 40 orders, 5 paid, 3 cancelled
    let shop = orderflow_domain::MerchantId::new(SHOP)?;
    let (from, to) = (
        orderflow_domain::Timestamp::from_millis(START - 3_600_000),
        orderflow_domain::Timestamp::from_millis(START + 3_600_000),
    );
    wait_until("the hourly statistics to count the sale", WAIT, || async {
        let hours = read.read.stats().hours(shop, from, to).await?;
        let sum = |f: fn(&orderflow_projections::stats::HourlyStats) -> i64| {
            hours.iter().map(f).sum::<i64>()
        };
        Ok((sum(|h| h.orders), sum(|h| h.gmv), sum(|h| h.cancellations)) == (40, 5 * PRICE, 3))
    })
    .await?;

    // And the ledger's row changes went out on `{prefix}.views.stock_ledger.{shard}`
    let first = tokio::time::timeout(WAIT, changes.next())
        .await
        .context("no stock_ledger row change published")?
        .context("subscription closed")?;
    let body: serde_json::Value = serde_json::from_slice(&first.payload)?;
    assert_eq!(body["view"].as_str(), Some("stock_ledger"));
    assert_eq!(body["changes"][0]["key"].as_str(), Some(SKU));

    read.shutdown().await?;
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restock_token_reads_its_own_write() -> anyhow::Result<()> {
    // Given a shop with 3 units, seen by the read side
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await?;
    app.open_shop(SHOP, SKU, PRICE, 3).await?;
    // When 4 more are added
    let reply = app
        .merchant(SHOP)
        .restock(pb::RestockRequest {
            request_id: rid(),
            merchant_id: SHOP,
            sku_id: SKU.into(),
            quantity: 4,
        })
        .await?;
    // Then GetStock with the reply's token answers with them, at once and without polling
    let level = read
        .q()
        .get_stock(authed(
            &app,
            Some((Role::Merchant, "7")),
            pb::GetStockRequest {
                sku_id: SKU.into(),
                consistency_token: reply.consistency_token,
            },
        ))
        .await?
        .into_inner();
    assert_eq!((level.added, level.available), (7, 7));
    read.shutdown().await?;
    app.shutdown().await
}
