//! The submit half's pipeline: a batch's first stage (merchant, reservations) runs while the
//! batch before still has its outcomes to write. Batches are held between the stages with
//! the test hooks' gate.

use std::sync::Arc;

use orderflow_domain::order::OrderStatus;
use orderflow_domain::FailureReason;
use tokio::sync::Semaphore;

use super::*;
use crate::saga::TestHooks;

/// A saga whose second stages wait at `gate`, and which panics after reserving the
/// `crash`-th batch if given.
fn held_saga(w: &World, gate: &Arc<Semaphore>, crash: Option<usize>) -> Saga {
    w.saga().with_hooks(TestHooks {
        crash_after_reserving: crash,
        outcomes_gate: Some(gate.clone()),
    })
}

/// Waits until `order` holds a reservation on `name` in the SKU's stream.
async fn wait_reserved(w: &World, name: &str, order: &OrderNo) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while w.sku_state(name).await.reservation(order).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{order} never reserved {name}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reserved_events(events: &[RecordedEvent], name: &str) -> usize {
    events
        .iter()
        .filter(|e| e.stream == sku(name).stream_id() && e.event_type == "StockReserved")
        .count()
}

#[tokio::test]
async fn later_batches_reserve_while_earlier_outcomes_are_written_first_come_first_served() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.dish(1, "latte", 1_500, 2).await;
    let gate = Arc::new(Semaphore::new(0));
    let saga = w.run(held_saga(&w, &gate, None));

    // Each order in a batch of its own: the next is submitted once the one before reserved.
    let first = w.submit(1, 1, vec![line("latte", 1, 1_500)]).await;
    wait_reserved(&w, "latte", &first).await;
    let second = w.submit(2, 1, vec![line("latte", 1, 1_500)]).await;
    // Reserved while the first order's outcome is still held back.
    wait_reserved(&w, "latte", &second).await;
    assert_eq!(w.status(&first).await, Some(OrderStatus::Creating));
    let third = w.submit(3, 1, vec![line("latte", 1, 1_500)]).await;

    gate.add_permits(Semaphore::MAX_PERMITS);
    assert_eq!(w.outcome(&first).await, (OrderStatus::Created, None));
    assert_eq!(w.outcome(&second).await, (OrderStatus::Created, None));
    // The last to come finds the stock gone.
    assert_eq!(
        w.outcome(&third).await,
        (OrderStatus::Failed, Some(FailureReason::OutOfStock))
    );
    saga.stop().await.unwrap();
    let latte = w.sku_state("latte").await;
    assert_eq!(latte.stock().reserved, 2);
    assert_identity(&latte);
    w.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_the_stages_resumes_both_batches_in_flight_without_reserving_twice() {
    let w = World::memory().await;
    w.open_merchant(1).await;
    w.dish(1, "latte", 1_500, 10).await;
    w.dish(1, "bagel", 800, 10).await;
    let gate = Arc::new(Semaphore::new(0));
    // Batch 1 is held before its outcome; batch 2 reserves, then the process dies.
    let crashing = w.run(held_saga(&w, &gate, Some(2)));
    let first = w
        .submit(1, 1, vec![line("latte", 2, 1_500), line("bagel", 1, 800)])
        .await;
    wait_reserved(&w, "bagel", &first).await;
    let second = w.submit(2, 1, vec![line("latte", 3, 1_500)]).await;
    let result = crashing.task.await.unwrap();
    assert!(matches!(result, Err(SagaError::Task(_))), "{result:?}");
    // The held outcome died with the process: opening the gate now writes nothing.
    gate.add_permits(Semaphore::MAX_PERMITS);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for order in [&first, &second] {
        assert_eq!(w.status(order).await, Some(OrderStatus::Creating));
    }
    assert_eq!(w.sku_state("latte").await.stock().reserved, 5);

    // Restarted from the checkpoint: both submissions come again and are finished from the
    // reservations already made.
    let saga = w.run(w.saga());
    assert_eq!(w.outcome(&first).await, (OrderStatus::Created, None));
    assert_eq!(w.outcome(&second).await, (OrderStatus::Created, None));
    saga.stop().await.unwrap();
    let events = w.all_events().await;
    assert_eq!(reserved_events(&events, "latte"), 2, "one per order");
    assert_eq!(reserved_events(&events, "bagel"), 1);
    for (name, reserved) in [("latte", 5), ("bagel", 1)] {
        let state = w.sku_state(name).await;
        assert_eq!(state.stock().reserved, reserved, "{name}");
        assert_identity(&state);
    }
    w.shutdown().await;
}
