//! The scheduler's batches: one fetch's events in a few store calls, with the effect of
//! handling them one by one in order.

use orderflow_infra::store::RecordedEvent;

use super::faulty::FaultyStore;
use super::*;

/// A scheduler of its own on a fresh memory store (the harness's scheduler fills
/// `h.deadlines` beside it), fed by hand.
fn fresh() -> (DeadlineScheduler, Arc<MemoryDeadlineStore>) {
    let store = Arc::new(MemoryDeadlineStore::new());
    let scheduler = DeadlineScheduler::new(store.clone(), Duration::from_secs(60), Wakeup::new());
    (scheduler, store)
}

async fn events_of(h: &Harness, stream: &orderflow_domain::StreamId) -> Vec<RecordedEvent> {
    h.events.read_stream(stream, 1, 1_000).await.expect("read")
}

fn all_ok(results: &[Result<(), DeadlineError>]) -> bool {
    results.iter().all(Result::is_ok)
}

#[tokio::test]
async fn a_batch_opens_and_closes_windows_as_its_events_ask() {
    let mut h = Harness::memory().await;
    let paid = h.created_order(1).await;
    h.pay(&paid).await;
    let unpaid = h.created_order(2).await;
    h.stop().await;
    let mut batch = events_of(&h, &paid.stream_id()).await;
    batch.extend(events_of(&h, &unpaid.stream_id()).await);
    batch.extend(events_of(&h, &sku().stream_id()).await);
    let (scheduler, store) = fresh();

    assert!(all_ok(&scheduler.apply_batch(&batch).await));
    let expected = vec![
        format!("payment:{unpaid}"),
        format!("reservation:{}:{paid}", sku()),
        format!("reservation:{}:{unpaid}", sku()),
    ];
    assert_eq!(open_keys_of(&*store).await, expected);
    // Created then paid in one batch: scheduled, then cancelled (closed for good).
    assert!(!store
        .schedule(Deadline::new(
            DeadlineKind::PaymentDue { order_no: paid },
            at(0)
        ))
        .await
        .unwrap());

    // Redelivered (a crash before the checkpoint), whole or one by one: nothing changes.
    assert!(all_ok(&scheduler.apply_batch(&batch).await));
    for event in &batch {
        assert!(all_ok(
            &scheduler.apply_batch(std::slice::from_ref(event)).await
        ));
    }
    assert_eq!(open_keys_of(&*store).await, expected);
}

/// A cancel before a schedule of the same key in one batch must not be reordered after it:
/// one by one, the cancel finds nothing and the schedule stores the key.
#[tokio::test]
async fn a_cancel_before_a_schedule_of_its_key_stays_before_it() {
    let mut h = Harness::memory().await;
    let order_no = h.created_order(1).await;
    h.pay(&order_no).await;
    h.stop().await;
    let events = events_of(&h, &order_no.stream_id()).await;
    let created = events
        .iter()
        .find(|e| e.event_type == "OrderCreated")
        .unwrap();
    let paid = events.iter().find(|e| e.event_type == "OrderPaid").unwrap();
    let (scheduler, store) = fresh();

    let results = scheduler
        .apply_batch(&[paid.clone(), created.clone(), paid.clone()])
        .await;
    assert!(all_ok(&results));
    // paid: nothing to cancel; created: stored; paid again: cancelled.
    assert!(open_keys_of(&*store).await.is_empty());

    let (scheduler, store) = fresh();
    assert!(all_ok(
        &scheduler
            .apply_batch(&[paid.clone(), created.clone()])
            .await
    ));
    assert_eq!(open_keys_of(&*store).await, [format!("payment:{order_no}")]);
}

/// A store call that fails fails the events whose work it carried (so the consumer hands
/// them again), not the events that ask nothing; handing them again finishes the work.
#[tokio::test]
async fn a_failed_store_call_fails_the_events_it_carried_and_a_retry_finishes_them() {
    let mut h = Harness::memory().await;
    let order_no = h.created_order(1).await;
    h.pay(&order_no).await;
    h.stop().await;
    let events = events_of(&h, &order_no.stream_id()).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["OrderSubmitted", "OrderCreated", "OrderPaid"]);
    // A store whose `cancel_many` fails (after the schedules of the same segment went
    // through, the worst place to fail).
    let store = Arc::new(FaultyStore::over(Arc::new(MemoryDeadlineStore::new())));
    store
        .cancels_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let scheduler = DeadlineScheduler::new(store.clone(), Duration::from_secs(60), Wakeup::new());

    let results = scheduler.apply_batch(&events).await;
    let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
    assert_eq!(failed, [false, true, true], "submitted asks nothing");
    // The schedule went through before the cancel failed: open until the retry.
    assert_eq!(store.inner.count_open().await.unwrap(), 1);

    store
        .cancels_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(all_ok(&scheduler.apply_batch(&events[1..]).await));
    assert_eq!(store.inner.count_open().await.unwrap(), 0);
}
