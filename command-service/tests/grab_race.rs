//! 50 riders race for one NOTIFIED order: exactly one wins, the others are ABORTED, and no
//! loser is left holding the order (issue 3 §4 and §8).

mod common;

use common::*;
use orderflow_domain::order::OrderStatus;
use tonic::Code;

const RIDERS: i64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_riders_race_and_exactly_one_wins() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let riders: Vec<i64> = (100..100 + RIDERS).collect();
    for &rider in &riders {
        t.client
            .go_online(t.rider(rider, go_online("on-1", rider)))
            .await
            .unwrap();
    }
    let order_no = paid_order(&mut t, "sub-1").await;
    t.notify(&order_no, &riders).await;

    let tasks: Vec<_> = riders
        .iter()
        .map(|&rider| {
            let mut client = t.client.clone();
            let request = t.rider(rider, grab("grab-1", rider, &order_no));
            tokio::spawn(async move { (rider, client.grab_order(request).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (rider, result) = task.await.unwrap();
        match result {
            Ok(_) => winners.push(rider),
            Err(status) => assert_eq!(status.code(), Code::Aborted, "rider {rider}: {status:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = winners[0];

    let state = t.order(&order_no).await;
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Delivering);
    assert_eq!(order.rider.map(|r| r.get()), Some(winner));
    for &rider in &riders {
        let carried = t.rider_state(rider).await.active_orders.len();
        let expected = usize::from(rider == winner);
        assert_eq!(carried, expected, "rider {rider} carries {carried}");
    }
}

/// A rider at capacity cannot grab: refused on its own stream, the order untouched.
#[tokio::test]
async fn a_rider_at_capacity_cannot_grab() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let mut online = go_online("on-1", RIDER);
    online.capacity = 1;
    t.client.go_online(t.rider(RIDER, online)).await.unwrap();
    let first = paid_order(&mut t, "sub-1").await;
    let second = paid_order(&mut t, "sub-2").await;
    t.notify(&first, &[RIDER]).await;
    t.notify(&second, &[RIDER]).await;
    t.client
        .grab_order(t.rider(RIDER, grab("g-1", RIDER, &first)))
        .await
        .unwrap();
    let before = t.total_events().await;
    let full = t
        .client
        .grab_order(t.rider(RIDER, grab("g-2", RIDER, &second)))
        .await;
    assert_status(full, Code::FailedPrecondition, "capacity");
    assert_eq!(t.total_events().await, before);
    assert_eq!(t.order(&second).await.status(), Some(OrderStatus::Notified));
}

/// A grab with an offer id of another round is ABORTED and gives the slot back.
#[tokio::test]
async fn a_stale_offer_is_aborted_and_the_rider_released() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    t.client
        .go_online(t.rider(RIDER, go_online("on-1", RIDER)))
        .await
        .unwrap();
    let order_no = paid_order(&mut t, "sub-1").await;
    t.notify(&order_no, &[RIDER]).await;
    let mut stale = grab("g-1", RIDER, &order_no);
    stale.offer_id = "offer-0".into();
    assert_status(
        t.client.grab_order(t.rider(RIDER, stale)).await,
        Code::Aborted,
        "offer-0",
    );
    assert!(t.rider_state(RIDER).await.active_orders.is_empty());
    assert_eq!(
        t.order(&order_no).await.status(),
        Some(OrderStatus::Notified)
    );
}
