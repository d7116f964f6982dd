//! A retried request id returns the first answer and appends nothing (issue 3 §7), for
//! every kind of RPC; `SubmitOrder` returns the same order number.

mod common;

use common::*;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::{Role, SkuId};
use orderflow_proto::v1 as pb;
use tonic::Code;

const RETRIES: usize = 5;

#[tokio::test]
async fn a_retried_submit_returns_the_same_order_number_and_appends_nothing() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let first = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    let after_first = t.total_events().await;
    for _ in 0..RETRIES {
        // Time moves on between retries: the number must not follow it.
        t.clock.advance(std::time::Duration::from_millis(7));
        let again = t
            .client
            .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, first);
    }
    assert_eq!(t.total_events().await, after_first);
    assert_eq!(t.order_events(&first.order_no).await, 1);

    // Even once the order moved on, a retry answers as the first time.
    t.create(&first.order_no).await;
    let late_retry = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late_retry, first);

    // A new request id is a new order.
    let second = submitted_order(&mut t, "sub-2").await;
    assert_ne!(second, first.order_no);
}

#[tokio::test]
async fn concurrent_retries_of_one_submit_make_one_order() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let tasks: Vec<_> = (0..RETRIES)
        .map(|_| {
            let mut client = t.client.clone();
            let request = t.buyer(submit("sub-1", BUYER, 1));
            tokio::spawn(async move { client.submit_order(request).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap().unwrap().into_inner().order_no);
    }
    numbers.dedup();
    assert_eq!(numbers.len(), 1, "{numbers:?}");
    assert_eq!(t.order_events(&numbers[0]).await, 1);
}

#[tokio::test]
async fn two_buyers_with_the_same_request_id_get_two_orders() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let mine = submitted_order(&mut t, "checkout").await;
    let theirs = t
        .client
        .submit_order(t.req(Role::Buyer, "18", submit("checkout", 18, 1)))
        .await
        .unwrap()
        .into_inner()
        .order_no;
    assert_ne!(mine, theirs);
    assert!(theirs.ends_with("18"));
}

#[tokio::test]
async fn a_payment_callback_retried_five_times_is_one_payment() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let order_no = submitted_order(&mut t, "sub-1").await;
    t.create(&order_no).await;
    let first = t
        .client
        .confirm_payment(t.service(pay("pay-1", &order_no, "txn-1", 2 * NOODLES_PRICE)))
        .await
        .unwrap()
        .into_inner();
    let after_first = t.total_events().await;
    for _ in 0..RETRIES {
        let again = t
            .client
            .confirm_payment(t.service(pay("pay-1", &order_no, "txn-1", 2 * NOODLES_PRICE)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, first);
    }
    // The provider may also resend the same transaction under a new request id.
    t.client
        .confirm_payment(t.service(pay("pay-2", &order_no, "txn-1", 2 * NOODLES_PRICE)))
        .await
        .unwrap();
    assert_eq!(t.total_events().await, after_first);
    let state = t.order(&order_no).await;
    let order = state.order().unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.payments.len(), 1);
}

#[tokio::test]
async fn retried_merchant_and_rider_commands_append_once() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let sku = SkuId::parse(NOODLES).unwrap();

    let first = t
        .client
        .restock(t.merchant(restock("restock-9", NOODLES, 10)))
        .await
        .unwrap()
        .into_inner();
    let after = t.total_events().await;
    for _ in 0..RETRIES {
        let again = t
            .client
            .restock(t.merchant(restock("restock-9", NOODLES, 10)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, first);
        // A retried open answers as the first time instead of "already opened".
        t.client
            .open_merchant(t.merchant(open_merchant("open-1")))
            .await
            .unwrap();
    }
    assert_eq!(t.total_events().await, after);
    // 100 from the fixture + 10 once.
    assert_eq!(
        t.app.stock().state(&sku).await.unwrap().stock().available,
        110
    );

    let online = t
        .client
        .go_online(t.rider(RIDER, go_online("on-1", RIDER)))
        .await
        .unwrap()
        .into_inner();
    let after = t.total_events().await;
    for _ in 0..RETRIES {
        let again = t
            .client
            .go_online(t.rider(RIDER, go_online("on-1", RIDER)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, online);
    }
    assert_eq!(t.total_events().await, after);
    // The same request id on another RPC is another request, not a retry.
    let offline = t
        .client
        .go_offline(t.rider(
            RIDER,
            pb::GoOfflineRequest {
                request_id: "on-1".into(),
                rider_id: RIDER,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(offline, online);
    assert!(!t.rider_state(RIDER).await.online);
}

#[tokio::test]
async fn retried_grabs_keep_their_first_answer() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    for rider in [RIDER, 43] {
        t.client
            .go_online(t.rider(rider, go_online("on-1", rider)))
            .await
            .unwrap();
    }
    let order_no = paid_order(&mut t, "sub-1").await;
    t.notify(&order_no, &[RIDER, 43]).await;
    let won = t
        .client
        .grab_order(t.rider(RIDER, grab("g-1", RIDER, &order_no)))
        .await
        .unwrap()
        .into_inner();
    let lost = t
        .client
        .grab_order(t.rider(43, grab("g-1", 43, &order_no)))
        .await;
    assert_status(lost, Code::Aborted, "already grabbed");
    let after = t.total_events().await;
    for _ in 0..RETRIES {
        let again = t
            .client
            .grab_order(t.rider(RIDER, grab("g-1", RIDER, &order_no)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, won);
        let lost_again = t
            .client
            .grab_order(t.rider(43, grab("g-1", 43, &order_no)))
            .await;
        assert_status(lost_again, Code::Aborted, "already grabbed");
    }
    assert_eq!(t.total_events().await, after);
    assert_eq!(t.rider_state(RIDER).await.active_orders.len(), 1);
    assert!(t.rider_state(43).await.active_orders.is_empty());
}

#[tokio::test]
async fn a_retried_cancel_answers_as_the_first_time() {
    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let order_no = submitted_order(&mut t, "sub-1").await;
    t.create(&order_no).await;
    let cancel = |t: &TestApp| {
        t.buyer(pb::CancelOrderRequest {
            request_id: "cancel-1".into(),
            order_no: order_no.clone(),
            reason: String::new(),
        })
    };
    let first = t
        .client
        .cancel_order(cancel(&t))
        .await
        .unwrap()
        .into_inner();
    let after = t.total_events().await;
    for _ in 0..RETRIES {
        let again = t
            .client
            .cancel_order(cancel(&t))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, first);
    }
    assert_eq!(t.total_events().await, after);
}

/// A submit's claim and its order are one commit: consecutive positions of the buyer's
/// shard, each stream holding its one event under the request's command id.
#[tokio::test]
async fn a_submit_commits_its_claim_and_its_order_together() {
    use orderflow_command_service::service::submit::claim_stream;
    use orderflow_domain::BuyerId;

    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let order_no = submitted_order(&mut t, "sub-1").await;
    let command_id = "buyer:17:SubmitOrder:sub-1";
    let claim = claim_stream(command_id, BuyerId::new(BUYER).unwrap()).unwrap();
    let store = t.app.store();
    let claimed = store.read_stream(&claim, 1, 10).await.unwrap();
    let order_stream = orderflow_domain::StreamId::parse(format!("order-{order_no}")).unwrap();
    let submitted = store.read_stream(&order_stream, 1, 10).await.unwrap();
    assert_eq!((claimed.len(), submitted.len()), (1, 1));
    let fields: serde_json::Value = claimed[0].payload.decode().unwrap();
    assert_eq!(fields["order_no"], order_no.as_str());
    assert_eq!(claimed[0].shard, submitted[0].shard);
    assert_eq!(claimed[0].position.next(), submitted[0].position);
    assert_eq!(claimed[0].metadata.command_id.as_str(), command_id);
    assert_eq!(submitted[0].metadata.command_id.as_str(), command_id);
}

/// A claim whose order is missing (the two-step submit before claims and orders were one
/// commit could crash in between; here in the claim's current stream) is completed by the
/// retry under the claimed number.
#[tokio::test]
async fn a_retry_completes_a_claim_without_its_order() {
    use orderflow_command_service::service::submit::claim_stream;
    use orderflow_domain::BuyerId;

    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let command_id = "buyer:17:SubmitOrder:sub-1";
    let claim = claim_stream(command_id, BuyerId::new(BUYER).unwrap()).unwrap();
    let claimed = append_claim(&t, claim, command_id).await;

    t.clock.advance(std::time::Duration::from_secs(3));
    let retry = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.order_no, claimed.as_str());
    assert_eq!(t.order_events(claimed.as_str()).await, 1);
    assert_eq!(
        t.order(claimed.as_str()).await.status(),
        Some(OrderStatus::Creating)
    );
}

/// A claim left by the two-step submit in its old stream (`request-{hash}`) still answers a
/// retry on the paths that read claims: here the merchant has closed since, and the retry
/// gets the claimed number instead of the refusal.
#[tokio::test]
async fn a_retry_finds_a_claim_of_the_two_step_submit() {
    use orderflow_command_service::service::idempotency::hex_sha256;
    use orderflow_domain::StreamId;

    let mut t = spawn_app().await;
    with_menu(&mut t).await;
    let command_id = "buyer:17:SubmitOrder:sub-1";
    let legacy = StreamId::of("request", hex_sha256(&[command_id])).unwrap();
    let claimed = append_claim(&t, legacy, command_id).await;
    t.close_merchant().await;

    // Past the window in which "open" is believed without a read.
    t.clock.advance(std::time::Duration::from_secs(3));
    let retry = t
        .client
        .submit_order(t.buyer(submit("sub-1", BUYER, 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.order_no, claimed.as_str());
    assert_eq!(t.order_events(claimed.as_str()).await, 1);
}

/// What a submit that died after its claim had appended: the claim of a number, no order.
async fn append_claim(
    t: &TestApp,
    stream: orderflow_domain::StreamId,
    command_id: &str,
) -> orderflow_domain::OrderNo {
    use orderflow_domain::{Actor, BuyerId, OrderNo, Timestamp};
    use orderflow_infra::store::{
        AppendRequest, CommandId, CorrelationId, EventMetadata, ExpectedVersion, NewEvent,
    };

    let claimed = OrderNo::new(
        Timestamp::from_millis(START),
        4_242,
        BuyerId::new(BUYER).unwrap(),
    )
    .unwrap();
    t.app
        .store()
        .append(AppendRequest {
            stream,
            expected: ExpectedVersion::NO_STREAM,
            events: vec![NewEvent::new(
                "SubmitOrderClaimed",
                1,
                serde_json::json!({ "order_no": claimed.as_str(), "at": START }),
            )],
            metadata: EventMetadata {
                command_id: CommandId::parse(command_id).unwrap(),
                correlation_id: CorrelationId::random(),
                causation_id: None,
                actor: Actor::new(Role::Buyer, "17"),
                occurred_at: Timestamp::from_millis(START),
            },
        })
        .await
        .unwrap();
    assert_eq!(t.order_events(claimed.as_str()).await, 0);
    claimed
}
