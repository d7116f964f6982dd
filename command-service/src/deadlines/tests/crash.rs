//! Crashes and restarts: deadlines survive the process, fire once in effect, and a deadline
//! that keeps failing is parked instead of blocking the queue.

use std::sync::atomic::Ordering;

use orderflow_infra::store::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent};

use super::faulty::FaultyStore;
use super::*;

/// Fires the payment deadline with a crash before `complete`, then again from a fresh firer:
/// one `OrderCancelled`, and the deadline closed.
async fn fired_but_not_completed_refires_harmlessly(mut h: Harness) {
    let order = h.created_order(1).await;
    h.caught_up().await;
    // Stop consuming, so the cancel event does not close the deadline behind our back.
    h.stop().await;
    let due = after(h.config.payment_window);
    let crashing = Arc::new(FaultyStore::over(h.deadlines.clone()));
    crashing.crash_before_complete.store(true, Ordering::SeqCst);
    let first = DeadlineFirer::new(
        crashing,
        h.executor.clone(),
        h.stock.clone(),
        Arc::new(h.clock.clone()),
        Wakeup::new(),
    );
    let err = first.tick(due).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    drop(first);
    assert_eq!(h.status(&order).await, Some(OrderStatus::Cancelled));
    let key = DeadlineKind::PaymentDue {
        order_no: order.clone(),
    }
    .key();
    assert!(
        h.deadlines
            .due(due, 10)
            .await
            .unwrap()
            .iter()
            .any(|d| d.key == key),
        "still open after the crash"
    );

    let history = h.history(&order).await;
    assert_eq!(h.firer().tick(due).await.unwrap(), 1);
    assert_eq!(
        h.history(&order).await,
        history,
        "the re-fire appended nothing"
    );
    assert_eq!(
        history.iter().filter(|t| **t == "OrderCancelled").count(),
        1
    );
    assert!(h
        .deadlines
        .due(due, 10)
        .await
        .unwrap()
        .iter()
        .all(|d| d.key != key));
}

#[tokio::test]
async fn fired_but_not_completed_refires_harmlessly_in_memory() {
    fired_but_not_completed_refires_harmlessly(Harness::memory().await).await;
}

#[tokio::test]
async fn fired_but_not_completed_refires_harmlessly_on_postgres() {
    let db = TestDatabase::create().await;
    fired_but_not_completed_refires_harmlessly(Harness::postgres(&db).await).await;
}

#[tokio::test]
async fn deadlines_survive_a_restart_and_fire_once() {
    let db = TestDatabase::create().await;
    let mut h = Harness::postgres(&db).await;
    let order = h.created_order(1).await;
    h.caught_up().await;
    h.stop().await;
    // The process dies: its firer, stores and pools go away unfired.
    let firer = h.firer();
    drop(firer);
    drop(h);

    // A new process on the same database.
    let events: Arc<dyn EventStore> = Arc::new(
        PgEventStore::connect(PgStoreConfig::single(db.url.clone()))
            .await
            .expect("event store"),
    );
    let deadlines: Arc<dyn DeadlineStore> = Arc::new(PgDeadlineStore::new(db.pool(2)));
    assert_eq!(
        deadlines.count_open().await.unwrap(),
        2,
        "payment + reservation"
    );
    let executor = Executor::new(events.clone());
    let clock = ManualClock::at(at(0));
    let firer = DeadlineFirer::new(
        deadlines.clone(),
        executor.clone(),
        StockWriters::new(executor.clone()),
        Arc::new(clock),
        Wakeup::new(),
    );
    let config = CommandConfig::default();
    let due = after(config.payment_window);
    assert_eq!(firer.tick(due.minus_ms(1)).await.unwrap(), 0);
    assert_eq!(firer.tick(due).await.unwrap(), 1);
    assert_eq!(firer.tick(due).await.unwrap(), 0);
    let recorded = events
        .read_stream(&order.stream_id(), 1, 100)
        .await
        .unwrap();
    let cancels = recorded
        .iter()
        .filter(|e| e.event_type == "OrderCancelled")
        .count();
    assert_eq!(cancels, 1);
    let cancel = recorded.last().unwrap();
    assert_eq!(
        cancel.metadata.command_id.as_str(),
        format!("deadline:payment:{order}")
    );
    assert_eq!(cancel.metadata.actor, Actor::system("deadlines"));
    assert!(
        cancel.metadata.causation_id.is_some(),
        "caused by OrderCreated"
    );
    assert_eq!(
        deadlines.count_open().await.unwrap(),
        1,
        "the reservation is left"
    );
}

#[tokio::test]
async fn two_firers_on_one_postgres_fire_each_deadline_once() {
    let db = TestDatabase::create().await;
    let mut h = Harness::postgres(&db).await;
    let mut orders = Vec::new();
    for n in 1..=20 {
        orders.push(h.created_order(n).await);
    }
    h.caught_up().await;
    h.stop().await;
    // Given a second process with its own pools on the same database...
    let events: Arc<dyn EventStore> = Arc::new(
        PgEventStore::connect(PgStoreConfig::single(db.url.clone()))
            .await
            .expect("event store"),
    );
    let executor = Executor::new(events);
    let other = DeadlineFirer::new(
        Arc::new(PgDeadlineStore::new(db.pool(4))),
        executor.clone(),
        StockWriters::new(executor),
        Arc::new(h.clock.clone()),
        Wakeup::new(),
    );
    let ours = h.firer();
    // ...when both look for the 20 due payment deadlines at once...
    let due = after(h.config.payment_window);
    let (a, b) = tokio::join!(ours.tick(due), other.tick(due));
    let (a, b) = (a.unwrap(), b.unwrap());
    // ...each deadline is fired by one of them.
    assert_eq!(a + b, 20, "ours fired {a}, the other {b}");
    assert_eq!(
        ours.tick(due).await.unwrap() + other.tick(due).await.unwrap(),
        0
    );
    for order in &orders {
        let history = h.history(order).await;
        assert_eq!(
            history.iter().filter(|t| **t == "OrderCancelled").count(),
            1
        );
    }
}

#[tokio::test]
async fn closed_deadlines_past_the_retention_are_pruned() {
    let mut h = Harness::memory().await;
    let paid = h.created_order(1).await;
    let open = h.created_order(2).await;
    h.pay(&paid).await;
    h.caught_up().await;
    h.stop().await;
    let payment = |order_no: &OrderNo| {
        DeadlineKind::PaymentDue {
            order_no: order_no.clone(),
        }
        .key()
    };
    // The paid order's payment deadline is closed (cancelled), the other is open.
    assert!(!h.open_keys().await.contains(&payment(&paid).to_string()));
    let firer = h.firer().with_config(FirerConfig {
        retention: Duration::from_secs(3_600),
        prune_batch: 1,
        ..FirerConfig::default()
    });
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    assert_eq!(firer.prune(now).await.unwrap(), 0, "within the retention");
    let pruned = firer
        .prune(now.plus(Duration::from_secs(7_200)))
        .await
        .unwrap();
    assert!(pruned >= 1, "the closed payment deadline at least");
    // The pruned key is gone (it could be scheduled again), the open ones are kept.
    let again = Deadline::new(DeadlineKind::PaymentDue { order_no: paid }, at(0));
    assert!(h.deadlines.schedule(again).await.unwrap());
    assert!(h.open_keys().await.contains(&payment(&open).to_string()));
}

#[tokio::test]
async fn a_deadline_that_keeps_failing_is_parked_and_does_not_block_the_others() {
    let events: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let executor = Executor::new(events.clone());
    let store = Arc::new(MemoryDeadlineStore::new());
    // An order stream this binary cannot read.
    let broken = OrderNo::new(at(0), 1, buyer()).unwrap();
    events
        .append(AppendRequest {
            stream: broken.stream_id(),
            expected: ExpectedVersion::Exact(0),
            events: vec![NewEvent::new(
                "OrderSubmitted",
                1,
                serde_json::json!({"x": 1}),
            )],
            metadata: EventMetadata {
                command_id: CommandId::parse("garbage").unwrap(),
                correlation_id: CorrelationId::parse("garbage").unwrap(),
                causation_id: None,
                actor: Actor::new(Role::Admin, "1"),
                occurred_at: at(0),
            },
        })
        .await
        .unwrap();
    let bad = Deadline::new(DeadlineKind::PaymentDue { order_no: broken }, at(0));
    let fine = Deadline::new(
        DeadlineKind::CloseDue {
            order_no: OrderNo::new(at(0), 2, buyer()).unwrap(),
        },
        at(0),
    );
    store.schedule(bad.clone()).await.unwrap();
    store.schedule(fine.clone()).await.unwrap();
    let firer = DeadlineFirer::new(
        store.clone(),
        executor.clone(),
        StockWriters::new(executor),
        Arc::new(ManualClock::at(at(0))),
        Wakeup::new(),
    )
    .with_config(FirerConfig {
        max_attempts: 2,
        retry_base: Duration::from_secs(1),
        ..FirerConfig::default()
    });

    assert_eq!(firer.tick(at(0)).await.unwrap(), 2);
    // The fine one (an unknown order: moot) is done; the bad one waits a second.
    assert_eq!(store.count_open().await.unwrap(), 1);
    assert!(store.last_error(&bad.key).is_some());
    assert_eq!(firer.tick(at(999)).await.unwrap(), 0);
    assert_eq!(firer.tick(at(1_000)).await.unwrap(), 1);
    assert!(store.is_parked(&bad.key));
    assert_eq!(store.count_open().await.unwrap(), 0);
}
