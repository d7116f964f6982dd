//! Each order deadline fires at its time, not before, and once.

use super::*;

#[tokio::test]
async fn an_unpaid_order_is_cancelled_at_the_payment_deadline_and_not_before() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.caught_up().await;
    let firer = h.firer();
    let due = after(h.config.payment_window);

    assert_eq!(firer.tick(due.minus_ms(1)).await.unwrap(), 0);
    assert_eq!(h.status(&order).await, Some(OrderStatus::Created));

    assert_eq!(firer.tick(due).await.unwrap(), 1);
    assert_eq!(h.status(&order).await, Some(OrderStatus::Cancelled));
    let history = h.history(&order).await;
    assert_eq!(history.last(), Some(&"OrderCancelled"));

    // Again, and later: nothing more is appended.
    assert_eq!(firer.tick(due).await.unwrap(), 0);
    assert_eq!(
        firer.tick(due.plus(Duration::from_secs(60))).await.unwrap(),
        0
    );
    assert_eq!(h.history(&order).await, history);
}

#[tokio::test]
async fn paying_closes_the_payment_deadline() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.pay(&order).await;
    h.caught_up().await;
    let open = h.open_keys().await;
    assert_eq!(open, [format!("reservation:latte-l:{order}")]);
    let firer = h.firer();
    firer.tick(after(h.config.payment_window)).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::Paid));
}

#[tokio::test]
async fn an_offer_nobody_grabs_expires_and_the_order_is_paid_again() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.pay(&order).await;
    h.notify(&order, 1).await;
    h.caught_up().await;
    let firer = h.firer();
    let due = after(h.config.offer_window);

    assert_eq!(firer.tick(due.minus_ms(1)).await.unwrap(), 0);
    assert_eq!(h.status(&order).await, Some(OrderStatus::Notified));
    assert_eq!(firer.tick(due).await.unwrap(), 1);
    assert_eq!(h.status(&order).await, Some(OrderStatus::Paid));
    let history = h.history(&order).await;
    assert_eq!(history.last(), Some(&"OfferExpired"));
    assert_eq!(firer.tick(due).await.unwrap(), 0);
    assert_eq!(h.history(&order).await, history);
}

#[tokio::test]
async fn a_grab_closes_the_offer_window_and_a_stale_offer_timer_is_harmless() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.pay(&order).await;
    h.notify(&order, 1).await;
    h.grab(&order, 1).await;
    h.caught_up().await;
    assert!(!h
        .open_keys()
        .await
        .contains(&format!("offer:{order}:offer-1")));

    // A timer for that round fires anyway (scheduled by hand, as if the cancel was lost).
    let stale = Deadline::new(
        DeadlineKind::OfferExpires {
            order_no: order.clone(),
            offer_id: offer(7),
        },
        after(h.config.offer_window),
    );
    h.deadlines.schedule(stale.clone()).await.unwrap();
    let history = h.history(&order).await;
    assert_eq!(h.firer().tick(stale.due_at).await.unwrap(), 1);
    assert_eq!(h.history(&order).await, history, "moot: nothing appended");
    assert_eq!(h.status(&order).await, Some(OrderStatus::Delivering));
    assert!(!h.open_keys().await.contains(&stale.key.to_string()));
}

#[tokio::test]
async fn the_delivery_deadline_times_the_order_out() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.pay(&order).await;
    h.notify(&order, 1).await;
    h.grab(&order, 1).await;
    h.caught_up().await;
    let firer = h.firer();
    let due = after(h.config.delivery_sla);

    firer.tick(due.minus_ms(1)).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::Delivering));
    firer.tick(due).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::TimedOut));
    let history = h.history(&order).await;
    firer.tick(due.plus(Duration::from_secs(1))).await.unwrap();
    assert_eq!(h.history(&order).await, history);

    // Delivered late: no automatic close, ops compensate first.
    h.clock.set(due.plus(Duration::from_secs(60)));
    h.deliver(&order).await;
    h.caught_up().await;
    let open = h.open_keys().await;
    assert!(!open.iter().any(|k| k.starts_with("close:")), "{open:?}");
}

#[tokio::test]
async fn an_on_time_delivery_closes_after_the_close_window() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.pay(&order).await;
    h.notify(&order, 1).await;
    h.grab(&order, 1).await;
    h.clock.advance(Duration::from_secs(600));
    h.deliver(&order).await;
    h.caught_up().await;
    let firer = h.firer();
    let due = at(0)
        .plus(Duration::from_secs(600))
        .plus(h.config.close_after);
    assert!(h.open_keys().await.contains(&format!("close:{order}")));
    assert!(!h.open_keys().await.contains(&format!("delivery:{order}")));

    firer.tick(due.minus_ms(1)).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::Received));
    firer.tick(due).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::Closed));
    let history = h.history(&order).await;
    firer.tick(due).await.unwrap();
    assert_eq!(h.history(&order).await, history);
}

#[tokio::test]
async fn a_deadline_stored_earlier_than_the_orders_waits_for_the_orders() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.caught_up().await;
    let key = DeadlineKind::PaymentDue {
        order_no: order.clone(),
    }
    .key();
    // As if stored from a wrong clock: due a minute into a 15-minute window.
    h.deadlines
        .postpone(&key, after(Duration::from_secs(60)), None)
        .await
        .unwrap();
    let firer = h.firer();
    assert_eq!(firer.tick(after(Duration::from_secs(60))).await.unwrap(), 1);
    assert_eq!(h.status(&order).await, Some(OrderStatus::Created));
    let next = h
        .deadlines
        .due(after(h.config.payment_window), 10)
        .await
        .unwrap();
    assert!(next
        .iter()
        .any(|d| d.key == key && d.due_at == after(h.config.payment_window)));
    firer.tick(after(h.config.payment_window)).await.unwrap();
    assert_eq!(h.status(&order).await, Some(OrderStatus::Cancelled));
}

#[tokio::test]
async fn the_running_firer_fires_what_is_due_and_stops_on_shutdown() {
    let h = Harness::memory().await;
    let order = h.created_order(1).await;
    h.caught_up().await;
    h.clock.set(after(h.config.payment_window));
    let stop = CancellationToken::new();
    let running = tokio::spawn(h.firer().run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.status(&order).await != Some(OrderStatus::Cancelled) {
        assert!(Instant::now() < deadline, "the firer did not fire");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn order_deadlines_fire_on_postgres() {
    let db = TestDatabase::create().await;
    let h = Harness::postgres(&db).await;
    let unpaid = h.created_order(1).await;
    let offered = h.created_order(2).await;
    h.pay(&offered).await;
    h.notify(&offered, 1).await;
    h.caught_up().await;
    let firer = h.firer();
    firer.tick(after(h.config.offer_window)).await.unwrap();
    assert_eq!(h.status(&offered).await, Some(OrderStatus::Paid));
    assert_eq!(h.status(&unpaid).await, Some(OrderStatus::Created));
    firer.tick(after(h.config.payment_window)).await.unwrap();
    assert_eq!(h.status(&unpaid).await, Some(OrderStatus::Cancelled));
    assert_eq!(h.status(&offered).await, Some(OrderStatus::Paid));
}
