//! A flash sale over gRPC on Postgres + NATS: one sku with 1,000 units, 5,000 buyers submit
//! at once (256 requests in flight). Exactly 1,000 orders are created, 4,000 fail
//! OUT_OF_STOCK, and the stock ledger holds: nothing oversold.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::sku::{ReservationState, SkuEvent};
use orderflow_domain::FailureReason;
use orderflow_tests::*;

const SHOP: i64 = 7;
const SKU: &str = "flash-sale-phone";
const PRICE: i64 = 99_900;
const UNITS: i64 = 1_000;
const BUYERS: i64 = 5_000;
const IN_FLIGHT: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_buyers_one_thousand_units_nothing_oversold() -> anyhow::Result<()> {
    // The harness's default pool (16). Before the store subscription stopped holding a
    // pooled connection while paused, 256 submits in flight stalled the command side with a
    // pool of 16 or 32; this test ran with 64 then. It is the regression test of that fix too.
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, UNITS).await?;

    let started = Instant::now();
    // Each submit is its own task, so both cores serialise requests and mint tokens.
    let submits = futures::stream::iter(1..=BUYERS)
        .map(|buyer| {
            let client = app.buyer(buyer);
            tokio::spawn(async move {
                client
                    .submit_order(submit_request(rid(), buyer, SHOP, SKU, 1, PRICE))
                    .await
            })
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>();
    let replies = tokio::time::timeout(Duration::from_secs(120), submits)
        .await
        .map_err(|_| anyhow::anyhow!("{BUYERS} submits did not finish within 120 s"))?;
    let submitted = started.elapsed();
    let mut order_nos = Vec::with_capacity(replies.len());
    for reply in replies {
        let reply = reply??;
        assert_eq!(
            reply.status,
            orderflow_tests::v1::OrderStatus::Creating as i32
        );
        order_nos.push(reply.order_no);
    }
    assert_eq!(order_nos.len() as i64, BUYERS);
    assert!(distinct(&order_nos));

    let orders = app
        .wait_all_decided(&order_nos, Duration::from_secs(120))
        .await?;
    let decided = started.elapsed();
    eprintln!(
        "flash sale: {BUYERS} submits in {submitted:?} ({:.0}/s), all decided after {decided:?}",
        BUYERS as f64 / submitted.as_secs_f64()
    );

    let created: HashSet<&str> = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Created)
        .map(|o| o.order_no.as_str())
        .collect();
    let failed: Vec<_> = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Failed)
        .collect();
    assert_eq!(created.len() as i64, UNITS);
    assert_eq!(failed.len() as i64, BUYERS - UNITS);
    assert!(failed
        .iter()
        .all(|o| o.failure == Some(FailureReason::OutOfStock)));

    // The ledger as the store holds it: every unit reserved once, by a created order.
    let (sku, events) = app.sku(SKU).await?;
    let stock = sku.stock();
    assert_ledger(&stock);
    assert_eq!(
        (stock.added, stock.available, stock.reserved, stock.deducted),
        (UNITS, 0, UNITS, 0)
    );
    let reserved: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            SkuEvent::Reserved(r) => Some(r.order_no.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reserved.len() as i64, UNITS);
    assert_eq!(reserved.iter().copied().collect::<HashSet<_>>(), created);
    assert!(sku
        .reservations()
        .all(|(_, r)| r.state == ReservationState::Reserved && r.quantity.get() == 1));

    app.shutdown().await
}
