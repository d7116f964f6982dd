//! The conformance suite of the [`DeadlineStore`] port: each check is a generic async fn,
//! and [`deadline_store_suite!`] expands to one test per check for an adapter, given an
//! async factory of a fresh, empty store.

use std::time::Duration;

use orderflow_domain::{OfferId, OrderNo, SkuId, Timestamp};
use orderflow_infra::store::{CausationId, CorrelationId};

use super::{Deadline, DeadlineCause, DeadlineKind, DeadlineStore};

macro_rules! deadline_store_suite {
    ($module:ident, $factory:expr) => {
        deadline_store_suite!(@checks $module, $factory;
            scheduled_deadline_is_due_at_its_time_and_not_before,
            due_is_oldest_first_and_bounded,
            scheduling_a_key_again_keeps_the_first,
            completed_key_is_never_due_nor_scheduled_again,
            cancelled_key_is_closed,
            postpone_moves_and_counts_failures,
            parked_deadline_is_closed,
            every_kind_round_trips_with_its_cause,
            count_open_and_next_due_follow_the_open_ones,
            claimed_deadlines_are_hidden_until_the_lease_ends,
            prune_deletes_only_closed_deadlines_in_bounded_batches,
            schedule_many_keeps_the_first_of_a_key,
            schedule_many_again_stores_nothing_new,
            schedule_many_leaves_closed_keys_closed,
            schedule_many_round_trips_every_kind_with_its_cause,
            cancel_many_closes_only_open_keys_once,
            schedule_many_then_cancel_many_of_a_key_closes_it,
        );
    };
    (@checks $module:ident, $factory:expr; $($check:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let store = $factory.await;
                    $crate::deadlines::conformance::$check(&store).await;
                }
            )*
        }
    };
}
pub(crate) use deadline_store_suite;

fn order(n: u32) -> OrderNo {
    OrderNo::parse(format!("2026112207000000000{n:04}07")).expect("test order number")
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_763_800_000_000 + ms)
}

fn payment(n: u32, due: i64) -> Deadline {
    Deadline::new(DeadlineKind::PaymentDue { order_no: order(n) }, t(due))
}

fn keys(deadlines: &[Deadline]) -> Vec<String> {
    deadlines.iter().map(|d| d.key.to_string()).collect()
}

pub async fn scheduled_deadline_is_due_at_its_time_and_not_before(store: &impl DeadlineStore) {
    assert!(store.schedule(payment(1, 1_000)).await.unwrap());
    assert!(store.due(t(999), 10).await.unwrap().is_empty());
    let due = store.due(t(1_000), 10).await.unwrap();
    assert_eq!(due, vec![payment(1, 1_000)]);
    // Reading does not consume: until completed it stays due.
    assert_eq!(store.due(t(5_000), 10).await.unwrap().len(), 1);
}

pub async fn due_is_oldest_first_and_bounded(store: &impl DeadlineStore) {
    for (n, due) in [(1, 300), (2, 100), (3, 200), (4, 900)] {
        store.schedule(payment(n, due)).await.unwrap();
    }
    let due = store.due(t(500), 10).await.unwrap();
    assert_eq!(keys(&due), [2, 3, 1].map(|n| payment(n, 0).key.to_string()));
    assert_eq!(store.due(t(500), 2).await.unwrap().len(), 2);
}

pub async fn scheduling_a_key_again_keeps_the_first(store: &impl DeadlineStore) {
    assert!(store.schedule(payment(1, 1_000)).await.unwrap());
    assert!(!store.schedule(payment(1, 50)).await.unwrap());
    assert!(store.due(t(999), 10).await.unwrap().is_empty());
    assert_eq!(store.due(t(1_000), 10).await.unwrap()[0].due_at, t(1_000));
}

pub async fn completed_key_is_never_due_nor_scheduled_again(store: &impl DeadlineStore) {
    let d = payment(1, 100);
    store.schedule(d.clone()).await.unwrap();
    assert!(store.complete(&d.key).await.unwrap());
    assert!(!store.complete(&d.key).await.unwrap(), "completes once");
    assert!(store.due(t(10_000), 10).await.unwrap().is_empty());
    // A replayed event: the key is closed for good.
    assert!(!store.schedule(d.clone()).await.unwrap());
    assert!(store.due(t(10_000), 10).await.unwrap().is_empty());
    assert!(store
        .postpone(&d.key, t(20_000), None)
        .await
        .unwrap()
        .is_none());
}

pub async fn cancelled_key_is_closed(store: &impl DeadlineStore) {
    let d = payment(1, 100);
    assert!(!store.cancel(&d.key).await.unwrap(), "unknown key");
    store.schedule(d.clone()).await.unwrap();
    assert!(store.cancel(&d.key).await.unwrap());
    assert!(!store.cancel(&d.key).await.unwrap());
    assert!(!store.complete(&d.key).await.unwrap());
    assert!(!store.schedule(d).await.unwrap());
    assert!(store.due(t(10_000), 10).await.unwrap().is_empty());
}

pub async fn postpone_moves_and_counts_failures(store: &impl DeadlineStore) {
    let d = payment(1, 100);
    store.schedule(d.clone()).await.unwrap();
    assert_eq!(store.postpone(&d.key, t(500), None).await.unwrap(), Some(0));
    assert!(store.due(t(499), 10).await.unwrap().is_empty());
    assert_eq!(
        store.postpone(&d.key, t(600), Some("boom")).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.postpone(&d.key, t(700), Some("boom")).await.unwrap(),
        Some(2)
    );
    let due = store.due(t(700), 10).await.unwrap();
    assert_eq!((due[0].due_at, due[0].attempts), (t(700), 2));
}

pub async fn parked_deadline_is_closed(store: &impl DeadlineStore) {
    let d = payment(1, 100);
    store.schedule(d.clone()).await.unwrap();
    assert!(store.park(&d.key, "cannot read the order").await.unwrap());
    assert!(!store.park(&d.key, "again").await.unwrap());
    assert!(store.due(t(10_000), 10).await.unwrap().is_empty());
    assert_eq!(store.count_open().await.unwrap(), 0);
    assert!(!store.schedule(d).await.unwrap());
}

pub async fn every_kind_round_trips_with_its_cause(store: &impl DeadlineStore) {
    let sku = SkuId::parse("latte-l").unwrap();
    let cause = DeadlineCause {
        correlation_id: CorrelationId::parse("corr-1").unwrap(),
        causation_id: Some(CausationId::parse("0192f2a4-event").unwrap()),
    };
    let kinds = [
        DeadlineKind::PaymentDue { order_no: order(1) },
        DeadlineKind::OfferExpires {
            order_no: order(1),
            offer_id: OfferId::parse("round-2").unwrap(),
        },
        DeadlineKind::DeliveryDue { order_no: order(1) },
        DeadlineKind::CloseDue { order_no: order(1) },
        DeadlineKind::ReservationExpires {
            sku,
            order_no: order(1),
        },
    ];
    let mut expected = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let mut d = Deadline::new(kind, t(i as i64 * 7 + 3));
        if i % 2 == 0 {
            d = d.caused_by(cause.clone());
        }
        assert!(store.schedule(d.clone()).await.unwrap());
        expected.push(d);
    }
    assert_eq!(store.due(t(1_000), 10).await.unwrap(), expected);
    let distinct: std::collections::HashSet<_> = expected.iter().map(|d| &d.key).collect();
    assert_eq!(distinct.len(), 5, "every kind has its own key");
}

pub async fn count_open_and_next_due_follow_the_open_ones(store: &impl DeadlineStore) {
    assert_eq!(store.count_open().await.unwrap(), 0);
    assert_eq!(store.next_due().await.unwrap(), None);
    for (n, due) in [(1, 300), (2, 100), (3, 200)] {
        store.schedule(payment(n, due)).await.unwrap();
    }
    assert_eq!(store.count_open().await.unwrap(), 3);
    assert_eq!(store.next_due().await.unwrap(), Some(t(100)));
    store.complete(&payment(2, 0).key).await.unwrap();
    store.cancel(&payment(3, 0).key).await.unwrap();
    assert_eq!(store.count_open().await.unwrap(), 1);
    assert_eq!(store.next_due().await.unwrap(), Some(t(300)));
}

pub async fn claimed_deadlines_are_hidden_until_the_lease_ends(store: &impl DeadlineStore) {
    for (n, due) in [(1, 300), (2, 100), (3, 200), (4, 5_000)] {
        store.schedule(payment(n, due)).await.unwrap();
    }
    let lease = Duration::from_secs(60);
    // Given a claim of two, oldest first, carrying their own due times...
    let first = store.claim(t(1_000), 2, lease).await.unwrap();
    assert_eq!(first, vec![payment(2, 100), payment(3, 200)]);
    // ...when another firer claims at the same time, it gets only the rest...
    let second = store.claim(t(1_000), 10, lease).await.unwrap();
    assert_eq!(second, vec![payment(1, 300)]);
    assert!(store.claim(t(1_000), 10, lease).await.unwrap().is_empty());
    // ...still open (a claim is not a firing), due again once the lease has run out.
    assert_eq!(store.count_open().await.unwrap(), 4);
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(t(5_000)),
        "the unclaimed one"
    );
    let expired = store.claim(t(1_000 + 60_000), 10, lease).await.unwrap();
    assert_eq!(expired.len(), 4, "the three leased and the one due at 5 s");
    // A completed claim is gone for good; a postponed one comes back at its new time.
    store.complete(&payment(1, 0).key).await.unwrap();
    store
        .postpone(&payment(2, 0).key, t(70_000), None)
        .await
        .unwrap();
    let later = store.claim(t(200_000), 10, lease).await.unwrap();
    assert_eq!(
        keys(&later),
        keys(&[payment(2, 0), payment(3, 0), payment(4, 0)])
    );
}

pub async fn prune_deletes_only_closed_deadlines_in_bounded_batches(store: &impl DeadlineStore) {
    for n in 1..=5 {
        store.schedule(payment(n, 100)).await.unwrap();
    }
    store.complete(&payment(1, 0).key).await.unwrap();
    store.cancel(&payment(2, 0).key).await.unwrap();
    store.park(&payment(3, 0).key, "boom").await.unwrap();
    // Closed just now: nothing is older than an hour ago.
    let hour_ago = crate::clock::Clock::now(&crate::clock::SystemClock).as_millis() - 3_600_000;
    assert_eq!(
        store
            .prune(Timestamp::from_millis(hour_ago), 10)
            .await
            .unwrap(),
        0
    );
    let future = Timestamp::from_millis(32_503_680_000_000); // year 3000
    assert_eq!(store.prune(future, 2).await.unwrap(), 2, "bounded");
    assert_eq!(store.prune(future, 10).await.unwrap(), 1);
    assert_eq!(store.prune(future, 10).await.unwrap(), 0);
    // The open ones stay, and a pruned key can be scheduled again.
    assert_eq!(store.count_open().await.unwrap(), 2);
    assert!(store.schedule(payment(1, 100)).await.unwrap());
}

pub async fn schedule_many_keeps_the_first_of_a_key(store: &impl DeadlineStore) {
    assert!(store.schedule(payment(3, 700)).await.unwrap());
    let stored = store
        .schedule_many(vec![
            payment(1, 1_000),
            payment(2, 500),
            payment(1, 50),
            payment(3, 10),
        ])
        .await
        .unwrap();
    assert_eq!(stored, [true, true, false, false]);
    // The first of key 1 in the batch, and the stored key 3, keep their times.
    assert!(store.due(t(499), 10).await.unwrap().is_empty());
    let due = store.due(t(10_000), 10).await.unwrap();
    assert_eq!(
        due,
        vec![payment(2, 500), payment(3, 700), payment(1, 1_000)]
    );
    assert!(store.schedule_many(Vec::new()).await.unwrap().is_empty());
}

pub async fn schedule_many_again_stores_nothing_new(store: &impl DeadlineStore) {
    let batch = || vec![payment(1, 100), payment(2, 200), payment(3, 300)];
    assert_eq!(store.schedule_many(batch()).await.unwrap(), [true; 3]);
    store.complete(&payment(2, 0).key).await.unwrap();
    // A redelivered batch: nothing stored, nothing moved, the closed one stays closed.
    let again = batch().into_iter().map(|d| Deadline { due_at: t(5), ..d });
    assert_eq!(
        store.schedule_many(again.collect()).await.unwrap(),
        [false; 3]
    );
    assert_eq!(store.count_open().await.unwrap(), 2);
    assert_eq!(
        store.due(t(10_000), 10).await.unwrap(),
        vec![payment(1, 100), payment(3, 300)]
    );
}

pub async fn schedule_many_leaves_closed_keys_closed(store: &impl DeadlineStore) {
    for n in 1..=3 {
        store.schedule(payment(n, 100)).await.unwrap();
    }
    store.complete(&payment(1, 0).key).await.unwrap();
    store.cancel(&payment(2, 0).key).await.unwrap();
    store.park(&payment(3, 0).key, "boom").await.unwrap();
    let stored = store
        .schedule_many((1..=4).map(|n| payment(n, 100)).collect())
        .await
        .unwrap();
    assert_eq!(stored, [false, false, false, true]);
    assert_eq!(
        keys(&store.due(t(10_000), 10).await.unwrap()),
        keys(&[payment(4, 0)])
    );
}

pub async fn schedule_many_round_trips_every_kind_with_its_cause(store: &impl DeadlineStore) {
    let cause = DeadlineCause {
        correlation_id: CorrelationId::parse("corr-2").unwrap(),
        causation_id: Some(CausationId::parse("0192f2a4-batch").unwrap()),
    };
    let no_causation = DeadlineCause {
        causation_id: None,
        ..cause.clone()
    };
    let kinds = [
        DeadlineKind::PaymentDue { order_no: order(2) },
        DeadlineKind::OfferExpires {
            order_no: order(2),
            offer_id: OfferId::parse("round-1").unwrap(),
        },
        DeadlineKind::DeliveryDue { order_no: order(2) },
        DeadlineKind::CloseDue { order_no: order(2) },
        DeadlineKind::ReservationExpires {
            sku: SkuId::parse("latte-l").unwrap(),
            order_no: order(2),
        },
    ];
    let batch: Vec<Deadline> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let d = Deadline::new(kind, t(i as i64 * 11 + 1));
            match i % 3 {
                0 => d.caused_by(cause.clone()),
                1 => d.caused_by(no_causation.clone()),
                _ => d,
            }
        })
        .collect();
    assert_eq!(store.schedule_many(batch.clone()).await.unwrap(), [true; 5]);
    assert_eq!(store.due(t(1_000), 10).await.unwrap(), batch);
}

pub async fn cancel_many_closes_only_open_keys_once(store: &impl DeadlineStore) {
    for n in 1..=3 {
        store.schedule(payment(n, 100)).await.unwrap();
    }
    store.complete(&payment(2, 0).key).await.unwrap();
    let ks = [1, 2, 9, 1, 3].map(|n| payment(n, 0).key);
    assert_eq!(
        store.cancel_many(&ks).await.unwrap(),
        [true, false, false, false, true],
        "open ones once; completed and unknown ones untouched"
    );
    assert_eq!(store.count_open().await.unwrap(), 0);
    // Cancelled, not fired: neither completes nor comes back.
    assert!(!store.complete(&payment(1, 0).key).await.unwrap());
    assert!(!store.schedule(payment(1, 100)).await.unwrap());
    assert_eq!(store.cancel_many(&ks).await.unwrap(), [false; 5]);
    assert!(store.cancel_many(&[]).await.unwrap().is_empty());
}

/// The scheduler's batch with an `OrderCreated` and the `OrderPaid` after it: the schedule
/// goes first, so the cancel finds the key; a redelivered batch revives nothing.
pub async fn schedule_many_then_cancel_many_of_a_key_closes_it(store: &impl DeadlineStore) {
    let batch = || vec![payment(1, 100), payment(2, 100)];
    assert_eq!(store.schedule_many(batch()).await.unwrap(), [true, true]);
    let paid = [payment(1, 0).key];
    assert_eq!(store.cancel_many(&paid).await.unwrap(), [true]);
    assert_eq!(store.schedule_many(batch()).await.unwrap(), [false, false]);
    assert_eq!(store.cancel_many(&paid).await.unwrap(), [false]);
    assert_eq!(
        keys(&store.due(t(10_000), 10).await.unwrap()),
        keys(&[payment(2, 0)])
    );
}
