//! The notifier end to end on one process: memory store → relay → bus (in-process, or NATS)
//! → notifier, with the index fed from the store, time driven by a manual clock.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::rider::RiderCommand;
use orderflow_domain::{Actor, BuyerId, Money, PaymentTxnId, Shard, Timestamp};
use orderflow_infra::bus::{InProcessBus, StreamKind};
use orderflow_infra::store::{EventStore, Position};

use self::harness::*;
use super::*;
use crate::riders::rebuild_index;

/// Riders 1–4 at 300/600/900/1200 m with room, 5 full at 100 m, 6 offline at 200 m, 7 at 5 km.
async fn round_one_scenario(bus: Arc<dyn EventBus>) {
    let mut h = Harness::new(bus);
    h.start_background();
    let merchant = h.open_merchant(1).await;
    for (id, metres) in [
        (1, 300.0),
        (2, 600.0),
        (3, 900.0),
        (4, 1_200.0),
        (7, 5_000.0),
    ] {
        h.online(id, metres, 2).await;
    }
    h.online(5, 100.0, 1).await;
    h.rider(
        5,
        RiderCommand::AssignOrder {
            order_no: OrderNo::new(h.clock.now(), 999, BuyerId::new(1).unwrap()).unwrap(),
            at: h.clock.now(),
        },
    )
    .await
    .unwrap();
    h.online(6, 200.0, 2).await;
    h.rider(6, RiderCommand::GoOffline { at: h.clock.now() })
        .await
        .unwrap();
    h.index_knows(&[1, 2, 3, 4, 5, 6, 7], merchant).await;
    eventually("rider 5 to be full in the index", || async {
        h.index.rider(rid(5)).is_some_and(|s| !s.has_room())
    })
    .await;
    let mut subs = Vec::new();
    for id in 1..=7 {
        subs.push(h.offers(id).await);
    }
    let (_stop, _task) = h.spawn_notifier(3, NOTIFIER_CONSUMER);

    let order_no = h.paid_order(1, merchant).await;
    let order = h.wait_status(&order_no, OrderStatus::Notified).await;
    let offer = order.offer.clone().unwrap();
    assert_eq!(offer.riders, vec![rid(1), rid(2), rid(3)]);
    assert_eq!((offer.round, offer.radius_m), (1, 3_000));
    assert_eq!(offer.offer_id, offer_id(&order_no, 1).unwrap());
    assert_eq!(
        offer.expires_at,
        h.clock.now().plus(Duration::from_secs(30))
    );
    let notified = &h.events_of(&order_no, "RidersNotified").await[0];
    assert_eq!(notified.metadata.actor, Actor::system(NOTIFIER_COMPONENT));
    assert_eq!(
        notified.metadata.command_id.as_str(),
        format!("notifier:offer:{order_no}:1")
    );

    for sub in &mut subs[0..3] {
        let got = next_offer(sub).await;
        assert_eq!(got.offer_id, offer.offer_id.as_str());
        assert_eq!(got.order_no, order_no.as_str());
        assert_eq!(got.merchant_id, merchant.get());
        assert_eq!(got.pickup, Some(merchant_at().into()));
        assert_eq!(got.dropoff, Some(order.address.location().into()));
        assert_eq!(got.expires_at, Some(to_proto::timestamp(offer.expires_at)));
    }
    // The fourth nearest, the full, the offline and the far rider hear nothing.
    for sub in &mut subs[3..7] {
        no_offer(sub).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn a_paid_order_is_offered_to_the_nearest_riders_with_room() {
    round_one_scenario(Arc::new(InProcessBus::new(
        orderflow_infra::testing::bus::unique_subjects(),
    )))
    .await;
}

#[tokio::test]
async fn a_paid_order_is_offered_over_nats() {
    let bus = Arc::new(orderflow_infra::testing::bus::nats_bus().await);
    round_one_scenario(bus.clone()).await;
    let _ = bus.delete_streams().await;
}

#[tokio::test]
async fn an_expired_offer_goes_wider_and_only_the_new_offer_id_grabs() {
    let mut h = Harness::new(Arc::new(InProcessBus::new(
        orderflow_infra::testing::bus::unique_subjects(),
    )));
    h.start_background();
    let merchant = h.open_merchant(1).await;
    h.online(1, 1_000.0, 1).await;
    h.online(2, 5_000.0, 1).await;
    h.index_knows(&[1, 2], merchant).await;
    let (mut near, mut far) = (h.offers(1).await, h.offers(2).await);
    let (_stop, _task) = h.spawn_notifier(5, NOTIFIER_CONSUMER);

    let order_no = h.paid_order(1, merchant).await;
    let first = h
        .wait_status(&order_no, OrderStatus::Notified)
        .await
        .offer
        .unwrap();
    assert_eq!((first.round, first.riders.clone()), (1, vec![rid(1)]));
    assert_eq!(
        next_offer(&mut near).await.offer_id,
        first.offer_id.as_str()
    );
    no_offer(&mut far).await;

    // Nobody grabs: the deadlines engine's ExpireOffer, once the window has passed.
    h.clock.advance(Duration::from_secs(31));
    let expire = OrderCommand::ExpireOffer {
        offer_id: first.offer_id.clone(),
        now: h.clock.now(),
    };
    h.order_command(&order_no, expire).await.unwrap();
    eventually("round 2", || async { h.rounds(&order_no).await == 2 }).await;
    let second = h.order(&order_no).await.offer.unwrap();
    assert_eq!((second.round, second.radius_m), (2, 6_000));
    assert_eq!(second.riders, vec![rid(1), rid(2)]);
    assert_ne!(second.offer_id, first.offer_id);
    assert_eq!(
        second.expires_at,
        h.clock.now().plus(Duration::from_secs(30))
    );
    assert_eq!(
        next_offer(&mut far).await.offer_id,
        second.offer_id.as_str()
    );
    assert_eq!(
        next_offer(&mut near).await.offer_id,
        second.offer_id.as_str()
    );

    let grab = |rider: i64, offer_id: &OfferId| OrderCommand::Grab {
        rider: rid(rider),
        offer_id: offer_id.clone(),
        delivery_deadline: h.clock.now().plus(Duration::from_secs(1_800)),
        now: h.clock.now(),
    };
    let stale = h.order_command(&order_no, grab(1, &first.offer_id)).await;
    assert!(
        matches!(
            stale,
            Err(CommandError::Refused {
                kind: RefusalKind::Aborted,
                ..
            })
        ),
        "{stale:?}"
    );
    h.order_command(&order_no, grab(2, &second.offer_id))
        .await
        .unwrap();
    assert_eq!(h.order(&order_no).await.status, OrderStatus::Delivering);

    // Events handled again after the order moved on change nothing and publish nothing.
    let handler = h.handler(5);
    for event_type in ["OrderPaid", "OfferExpired"] {
        let cause = h.events_of(&order_no, event_type).await.remove(0);
        let round = if event_type == "OrderPaid" { 1 } else { 2 };
        handler.offer_round(&cause, round).await.unwrap();
    }
    assert_eq!(h.rounds(&order_no).await, 2);
    no_offer(&mut far).await;
    h.stop().await;
}

#[tokio::test]
async fn a_redelivered_order_paid_does_not_open_a_second_round() {
    let h = Harness::new(Arc::new(InProcessBus::new(
        orderflow_infra::testing::bus::unique_subjects(),
    )));
    let merchant = h.open_merchant(1).await;
    h.online(1, 500.0, 1).await;
    // The index knows the rider but not yet the merchant (its shard lags): the pickup point
    // is then read from the merchant's stream.
    let store: &dyn EventStore = h.store.as_ref();
    for shard in Shard::all() {
        for event in store.read_shard(shard, Position::ZERO, 100).await.unwrap() {
            if event.stream.category() == "rider" {
                h.index.apply_recorded(&event).unwrap();
            }
        }
    }
    assert_eq!(h.index.merchant_location(merchant), None);
    let mut offers = h.offers(1).await;
    let order_no = h.paid_order(1, merchant).await;
    let paid = h.events_of(&order_no, "OrderPaid").await.remove(0);

    let mut handler = h.handler(3);
    handler.handle(&paid).await.unwrap();
    let first = h.order(&order_no).await.offer.unwrap();
    let got = next_offer(&mut offers).await;
    assert_eq!(got.offer_id, first.offer_id.as_str());
    assert_eq!(got.pickup, Some(merchant_at().into()));
    // A second rider shows up, the clock moves: the redelivery still re-sends round 1 as
    // decided, and publishes the same offer again (idempotent by offer id).
    h.online(2, 100.0, 1).await;
    h.clock.advance(Duration::from_secs(5));
    handler.handle(&paid).await.unwrap();
    assert_eq!(h.rounds(&order_no).await, 1);
    assert_eq!(h.order(&order_no).await.offer.unwrap(), first);
    assert_eq!(
        next_offer(&mut offers).await.offer_id,
        first.offer_id.as_str()
    );
}

#[tokio::test]
async fn a_restarted_notifier_neither_loses_nor_repeats_rounds() {
    let mut h = Harness::new(Arc::new(InProcessBus::new(
        orderflow_infra::testing::bus::unique_subjects(),
    )));
    h.start_background();
    let merchant = h.open_merchant(1).await;
    h.online(1, 500.0, 3).await;
    h.index_knows(&[1], merchant).await;

    let (stop, task) = h.spawn_notifier(3, NOTIFIER_CONSUMER);
    let a = h.paid_order(1, merchant).await;
    h.wait_status(&a, OrderStatus::Notified).await;
    stop.cancel();
    task.await.unwrap().unwrap();

    // Paid while the notifier is down: handled after the restart, from its checkpoint.
    let b = h.paid_order(2, merchant).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.order(&b).await.status, OrderStatus::Paid);
    let (stop, task) = h.spawn_notifier(3, NOTIFIER_CONSUMER);
    h.wait_status(&b, OrderStatus::Notified).await;
    stop.cancel();
    task.await.unwrap().unwrap();

    // A crash that lost the checkpoint (here: a new consumer with none) replays everything:
    // every round is found decided, none is added.
    let (stop, task) = h.spawn_notifier(3, "notifier-replay");
    eventually("the replay to reach the heads", || async {
        let saved = h.checkpoints.load("notifier-replay").await.unwrap();
        let mut done = true;
        for shard in Shard::all() {
            let head = h.store.head(shard).await.unwrap();
            done &= saved.get(&shard).copied().unwrap_or(Position::ZERO) >= head;
        }
        done
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!((h.rounds(&a).await, h.rounds(&b).await), (1, 1));
    h.stop().await;
}

#[tokio::test]
async fn the_index_rebuilt_from_the_log_equals_the_live_one() {
    let mut h = Harness::new(Arc::new(InProcessBus::new(
        orderflow_infra::testing::bus::unique_subjects(),
    )));
    // Some history before the updater starts (replayed), some after (followed live).
    let merchant = h.open_merchant(1).await;
    for id in 1..=20 {
        h.online(id, f64::from(id as u32) * 250.0, 2).await;
    }
    h.start_background();
    tokio::time::timeout(Duration::from_secs(10), h.index.wait_ready())
        .await
        .expect("index ready");
    for id in (1..=20).step_by(3) {
        let report = RiderCommand::ReportLocation {
            location: north(10_000.0 + f64::from(id as u32)),
            at: h.clock.now(),
        };
        h.rider(id, report).await.unwrap();
    }
    for id in (2..=20).step_by(4) {
        h.rider(id, RiderCommand::GoOffline { at: h.clock.now() })
            .await
            .unwrap();
    }
    let order_no = OrderNo::new(h.clock.now(), 1, BuyerId::new(1).unwrap()).unwrap();
    h.rider(
        3,
        RiderCommand::AssignOrder {
            order_no,
            at: h.clock.now(),
        },
    )
    .await
    .unwrap();
    h.index_knows(&[20], merchant).await;

    let rebuilt = rebuild_index(h.store.as_ref()).await.unwrap();
    eventually("the live index to equal the rebuilt one", || async {
        h.index.snapshot() == rebuilt.snapshot()
    })
    .await;
    let snapshot = rebuilt.snapshot();
    assert_eq!(snapshot.riders.len(), 20);
    assert_eq!(snapshot.merchants.len(), 1);
    assert_eq!(rebuilt.online_count(), 20 - 5);
    assert_eq!(
        h.index
            .nearest(merchant_at(), 50_000, 50, RiderFilter::HasRoom),
        rebuilt.nearest(merchant_at(), 50_000, 50, RiderFilter::HasRoom)
    );
    h.stop().await;
}

#[test]
fn each_round_widens_the_radius_up_to_the_cap() {
    let p = policy(5);
    let radii: Vec<u32> = (1..=7).map(|r| p.radius_m(r)).collect();
    assert_eq!(
        radii,
        vec![3_000, 6_000, 12_000, 24_000, 48_000, 50_000, 50_000]
    );
    assert_eq!(p.radius_m(u32::MAX), 50_000);
    let from_config = OfferPolicy::from_config(&CommandConfig::default());
    assert_eq!(from_config, policy(5));
}

#[test]
fn offer_ids_are_per_round_and_valid() {
    let order_no = OrderNo::new(
        Timestamp::from_millis(T0),
        999_999,
        BuyerId::new(31).unwrap(),
    )
    .unwrap();
    let first = offer_id(&order_no, 1).unwrap();
    assert_eq!(first.as_str(), format!("{order_no}-r1"));
    assert_ne!(first, offer_id(&order_no, 2).unwrap());
    assert!(offer_id(&order_no, u32::MAX).is_ok());
}

#[test]
fn the_reacted_to_event_types_are_the_domains() {
    use orderflow_domain::order::{OfferExpired, OrderPaid};
    let t = Timestamp::from_millis(T0);
    let paid: OrderEvent = OrderPaid {
        txn: PaymentTxnId::parse("t").unwrap(),
        amount: Money::parse("CNY", 1).unwrap(),
        at: t,
    }
    .into();
    let expired: OrderEvent = OfferExpired {
        offer_id: OfferId::parse("o").unwrap(),
        round: 1,
        at: t,
    }
    .into();
    use orderflow_domain::DomainEvent;
    assert_eq!(paid.event_type(), ORDER_PAID);
    assert_eq!(expired.event_type(), OFFER_EXPIRED);
}

#[tokio::test]
async fn past_the_round_cap_ops_are_alerted_once_and_rounds_slow_down() {
    let bus = Arc::new(InProcessBus::new(
        orderflow_infra::testing::bus::unique_subjects(),
    ));
    let mut h = Harness::new(bus.clone());
    h.start_background();
    let merchant = h.open_merchant(1).await;
    h.index_knows(&[], merchant).await;
    let handler = h.handler_with(OfferPolicy {
        max_rounds: 2,
        ..policy(5)
    });
    let order_no = h.paid_order(1, merchant).await;
    let paid = h.events_of(&order_no, "OrderPaid").await.remove(0);
    handler.offer_round(&paid, 1).await.unwrap();
    // Given nobody near grabs, round after round...
    let mut windows = Vec::new();
    for round in 2..=4 {
        let offer = h.order(&order_no).await.offer.unwrap();
        windows.push(offer.expires_at.as_millis() - h.clock.now().as_millis());
        h.clock.advance(Duration::from_secs(600));
        let expire = OrderCommand::ExpireOffer {
            offer_id: offer.offer_id,
            now: h.clock.now(),
        };
        h.order_command(&order_no, expire).await.unwrap();
        let expired = h.events_of(&order_no, "OfferExpired").await;
        let cause = expired.last().unwrap();
        handler.offer_round(cause, round).await.unwrap();
        // ...a redelivered event alerts nobody twice.
        handler.offer_round(cause, round).await.unwrap();
        let alerts = bus.stream_len(StreamKind::Alerts);
        assert_eq!(alerts, usize::from(round >= 3), "round {round}");
    }
    let last = h.order(&order_no).await.offer.unwrap();
    windows.push(last.expires_at.as_millis() - h.clock.now().as_millis());
    // Then: two rounds at the normal window, then the window doubles; the order stays offered.
    assert_eq!(windows, vec![30_000, 30_000, 60_000, 120_000]);
    assert_eq!(last.radius_m, 24_000);
    assert_eq!(h.order(&order_no).await.status, OrderStatus::Notified);
    h.stop().await;
}
