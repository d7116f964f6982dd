//! A restart in the middle of the submit saga. Buyers submit while the command side runs;
//! once the saga has decided some of the orders, the whole app (server, saga, every process
//! manager, the store) is stopped, with submits still arriving and others not yet decided.
//! A new app on the same database and NATS prefix takes over: the buyers whose submits got
//! no answer retry them with the same request ids, and the saga resumes from its
//! checkpoints. Every order is decided exactly once and no reservation is taken twice.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orderflow_domain::order::{Order, OrderEvent, OrderStatus};
use orderflow_domain::sku::{ReservationState, SkuEvent};
use orderflow_domain::{FailureReason, OrderNo};
use orderflow_infra::store::{PgEventStore, PgStoreConfig};
use orderflow_tests::*;

const SHOP: i64 = 7;
const SKU: &str = "mooncake";
const PRICE: i64 = 3_000;
const STOCK: i64 = 100;
const BUYERS: i64 = 300;
/// Stop the first app once the saga has reserved this many units.
const STOP_AFTER_RESERVED: i64 = 30;

fn request_id(buyer: i64) -> String {
    format!("submit-{buyer}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_saga_decides_every_order_once() -> anyhow::Result<()> {
    let first = spawn_app().await;
    first.open_shop(SHOP, SKU, PRICE, STOCK).await?;

    // Buyers keep submitting in the background while the first app is stopped under them.
    let clients: Vec<_> = (1..=BUYERS).map(|b| (b, first.buyer(b))).collect();
    let submitting = tokio::spawn(async move {
        futures::stream::iter(clients)
            .map(|(buyer, client)| async move {
                let request = submit_request(request_id(buyer), buyer, SHOP, SKU, 1, PRICE);
                (buyer, client.submit_order(request).await)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
    });
    wait_until("the saga to be under way", WAIT, || async {
        Ok(first.stock(SKU).await?.reserved >= STOP_AFTER_RESERVED)
    })
    .await?;
    let started = Instant::now();
    let backing = first.stop_keeping_data().await?;
    let answered_by_first = submitting.await?;
    let stopped = started.elapsed();

    // What the log holds between the two apps, read by a store of our own: proof that the
    // restart did land in the middle of the saga.
    let undecided_at_restart = {
        let store =
            PgEventStore::connect(PgStoreConfig::single(backing.database_url.clone())).await?;
        let mut undecided = 0;
        for (_, answer) in &answered_by_first {
            if let Ok(reply) = answer {
                let stream = OrderNo::parse(reply.order_no.as_str())?.stream_id();
                let (state, _) = folded::<Order>(&store, &stream).await?;
                undecided += usize::from(state.status() == Some(OrderStatus::Creating));
            }
        }
        store.shutdown().await;
        undecided
    };

    let second = spawn_app_with(AppOptions::default().reuse(backing)).await;
    let restarted = started.elapsed();
    let mut order_nos = Vec::new();
    let mut retried = 0;
    for (buyer, answer) in answered_by_first {
        let request = submit_request(request_id(buyer), buyer, SHOP, SKU, 1, PRICE);
        let order_no = match answer {
            Ok(reply) => {
                // The same request again, now to the second app: the same order.
                let again = second.buyer(buyer).submit_order(request).await?;
                assert_eq!(again.order_no, reply.order_no, "buyer {buyer}");
                reply.order_no
            }
            Err(_) => {
                // Never answered (the first app went away): retried, same request id.
                retried += 1;
                second.buyer(buyer).submit_order(request).await?.order_no
            }
        };
        order_nos.push(order_no);
    }
    assert!(distinct(&order_nos));

    let orders = second
        .wait_all_decided(&order_nos, Duration::from_secs(60))
        .await?;
    eprintln!(
        "restart: {retried} of {BUYERS} submits retried on the second app; \
         {undecided_at_restart} answered orders were undecided at the restart; \
         stopped in {stopped:?}, restarted at {restarted:?}, all decided at {:?}",
        started.elapsed()
    );
    let created: HashSet<&str> = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Created)
        .map(|o| o.order_no.as_str())
        .collect();
    let failed = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Failed)
        .inspect(|o| assert_eq!(o.failure, Some(FailureReason::OutOfStock), "{}", o.order_no))
        .count();
    assert_eq!(created.len() as i64, STOCK);
    assert_eq!(failed as i64, BUYERS - STOCK);

    // Exactly one submission and one outcome per order, however many times the saga saw it
    // (an order refused at submit has one event that is both).
    for order_no in &order_nos {
        let (_, events) = second.order(order_no).await?;
        let submitted = count(&events, |e| {
            matches!(e, OrderEvent::Submitted(_) | OrderEvent::Refused(_))
        });
        let outcomes = count(&events, |e| {
            matches!(
                e,
                OrderEvent::Created(_) | OrderEvent::Failed(_) | OrderEvent::Refused(_)
            )
        });
        assert_eq!(
            (submitted, outcomes),
            (1, 1),
            "order {order_no}: {events:#?}"
        );
    }

    // One reservation per created order and none for the failed ones; the ledger holds.
    let (sku, events) = second.sku(SKU).await?;
    let reserved: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            SkuEvent::Reserved(r) => Some(r.order_no.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reserved.len() as i64,
        STOCK,
        "a reservation was taken twice"
    );
    assert_eq!(reserved.iter().copied().collect::<HashSet<_>>(), created);
    assert_eq!(count(&events, |e| matches!(e, SkuEvent::Released(_))), 0);
    for order_no in &created {
        let row = sku
            .reservation(&OrderNo::parse(*order_no)?)
            .expect("a reservation row per created order");
        assert_eq!(
            (row.quantity.get(), row.state),
            (1, ReservationState::Reserved)
        );
    }
    let stock = sku.stock();
    assert_ledger(&stock);
    assert_eq!(
        (stock.added, stock.available, stock.reserved),
        (STOCK, 0, STOCK)
    );

    second.shutdown().await
}
