//! The read side through gRPC, on PostgreSQL + NATS with every process manager running: each
//! order view shows what happened, long-polls and watches follow the saga, paging holds
//! while orders arrive, read-your-writes, authorization, and a projector killed mid-batch.

use std::collections::HashSet;
use std::time::Duration;

use orderflow_domain::order::OrderStatus;
use orderflow_domain::OrderNo;
use orderflow_infra::store::ConsistencyToken;
use orderflow_tests::v1 as pb;
use orderflow_tests::*;
use tonic::Code;

mod read_side_support;
use read_side_support::*;

const SHOP: i64 = 7;
const SKU: &str = "noodles-L";
const PRICE: i64 = 2_800;
const BUYER: i64 = 42;
const RIDER: i64 = 31;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_view_shows_a_late_delivery_compensated_and_closed() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    app.rider_online(RIDER, north_of_merchant(500.0), 3).await?;
    let mut offers = app.offers_to(RIDER).await?;
    // Given an order delivered late, compensated and closed
    let order_no = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    let created_at = app.now();
    app.advance(Duration::from_secs(60));
    app.pay(&order_no, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Notified)
        .await?;
    let offer = offers.next(WAIT).await?;
    let rider = app.rider(RIDER);
    rider
        .grab_order(grab_request(RIDER, &order_no, &offer.offer_id))
        .await?;
    rider
        .pick_up(pb::PickUpRequest {
            request_id: rid(),
            rider_id: RIDER,
            order_no: order_no.clone(),
        })
        .await?;
    app.advance(app.app.config().delivery_sla + Duration::from_secs(1));
    app.wait_for_status(&order_no, OrderStatus::TimedOut)
        .await?;
    rider
        .confirm_delivery(pb::ConfirmDeliveryRequest {
            request_id: rid(),
            rider_id: RIDER,
            order_no: order_no.clone(),
        })
        .await?;
    app.ops()
        .compensate(pb::CompensateRequest {
            request_id: rid(),
            order_no: order_no.clone(),
            amount: Some(money(1_000)),
            reason: "late delivery".into(),
        })
        .await?;
    let closed = app
        .ops()
        .close_order(pb::CloseOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
        })
        .await?;

    // When the buyer reads it with the last command's token
    let order = app
        .buyer_queries(BUYER)
        .get_order(pb::GetOrderRequest {
            order_no: order_no.clone(),
            consistency_token: closed.consistency_token.clone(),
        })
        .await?;
    // Then the detail shows the whole story
    assert_eq!(order.status(), pb::OrderStatus::Closed);
    assert_eq!(order.rider_id, RIDER);
    assert!(order.late);
    assert_eq!(
        order.compensation.as_ref().map(|m| m.minor_units),
        Some(1_000)
    );
    assert_eq!(order.total.as_ref().map(|m| m.minor_units), Some(PRICE));
    assert_eq!(order.lines.len(), 1);
    assert_eq!(order.lines[0].sku_id, SKU);
    assert!(order.payment_deadline.is_some() && order.delivery_deadline.is_some());
    assert_eq!(
        statuses(&order),
        [
            pb::OrderStatus::Creating,
            pb::OrderStatus::Created,
            pb::OrderStatus::Paid,
            pb::OrderStatus::Notified,
            pb::OrderStatus::Delivering,
            pb::OrderStatus::TimedOut,
            pb::OrderStatus::Received,
            pb::OrderStatus::Compensated,
            pb::OrderStatus::Closed,
        ]
    );
    // The lists show it too, once each has applied the same position.
    let mine = app
        .buyer_queries(BUYER)
        .list_buyer_orders(pb::ListBuyerOrdersRequest {
            buyer_id: BUYER,
            consistency_token: closed.consistency_token.clone(),
            ..Default::default()
        })
        .await?;
    assert_eq!(mine.orders.len(), 1);
    assert_eq!(
        mine.orders[0], order,
        "the buyer's list holds the same view"
    );
    let shop = app
        .merchant_queries(SHOP)
        .list_seller_orders(pb::ListSellerOrdersRequest {
            merchant_id: SHOP,
            consistency_token: closed.consistency_token.clone(),
            ..Default::default()
        })
        .await?;
    assert_eq!(shop.orders, vec![order.clone()]);
    // Search finds it by dish, merchant name and number.
    let ops = app.ops_queries();
    for text in [
        format!("dish {SKU}"),
        format!("Shop {SHOP}"),
        order_no.clone(),
    ] {
        let found = ops
            .search_orders(pb::SearchOrdersRequest {
                query: text.clone(),
                ..Default::default()
            })
            .await?;
        assert_eq!(numbers(&found), vec![order_no.clone()], "search {text:?}");
    }
    // The audit trail is every event, with who did it.
    let history = ops
        .get_order_history(pb::GetOrderHistoryRequest {
            order_no: order_no.clone(),
        })
        .await?;
    let (_, events) = app.order(&order_no).await?;
    assert_eq!(history.events.len(), events.len());
    assert_eq!(history.events[0].event_type, "OrderSubmitted");
    let submitted = &history.events[0];
    assert_eq!(
        submitted.actor.as_ref().map(|a| a.subject.as_str()),
        Some(BUYER.to_string().as_str())
    );
    assert!(!submitted.command_id.is_empty() && !submitted.correlation_id.is_empty());
    assert!(submitted.payload_json.contains(&order_no));
    // As of just after creation, it was CREATED.
    let then = ops
        .get_order_as_of(pb::GetOrderAsOfRequest {
            order_no: order_no.clone(),
            as_of: Some(timestamp(created_at)),
        })
        .await?;
    assert_eq!(then.status(), pb::OrderStatus::Created);
    assert_eq!(then.timeline.len(), 2);

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_show_a_cancel_refunded_payment_and_a_failed_submit() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 2).await?;
    // Given an order cancelled by its buyer, then paid anyway (recorded and refunded)
    let order_no = app.submit(BUYER, SHOP, SKU, 2, PRICE).await?;
    app.wait_for_status(&order_no, OrderStatus::Created).await?;
    app.buyer(BUYER)
        .cancel_order(pb::CancelOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
            reason: "changed my mind".into(),
        })
        .await?;
    let paid = app
        .payment_provider()
        .confirm_payment(pay_request(rid(), &order_no, "txn-late", 2 * PRICE))
        .await?;
    // And a submit the stock cannot cover (the first order's release may not be in yet:
    // ask for more than there ever was)
    let failed = app.submit(BUYER, SHOP, SKU, 3, PRICE).await?;
    app.wait_for_status(&failed, OrderStatus::Failed).await?;
    let failed_token = order_token(&app, &failed).await?;

    // Then the detail shows the cancel and the refund
    let buyer = app.buyer_queries(BUYER);
    let order = buyer
        .get_order(pb::GetOrderRequest {
            order_no: order_no.clone(),
            consistency_token: paid.consistency_token.clone(),
        })
        .await?;
    assert_eq!(order.status(), pb::OrderStatus::Cancelled);
    assert_eq!(
        order.refunded.as_ref().map(|m| m.minor_units),
        Some(2 * PRICE)
    );
    assert_eq!(
        statuses(&order),
        [
            pb::OrderStatus::Creating,
            pb::OrderStatus::Created,
            pb::OrderStatus::Cancelled
        ]
    );
    // And the buyer's list, filtered by status, shows the failure with its reason
    let failures = buyer
        .list_buyer_orders(pb::ListBuyerOrdersRequest {
            buyer_id: BUYER,
            statuses: vec![pb::OrderStatus::Failed.into()],
            consistency_token: failed_token,
            ..Default::default()
        })
        .await?;
    assert_eq!(numbers(&failures), vec![failed.clone()]);
    assert_eq!(
        failures.orders[0].failure_reason(),
        pb::FailureReason::OutOfStock
    );

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_created_long_poll_answers_once_the_saga_decides() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 1).await?;
    let buyer = app.buyer_queries(BUYER);
    // Given a submitted order, when the buyer long-polls at once
    let order_no = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    let reply = buyer
        .is_created(pb::IsCreatedRequest {
            order_no: order_no.clone(),
            wait_ms: 30_000,
        })
        .await?;
    // Then it answers CREATED (the long-poll returned on the saga's decision)
    assert_eq!(reply.state(), pb::CreationState::Created);
    assert_eq!(reply.order_no, order_no);
    // And an order the stock cannot cover answers FAILED with its reason
    let too_many = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    let reply = buyer
        .is_created(pb::IsCreatedRequest {
            order_no: too_many.clone(),
            wait_ms: 30_000,
        })
        .await?;
    assert_eq!(reply.state(), pb::CreationState::Failed);
    assert_eq!(reply.failure_reason(), pb::FailureReason::OutOfStock);
    // wait_ms = 0 answers at once with what the view holds.
    let now = buyer
        .is_created(pb::IsCreatedRequest {
            order_no,
            wait_ms: 0,
        })
        .await?;
    assert_eq!(now.state(), pb::CreationState::Created);

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_starts_with_the_current_status_and_follows_the_changes() -> anyhow::Result<()>
{
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 5).await?;
    let order_no = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    let created = app
        .buyer_queries(BUYER)
        .is_created(pb::IsCreatedRequest {
            order_no: order_no.clone(),
            wait_ms: 30_000,
        })
        .await?;
    assert_eq!(created.state(), pb::CreationState::Created);
    // Given a watch opened on a created order
    let mut updates = app.buyer_queries(BUYER).watch_order(&order_no).await?;
    let first = QueryClient::next_update(&mut updates)
        .await?
        .expect("the current status");
    assert_eq!(first.status(), pb::OrderStatus::Created);
    // When the buyer cancels it
    app.buyer(BUYER)
        .cancel_order(pb::CancelOrderRequest {
            request_id: rid(),
            order_no: order_no.clone(),
            reason: "changed my mind".into(),
        })
        .await?;
    // Then the watch sees CANCELLED, and ends there (a terminal status)
    let next = QueryClient::next_update(&mut updates)
        .await?
        .expect("the cancel");
    assert_eq!(next.status(), pb::OrderStatus::Cancelled);
    assert_eq!(next.event_type, "OrderCancelled");
    assert!(QueryClient::next_update(&mut updates).await?.is_none());

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_with_a_commands_token() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    // Given a submit's answer
    let reply = app
        .buyer(BUYER)
        .submit_order(submit_request(rid(), BUYER, SHOP, SKU, 1, PRICE))
        .await?;
    // When the buyer reads with its token, the order is there, every time
    let buyer = app.buyer_queries(BUYER);
    let order = buyer
        .get_order(pb::GetOrderRequest {
            order_no: reply.order_no.clone(),
            consistency_token: reply.consistency_token.clone(),
        })
        .await?;
    assert_eq!(order.order_no, reply.order_no);
    let mine = buyer
        .list_buyer_orders(pb::ListBuyerOrdersRequest {
            buyer_id: BUYER,
            consistency_token: reply.consistency_token.clone(),
            ..Default::default()
        })
        .await?;
    assert_eq!(numbers(&mine), vec![reply.order_no.clone()]);
    // A token the store never issued that far is UNAVAILABLE, saying how far behind.
    let token = ConsistencyToken::parse(&reply.consistency_token)?;
    let ahead = ConsistencyToken::new(
        token.shard,
        orderflow_infra::store::Position::new(token.position.get() + 1_000_000),
    );
    let refused = buyer
        .get_order(pb::GetOrderRequest {
            order_no: reply.order_no.clone(),
            consistency_token: ahead.to_string(),
        })
        .await
        .expect_err("a position never reached");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("behind"),
        "{}",
        refused.message()
    );
    let garbage = buyer
        .get_order(pb::GetOrderRequest {
            order_no: reply.order_no,
            consistency_token: "not-a-token".into(),
        })
        .await
        .expect_err("a foreign token");
    assert_eq!(garbage.code(), Code::InvalidArgument);

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_while_new_orders_arrive() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 100).await?;
    let buyer = app.buyer_queries(BUYER);
    // Given five orders, each a millisecond of the test clock apart
    let mut old = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let reply = app
            .buyer(BUYER)
            .submit_order(submit_request(rid(), BUYER, SHOP, SKU, 1, PRICE))
            .await?;
        old.push(reply.order_no);
        token = reply.consistency_token;
        app.advance(Duration::from_millis(1));
    }
    let page = |page_token: String, consistency_token: String| {
        buyer.list_buyer_orders(pb::ListBuyerOrdersRequest {
            buyer_id: BUYER,
            page_size: 2,
            page_token,
            statuses: vec![],
            consistency_token,
        })
    };
    // When the buyer walks its list two at a time while new orders arrive in between
    let mut walked = Vec::new();
    let mut next = String::new();
    let mut newest = token.clone();
    loop {
        let reply = page(next.clone(), newest.clone()).await?;
        walked.extend(numbers(&reply));
        next = reply.next_page_token;
        if next.is_empty() {
            break;
        }
        let arrived = app
            .buyer(BUYER)
            .submit_order(submit_request(rid(), BUYER, SHOP, SKU, 1, PRICE))
            .await?;
        newest = arrived.consistency_token;
        app.advance(Duration::from_millis(1));
    }
    // Then it saw every old order once, newest first, and none of the new ones
    let expected: Vec<_> = old.iter().rev().cloned().collect();
    assert_eq!(walked, expected);
    // And the new ones are on top of a fresh first page.
    let top = page(String::new(), newest).await?;
    assert!(!old.contains(&top.orders[0].order_no));

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_refusals_on_every_query() -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    let reply = app
        .buyer(BUYER)
        .submit_order(submit_request(rid(), BUYER, SHOP, SKU, 1, PRICE))
        .await?;
    let order_no = reply.order_no.clone();
    // The owner can read it (so refusals below are about the caller, not a missing row).
    app.buyer_queries(BUYER)
        .get_order(pb::GetOrderRequest {
            order_no: order_no.clone(),
            consistency_token: reply.consistency_token.clone(),
        })
        .await?;
    let no_token = app.buyer_queries(BUYER).without_token();
    for (rpc, code) in every_query(&no_token, &order_no).await {
        assert_eq!(code, Some(Code::Unauthenticated), "{rpc} without a token");
    }
    for stranger in [
        app.buyer_queries(BUYER + 1),
        app.merchant_queries(SHOP + 1),
        app.rider_queries(RIDER),
        app.queries_as(orderflow_domain::Role::Service, "payments"),
    ] {
        for (rpc, code) in every_query(&stranger, &order_no).await {
            assert_eq!(
                code,
                Some(Code::PermissionDenied),
                "{rpc} as {:?} {}",
                stranger.role,
                stranger.sub
            );
        }
    }
    // The merchant of the order reads it, but may not search or list another's orders.
    let merchant = app.merchant_queries(SHOP);
    merchant.order(&order_no).await?;
    let refused = merchant
        .search_orders(pb::SearchOrdersRequest {
            query: "noodles".into(),
            ..Default::default()
        })
        .await
        .expect_err("search is for ops");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let _ = OrderNo::parse(order_no.as_str())?;

    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_batch_and_restarted_leaves_no_duplicate_and_no_hole(
) -> anyhow::Result<()> {
    let app = spawn_app().await;
    app.open_shop(SHOP, SKU, PRICE, 10).await?;
    // Given two orders of buyers on the same shard (42 and 74: both % 32 = 10), created
    let a = app.submit(BUYER, SHOP, SKU, 1, PRICE).await?;
    let b = app.submit(BUYER + 32, SHOP, SKU, 1, PRICE).await?;
    app.wait_for_status(&a, OrderStatus::Created).await?;
    app.wait_for_status(&b, OrderStatus::Created).await?;
    // And a second order_detail database, where a test transaction holds B's row
    let rebuild = Rebuild::new().await?;
    let blocker = rebuild.hold_row(&b).await?;
    // When a projector into it is killed while its shard-10 batch waits on that row
    // (A already written in the same transaction)
    let (run, _) = rebuild.start(app.store().clone());
    rebuild.wait_until_blocked().await?;
    run.abort();
    let _ = run.await;
    blocker.rollback().await?;
    // Then nothing of the batch is visible: neither A nor the shard's checkpoint moved
    assert!(
        rebuild.get(&a).await?.is_none(),
        "a killed batch leaves no row"
    );
    // And when it is restarted and has caught up with the store
    let (run, projector) = rebuild.start(app.store().clone());
    wait_caught_up(&projector, app.store().as_ref()).await?;
    run.abort();
    // Then both orders are there exactly as the live view has them: no duplicate, no hole
    let live = app.ops_queries();
    for no in [&a, &b] {
        let rebuilt = rebuild.get(no).await?.expect("the order is projected");
        let created = live
            .is_created(pb::IsCreatedRequest {
                order_no: no.clone(),
                wait_ms: 30_000,
            })
            .await?;
        assert_eq!(created.state(), pb::CreationState::Created);
        let order = live.order(no).await?;
        assert_eq!(order_from_view(&rebuilt), order, "order {no}");
        let statuses: Vec<_> = rebuilt.timeline.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [OrderStatus::Creating, OrderStatus::Created],
            "order {no}"
        );
        let distinct: HashSet<_> = statuses.iter().collect();
        assert_eq!(distinct.len(), statuses.len());
    }

    app.shutdown().await
}
