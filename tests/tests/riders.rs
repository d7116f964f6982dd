//! Offers and grabs end to end: the notifier's rounds reach riders on their NATS subjects,
//! an expired round is re-offered wider under a new offer id, and races have one winner.

use std::time::Duration;

use orderflow_command_service::CommandConfig;
use orderflow_domain::order::{OrderEvent, OrderStatus};
use orderflow_domain::rider::Rider;
use orderflow_domain::RiderId;
use orderflow_tests::*;
use tonic::Code;

const SHOP: i64 = 7;
const SKU: &str = "dumplings";
const PRICE: i64 = 1_500;
const BUYER: i64 = 42;

/// A paid order of [`BUYER`] (1 × [`SKU`]), waiting for riders.
async fn paid_order(app: &TestApp) -> anyhow::Result<String> {
    let order_no = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    app.pay(&order_no, PRICE).await?;
    Ok(order_no)
}

async fn active_orders(app: &TestApp, rider: i64) -> anyhow::Result<usize> {
    let (state, _) =
        folded::<Rider>(app.store().as_ref(), &RiderId::new(rider)?.stream_id()).await?;
    Ok(state.active_orders.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_offer_expires_and_a_wider_round_reaches_a_farther_rider(
) -> anyhow::Result<()> {
    const NEAR: i64 = 31;
    const FAR: i64 = 32;
    let config = CommandConfig {
        offer_radius_m: 1_000,
        ..CommandConfig::default()
    };
    let app = spawn_app_with(AppOptions::default().config(config)).await;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    // Round 1 (1 km) reaches only NEAR; round 2 (2 km) reaches FAR too.
    app.rider_online(NEAR, north_of_merchant(500.0), 3).await?;
    app.rider_online(FAR, north_of_merchant(1_600.0), 3).await?;
    let mut near_offers = app.offers_to(NEAR).await?;
    let mut far_offers = app.offers_to(FAR).await?;

    let order_no = paid_order(&app).await?;
    let first = near_offers.next(WAIT).await?;
    assert_eq!(first.order_no, order_no);
    let round_1 = app
        .wait_for_status(&order_no, OrderStatus::Notified)
        .await?;
    let round_1 = round_1.offer.expect("round 1");
    assert_eq!(
        (round_1.round, round_1.riders.clone()),
        (1, vec![RiderId::new(NEAR)?])
    );
    assert_eq!(first.offer_id, round_1.offer_id.as_str());

    // Nobody grabs; the offer window passes on the test clock.
    app.advance(app.app.config().offer_window + Duration::from_secs(1));
    let second = far_offers.next_new(&order_no, &[], WAIT).await?;
    assert_ne!(
        second.offer_id, first.offer_id,
        "a new round has a new offer id"
    );
    let (state, events) = app.order(&order_no).await?;
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Notified);
    let round_2 = order.offer.clone().expect("round 2");
    assert_eq!(round_2.round, 2);
    assert_eq!(round_2.offer_id.as_str(), second.offer_id);
    assert!(round_2.radius_m > round_1.radius_m, "re-offered wider");
    assert_eq!(
        round_2.riders,
        [RiderId::new(NEAR)?, RiderId::new(FAR)?],
        "round 2 reaches the farther rider"
    );
    assert_eq!(
        count(
            &events,
            |e| matches!(e, OrderEvent::OfferExpired(x) if x.round == 1)
        ),
        1
    );

    // The first round's id is stale now: ABORTED, and the rider's slot is given back.
    let stale = app
        .rider(NEAR)
        .grab_order(grab_request(NEAR, &order_no, &first.offer_id))
        .await
        .expect_err("a grab with round 1's offer id");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    assert_eq!(active_orders(&app, NEAR).await?, 0);

    app.rider(FAR)
        .grab_order(grab_request(FAR, &order_no, &second.offer_id))
        .await?;
    let (state, events) = app.order(&order_no).await?;
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Delivering);
    assert_eq!(order.rider, Some(RiderId::new(FAR)?));
    let grabs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::Grabbed(g) => Some(g.offer_id.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(grabs, std::slice::from_ref(&second.offer_id));
    assert_eq!(active_orders(&app, FAR).await?, 1);

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_riders_race_for_one_order_and_exactly_one_wins() -> anyhow::Result<()> {
    const RIDERS: i64 = 50;
    let config = CommandConfig {
        offer_fanout: 50,
        ..CommandConfig::default()
    };
    let app = spawn_app_with(AppOptions::default().config(config)).await;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    let riders: Vec<i64> = (100..100 + RIDERS).collect();
    let mut inboxes = Vec::new();
    for (i, &rider) in riders.iter().enumerate() {
        app.rider_online(rider, north_of_merchant(50.0 * (i as f64 + 1.0)), 2)
            .await?;
        inboxes.push(app.offers_to(rider).await?);
    }

    let order_no = paid_order(&app).await?;
    // Every rider got the same round's offer on its own subject.
    let mut offer_ids = Vec::new();
    for inbox in &mut inboxes {
        let offer = inbox.next(WAIT).await?;
        assert_eq!(offer.order_no, order_no);
        offer_ids.push(offer.offer_id);
    }
    offer_ids.dedup();
    assert_eq!(offer_ids.len(), 1, "one round: {offer_ids:?}");
    let offer_id = offer_ids.remove(0);

    let grabs: Vec<_> = riders
        .iter()
        .map(|&rider| {
            let client = app.rider(rider);
            let request = grab_request(rider, &order_no, &offer_id);
            tokio::spawn(async move { (rider, client.grab_order(request).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for grab in grabs {
        let (rider, result) = grab.await?;
        match result {
            Ok(_) => winners.push(rider),
            Err(status) => assert_eq!(status.code(), Code::Aborted, "rider {rider}: {status:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = winners[0];

    let (state, events) = app.order(&order_no).await?;
    assert_eq!(count(&events, |e| matches!(e, OrderEvent::Grabbed(_))), 1);
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Delivering);
    assert_eq!(order.rider, Some(RiderId::new(winner)?));
    for &rider in &riders {
        let expected = usize::from(rider == winner);
        assert_eq!(active_orders(&app, rider).await?, expected, "rider {rider}");
    }

    app.shutdown().await
}
