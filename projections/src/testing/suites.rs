//! The cases of the read-model conformance suites, one public async fn each.

use std::future::Future;
use std::sync::Arc;

use orderflow_domain::order::{OrderCancelled, OrderStatus};
use orderflow_domain::{FailureReason, RiderId, Shard};
use orderflow_infra::store::Position;

use super::fixtures::*;
use crate::model::ProjectionModel;
use crate::orders::{Cursor, ListSide, OrderDetailReader, OrderListReader, OrderView, Owner};

// ---- order_detail -----------------------------------------------------------------------

pub async fn detail_shows_the_whole_lifecycle_with_its_timeline<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    // Given a late delivery, compensated and closed
    let mut log = Log::new();
    let no = order_no(0, 42);
    log.order(
        &no,
        submitted(&no, 42, 7, "Beef noodles", "88 Century Ave", 0),
    );
    late_delivery(&mut log, &no, 3);
    // When it is projected in small batches
    log.apply_to(model.as_ref(), 3).await;
    // Then the detail shows what happened
    let view = model
        .get(&no)
        .await
        .unwrap()
        .expect("the order is projected");
    assert_eq!(view.status, OrderStatus::Closed);
    assert_eq!(view.rider, Some(RiderId::new(3).unwrap()));
    assert!(view.late);
    assert_eq!(view.compensation, Some(cny(500)));
    assert_eq!(view.total, cny(5600));
    assert_eq!(view.lines[0].name.as_str(), "Beef noodles");
    assert_eq!(view.payment_deadline, Some(at(900_000)));
    assert_eq!(view.delivery_deadline, Some(at(1_800_040)));
    assert_eq!((view.created_at, view.updated_at), (at(0), at(1_900_020)));
    let timeline: Vec<_> = view.timeline.iter().map(|c| (c.status, c.at)).collect();
    assert_eq!(
        timeline,
        [
            (OrderStatus::Creating, at(0)),
            (OrderStatus::Created, at(10)),
            (OrderStatus::Paid, at(20)),
            (OrderStatus::Notified, at(30)),
            (OrderStatus::Delivering, at(40)),
            (OrderStatus::TimedOut, at(1_800_040)),
            (OrderStatus::Received, at(1_900_000)),
            (OrderStatus::Compensated, at(1_900_010)),
            (OrderStatus::Closed, at(1_900_020)),
        ]
    );
    assert_eq!(view.timeline[2].event_type, "OrderPaid");
    assert_eq!(view.version, 10);
}

pub async fn detail_repeated_and_overlapping_batches_change_nothing<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    let mut log = Log::new();
    let no = order_no(0, 42);
    log.order(
        &no,
        submitted(&no, 42, 7, "Beef noodles", "88 Century Ave", 0),
    );
    late_delivery(&mut log, &no, 3);
    let events = log.shard(no.shard());
    // Given the first six events applied
    model.apply(no.shard(), &events[..6]).await.unwrap();
    // When the same batch comes again, then an overlapping one, then everything again
    let repeat = model.apply(no.shard(), &events[..6]).await.unwrap();
    model.apply(no.shard(), &events[3..]).await.unwrap();
    let again = model.apply(no.shard(), &events).await.unwrap();
    // Then nothing is applied twice: the timeline has each change once
    assert!(repeat.changes.is_empty(), "a repeated batch changes no row");
    assert!(again.changes.is_empty());
    let view = model.get(&no).await.unwrap().unwrap();
    assert_eq!(view.timeline.len(), 9, "{:?}", view.timeline);
    assert_eq!(view.status, OrderStatus::Closed);
    let checkpoints = model.checkpoints().await.unwrap();
    assert_eq!(checkpoints[&no.shard()], Position::new(10));
}

pub async fn detail_checkpoints_move_per_shard_with_the_rows<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    let mut log = Log::new();
    let (a, b) = (order_no(0, 33), order_no(1, 34)); // shards 1 and 2
    log.order(&a, submitted(&a, 33, 7, "Tea", "1 Road", 0));
    log.order(&b, submitted(&b, 34, 7, "Tea", "1 Road", 1));
    log.order(&b, created(5));
    // A merchant event on some shard only moves that shard.
    log.merchant(merchant(7), opened("Noodle Bar"));
    log.apply_to(model.as_ref(), 100).await;
    let checkpoints = model.checkpoints().await.unwrap();
    assert_eq!(checkpoints[&Shard::new(1).unwrap()], Position::new(1));
    assert_eq!(checkpoints[&Shard::new(2).unwrap()], Position::new(2));
    let merchant_shard = merchant(7).stream_id().shard();
    assert!(checkpoints[&merchant_shard] >= Position::new(1));
    assert_eq!(
        model.get(&b).await.unwrap().unwrap().status,
        OrderStatus::Created
    );
}

pub async fn detail_failed_order_keeps_its_reason<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    let mut log = Log::new();
    let (f, c) = (order_no(0, 5), order_no(1, 5));
    log.order(&f, submitted(&f, 5, 7, "Tea", "1 Road", 0));
    log.order(&f, failed(3));
    log.order(&c, submitted(&c, 5, 7, "Tea", "1 Road", 1));
    log.order(&c, created(4));
    log.order(
        &c,
        OrderCancelled {
            cause: buyer_cancel(),
            at: at(9),
        },
    );
    let r = order_no(2, 5);
    log.order(
        &r,
        refused(
            submitted(&r, 5, 7, "Tea", "1 Road", 2),
            FailureReason::DishDelisted,
        ),
    );
    log.apply_to(model.as_ref(), 2).await;
    let failed = model.get(&f).await.unwrap().unwrap();
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.failure, Some(FailureReason::OutOfStock));
    // Refused as it was submitted: FAILED from its one event, both changes in the timeline.
    let refused = model.get(&r).await.unwrap().unwrap();
    assert_eq!(
        (refused.status, refused.failure),
        (OrderStatus::Failed, Some(FailureReason::DishDelisted))
    );
    let timeline: Vec<_> = refused
        .timeline
        .iter()
        .map(|c| (c.status, c.at, c.event_type.as_str()))
        .collect();
    assert_eq!(
        timeline,
        [
            (OrderStatus::Creating, at(2), "OrderRefused"),
            (OrderStatus::Failed, at(2), "OrderRefused")
        ]
    );
    let cancelled = model.get(&c).await.unwrap().unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.failure, None);
    assert!(model.get(&order_no(9, 5)).await.unwrap().is_none());
}

pub async fn detail_search_matches_dishes_address_number_and_merchant_name<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    let mut log = Log::new();
    let (a, b, c) = (order_no(0, 1), order_no(1, 2), order_no(2, 3));
    // The merchant is named after its orders are projected on other shards: still found.
    log.order(&a, submitted(&a, 1, 7, "Beef noodles", "88 Century Ave", 0));
    log.order(&b, submitted(&b, 2, 8, "Green tea", "12 Nanjing Road", 1));
    log.order(&c, submitted(&c, 3, 7, "Green tea", "5 Century Ave", 2));
    log.merchant(merchant(7), opened("Lanzhou Kitchen"));
    log.merchant(merchant(8), opened("Tea House"));
    log.merchant(merchant(8), renamed("Leaf Corner"));
    log.apply_to(model.as_ref(), 10).await;
    let found = |text: &str| {
        let (model, text) = (model.clone(), text.to_owned());
        async move {
            let page = model.search(&text, None, 10).await.unwrap();
            page.orders
                .into_iter()
                .map(|v| v.order_no)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("noodles").await, vec![a.clone()]);
    assert_eq!(
        found("green TEA").await,
        [c.clone(), b.clone()],
        "newest first"
    );
    assert_eq!(found("century").await, [c.clone(), a.clone()]);
    assert_eq!(found("lanzhou").await, [c.clone(), a.clone()]);
    assert_eq!(
        found("lanzhou tea").await,
        vec![c.clone()],
        "every word must match"
    );
    assert_eq!(
        found("leaf").await,
        vec![b.clone()],
        "the merchant's current name"
    );
    assert!(found("house").await.is_empty(), "not its old name");
    assert_eq!(found(b.as_str()).await, vec![b.clone()]);
    assert!(found("sushi").await.is_empty());
    assert!(found("  ").await.is_empty());
}

pub async fn detail_search_finds_an_order_after_its_status_changes<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    // Given an order projected at submission, then its later events in batches of their own
    // (the stored row is updated; its search text came with the submission)
    let mut log = Log::new();
    let no = order_no(0, 42);
    log.order(
        &no,
        submitted(&no, 42, 7, "Beef noodles", "88 Century Ave", 0),
    );
    log.apply_to(model.as_ref(), 10).await;
    late_delivery(&mut log, &no, 3);
    log.merchant(merchant(7), opened("Lanzhou Kitchen"));
    log.apply_to(model.as_ref(), 1).await;
    // Then every word of it still finds the order, showing its latest state
    for text in ["beef noodles", "century", no.as_str(), "lanzhou noodles"] {
        let page = model.search(text, None, 10).await.unwrap();
        let found: Vec<_> = page
            .orders
            .iter()
            .map(|v| (v.order_no.clone(), v.status))
            .collect();
        assert_eq!(found, vec![(no.clone(), OrderStatus::Closed)], "{text}");
    }
    assert!(model
        .search("closed", None, 10)
        .await
        .unwrap()
        .orders
        .is_empty());
}

pub async fn detail_search_pages_newest_first<M>(model: Arc<M>)
where
    M: ProjectionModel + OrderDetailReader,
{
    let mut log = Log::new();
    let numbers: Vec<_> = (0..5).map(|i| order_no(i * 10, 100 + i)).collect();
    for (i, no) in numbers.iter().enumerate() {
        log.order(
            no,
            submitted(no, 100 + i as i64, 7, "Dumplings", "1 Road", i as i64 * 10),
        );
    }
    log.apply_to(model.as_ref(), 10).await;
    let first = model.search("dumplings", None, 2).await.unwrap();
    let second = model
        .search("dumplings", first.next.as_ref(), 2)
        .await
        .unwrap();
    let third = model
        .search("dumplings", second.next.as_ref(), 2)
        .await
        .unwrap();
    let seen: Vec<_> = [first, second, third.clone()]
        .into_iter()
        .flat_map(|p| p.orders)
        .map(|v| v.order_no)
        .collect();
    let newest_first: Vec<_> = numbers.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert_eq!(third.next, None, "the last page says so");
}

// ---- buyer_order / seller_order ---------------------------------------------------------

fn numbers(page: &[OrderView]) -> Vec<String> {
    page.iter().map(|v| v.order_no.to_string()).collect()
}

pub async fn lists_hold_each_owners_orders_newest_first<F, Fut, M>(factory: F)
where
    F: Fn(ListSide) -> Fut,
    Fut: Future<Output = Arc<M>>,
    M: ProjectionModel + OrderListReader,
{
    let (buyers, sellers) = (
        factory(ListSide::Buyer).await,
        factory(ListSide::Seller).await,
    );
    let mut log = Log::new();
    let a = order_no(0, 42);
    let b = order_no(1, 42);
    let c = order_no(2, 43);
    log.order(&a, submitted(&a, 42, 7, "Tea", "1 Road", 0));
    log.order(&b, submitted(&b, 42, 8, "Tea", "1 Road", 1));
    log.order(&c, submitted(&c, 43, 7, "Tea", "1 Road", 2));
    log.apply_to(buyers.as_ref(), 10).await;
    log.apply_to(sellers.as_ref(), 10).await;
    let list = |m: &Arc<M>, owner| {
        let m = m.clone();
        async move { m.list(owner, &[], None, 10).await.unwrap() }
    };
    let b42 = list(&buyers, Owner::Buyer(buyer(42))).await;
    assert_eq!(numbers(&b42.orders), [b.to_string(), a.to_string()]);
    assert_eq!(b42.next, None);
    let m7 = list(&sellers, Owner::Merchant(merchant(7))).await;
    assert_eq!(numbers(&m7.orders), [c.to_string(), a.to_string()]);
    assert!(list(&buyers, Owner::Buyer(buyer(44)))
        .await
        .orders
        .is_empty());
    assert!(
        list(&buyers, Owner::Merchant(merchant(7)))
            .await
            .orders
            .is_empty(),
        "a buyer list holds no merchant's orders"
    );
    assert_eq!(buyers.name(), "buyer_order");
    assert_eq!(sellers.name(), "seller_order");
}

pub async fn lists_filter_by_status<F, Fut, M>(factory: F)
where
    F: Fn(ListSide) -> Fut,
    Fut: Future<Output = Arc<M>>,
    M: ProjectionModel + OrderListReader,
{
    let buyers = factory(ListSide::Buyer).await;
    let mut log = Log::new();
    let (a, b, c) = (order_no(0, 42), order_no(1, 42), order_no(2, 42));
    for (i, no) in [&a, &b, &c].into_iter().enumerate() {
        log.order(no, submitted(no, 42, 7, "Tea", "1 Road", i as i64));
    }
    log.order(&a, created(10));
    log.order(&a, paid(11));
    log.order(&b, failed(12));
    // Refused at submit: listed as FAILED from the start.
    let d = order_no(3, 42);
    let refusal = refused(
        submitted(&d, 42, 7, "Tea", "1 Road", 3),
        FailureReason::OutOfStock,
    );
    log.order(&d, refusal);
    log.apply_to(buyers.as_ref(), 2).await;
    let owner = Owner::Buyer(buyer(42));
    let paid_or_failed = buyers
        .list(owner, &[OrderStatus::Paid, OrderStatus::Failed], None, 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(&paid_or_failed.orders),
        [d.to_string(), b.to_string(), a.to_string()]
    );
    let creating = buyers
        .list(owner, &[OrderStatus::Creating], None, 10)
        .await
        .unwrap();
    assert_eq!(numbers(&creating.orders), [c.to_string()]);
}

pub async fn lists_page_stably_while_new_orders_arrive<F, Fut, M>(factory: F)
where
    F: Fn(ListSide) -> Fut,
    Fut: Future<Output = Arc<M>>,
    M: ProjectionModel + OrderListReader,
{
    let buyers = factory(ListSide::Buyer).await;
    let owner = Owner::Buyer(buyer(42));
    let mut log = Log::new();
    let old: Vec<_> = (0..5).map(|i| order_no(i * 10, 42)).collect();
    for (i, no) in old.iter().enumerate() {
        log.order(no, submitted(no, 42, 7, "Tea", "1 Road", i as i64 * 10));
    }
    log.apply_to(buyers.as_ref(), 100).await;
    // Given the first page read
    let first = buyers.list(owner, &[], None, 2).await.unwrap();
    // When new orders arrive (and old ones change) before the next page
    let mut more = log;
    for i in 0..3 {
        let no = order_no(1_000 + i, 42);
        more.order(&no, submitted(&no, 42, 7, "Tea", "1 Road", 1_000 + i));
    }
    more.order(&old[1], created(2_000));
    more.apply_to(buyers.as_ref(), 100).await;
    let cursor: Option<Cursor> = first.next.clone();
    let second = buyers.list(owner, &[], cursor.as_ref(), 2).await.unwrap();
    let third = buyers
        .list(owner, &[], second.next.as_ref(), 2)
        .await
        .unwrap();
    // Then the walk sees every old order once, in order, and none of the new ones
    let walked: Vec<_> = [first, second, third.clone()]
        .into_iter()
        .flat_map(|p| p.orders)
        .map(|v| v.order_no.to_string())
        .collect();
    let expected: Vec<_> = old.iter().rev().map(|n| n.to_string()).collect();
    assert_eq!(walked, expected);
    assert_eq!(third.next, None);
    let top = buyers.list(owner, &[], None, 3).await.unwrap();
    assert_eq!(
        top.orders[0].order_no,
        order_no(1_002, 42),
        "new orders are on top"
    );
}

pub async fn lists_repeated_batches_change_nothing<F, Fut, M>(factory: F)
where
    F: Fn(ListSide) -> Fut,
    Fut: Future<Output = Arc<M>>,
    M: ProjectionModel + OrderListReader,
{
    let sellers = factory(ListSide::Seller).await;
    let mut log = Log::new();
    let no = order_no(0, 42);
    log.order(&no, submitted(&no, 42, 7, "Tea", "1 Road", 0));
    late_delivery(&mut log, &no, 3);
    log.apply_to(sellers.as_ref(), 4).await;
    log.apply_to(sellers.as_ref(), 3).await;
    let events = log.shard(no.shard());
    assert!(sellers
        .apply(no.shard(), &events)
        .await
        .unwrap()
        .changes
        .is_empty());
    let page = sellers
        .list(Owner::Merchant(merchant(7)), &[], None, 10)
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 1);
    assert_eq!(page.orders[0].timeline.len(), 9);
    assert_eq!(page.orders[0].status, OrderStatus::Closed);
}
