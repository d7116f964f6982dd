//! Sku rules as specifications, then the ledger's invariants under random commands.

use proptest::prelude::*;

use super::*;
use crate::event::{DecodeError, DomainEvent};
use crate::ids::{BuyerId, MerchantId};
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::quantity::{Quantity, RestockQuantity};
use crate::refusal::{FailureReason, Refusal, RefusalKind};
use crate::testing::{self, Given};
use crate::text::Name;
use crate::time::Timestamp;

fn given(events: impl IntoIterator<Item = SkuEvent>) -> Given<Sku> {
    testing::given(events)
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn cny(minor: i64) -> Money {
    Money::parse("CNY", minor).unwrap()
}

fn merchant(id: i64) -> MerchantId {
    MerchantId::new(id).unwrap()
}

fn order(n: u32) -> OrderNo {
    OrderNo::new(t(1_000), n, BuyerId::new(5).unwrap()).unwrap()
}

fn qty(n: i64) -> Quantity {
    Quantity::new(n).unwrap()
}

const EXPIRES: i64 = 60_000;

fn list(m: i64, name: &str, price: i64) -> SkuCommand {
    SkuCommand::List {
        merchant: merchant(m),
        name: Name::parse(name).unwrap(),
        price: cny(price),
        at: t(0),
    }
}

fn listed(m: i64, name: &str, price: i64) -> SkuEvent {
    DishListed {
        merchant: merchant(m),
        name: Name::parse(name).unwrap(),
        price: cny(price),
        at: t(0),
    }
    .into()
}

fn added(n: i64) -> SkuEvent {
    StockAdded {
        quantity: RestockQuantity::new(n).unwrap(),
        at: t(0),
    }
    .into()
}

fn reserve(o: u32, n: i64, price: i64) -> SkuCommand {
    SkuCommand::Reserve {
        order_no: order(o),
        merchant: merchant(1),
        quantity: qty(n),
        unit_price: cny(price),
        expires_at: t(EXPIRES),
        at: t(1_000),
    }
}

fn reserved(o: u32, n: i64) -> SkuEvent {
    StockReserved {
        order_no: order(o),
        quantity: qty(n),
        unit_price: cny(1500),
        expires_at: t(EXPIRES),
        at: t(1_000),
    }
    .into()
}

fn deducted(o: u32, n: i64) -> SkuEvent {
    StockDeducted {
        order_no: order(o),
        quantity: qty(n),
        at: t(2_000),
    }
    .into()
}

fn released(o: u32, n: i64, reason: ReleaseReason, at: i64) -> SkuEvent {
    StockReleased {
        order_no: order(o),
        quantity: qty(n),
        reason,
        at: t(at),
    }
    .into()
}

fn release(o: u32, reason: ReleaseReason, at: i64) -> SkuCommand {
    SkuCommand::Release {
        order_no: order(o),
        reason,
        at: t(at),
    }
}

fn deduct(o: u32) -> SkuCommand {
    SkuCommand::Deduct {
        order_no: order(o),
        at: t(2_000),
    }
}

/// A latte of merchant 1 at 15.00 with 10 units.
fn stocked() -> Vec<SkuEvent> {
    vec![listed(1, "latte", 1500), added(10)]
}

fn with(mut history: Vec<SkuEvent>, more: impl IntoIterator<Item = SkuEvent>) -> Vec<SkuEvent> {
    history.extend(more);
    history
}

fn level(added: i64, available: i64, reserved: i64, deducted: i64, released: i64) -> StockLevel {
    StockLevel {
        added,
        available,
        reserved,
        deducted,
        released,
    }
}

// Listing

#[test]
fn listing_a_dish_records_its_merchant_name_and_price() {
    let state = given([])
        .when(list(1, "latte", 1500))
        .then([listed(1, "latte", 1500)]);
    assert!(state.is_listed());
    assert_eq!(state.listing().unwrap().merchant, merchant(1));
}

#[test]
fn relisting_updates_name_and_price() {
    let state = given([listed(1, "latte", 1500)])
        .when(list(1, "big latte", 1800))
        .then([listed(1, "big latte", 1800)]);
    assert_eq!(state.listing().unwrap().price, cny(1800));
}

#[test]
fn a_sku_belongs_to_one_merchant_forever() {
    let error = given([listed(1, "latte", 1500), DishDelisted { at: t(1) }.into()])
        .when(list(2, "latte", 1500))
        .then_error(|e| *e == SkuError::OtherMerchant { owner: merchant(1) });
    assert_eq!(error.kind(), RefusalKind::PermissionDenied);
}

#[test]
fn a_listing_needs_a_positive_price() {
    given([])
        .when(list(1, "latte", 0))
        .then_error(|e| matches!(e, SkuError::NonPositivePrice(_)));
}

#[test]
fn delisting_needs_a_listed_dish_of_the_merchant() {
    given([])
        .when(SkuCommand::Delist {
            merchant: merchant(1),
            at: t(1),
        })
        .then_error(|e| *e == SkuError::UnknownSku);
    given([listed(1, "latte", 1500)])
        .when(SkuCommand::Delist {
            merchant: merchant(2),
            at: t(1),
        })
        .then_error(|e| matches!(e, SkuError::OtherMerchant { .. }));
    let state = given([listed(1, "latte", 1500)])
        .when(SkuCommand::Delist {
            merchant: merchant(1),
            at: t(1),
        })
        .then([DishDelisted { at: t(1) }.into()]);
    assert!(!state.is_listed());
    given([listed(1, "latte", 1500), DishDelisted { at: t(1) }.into()])
        .when(SkuCommand::Delist {
            merchant: merchant(1),
            at: t(2),
        })
        .then_error(|e| *e == SkuError::DishDelisted);
}

// Stock

#[test]
fn restock_only_adds() {
    let restock = |n| SkuCommand::Restock {
        merchant: merchant(1),
        quantity: RestockQuantity::new(n).unwrap(),
        at: t(0),
    };
    let state = given(with(stocked(), [reserved(1, 4)]))
        .when(restock(5))
        .then([added(5)]);
    // Reserved units stay reserved: the restock adds to what is available, it does not set it.
    assert_eq!(state.stock(), level(15, 11, 4, 0, 0));
}

#[test]
fn restock_needs_a_sku_of_the_merchant() {
    let restock = |m| SkuCommand::Restock {
        merchant: merchant(m),
        quantity: RestockQuantity::new(1).unwrap(),
        at: t(0),
    };
    given([])
        .when(restock(1))
        .then_error(|e| *e == SkuError::UnknownSku);
    given(stocked())
        .when(restock(2))
        .then_error(|e| matches!(e, SkuError::OtherMerchant { .. }));
}

// Reservations

#[test]
fn reserve_holds_stock_for_an_order() {
    let state = given(stocked())
        .when(reserve(1, 4, 1500))
        .then([reserved(1, 4)]);
    assert_eq!(state.stock(), level(10, 6, 4, 0, 0));
    let row = state.reservation(&order(1)).unwrap();
    assert_eq!(
        (row.quantity, row.state),
        (qty(4), ReservationState::Reserved)
    );
}

#[test]
fn reserve_beyond_what_is_available_is_out_of_stock() {
    let error = given(with(stocked(), [reserved(1, 8)]))
        .when(reserve(2, 3, 1500))
        .then_error(|e| {
            *e == SkuError::OutOfStock {
                requested: 3,
                available: 2,
            }
        });
    assert_eq!(error.failure_reason(), Some(FailureReason::OutOfStock));
    given(with(stocked(), [reserved(1, 8)]))
        .when(reserve(2, 2, 1500))
        .then([reserved(2, 2)]);
}

#[test]
fn reserve_of_a_delisted_dish_is_refused() {
    let error = given(with(stocked(), [DishDelisted { at: t(1) }.into()]))
        .when(reserve(1, 1, 1500))
        .then_error(|e| *e == SkuError::DishDelisted);
    assert_eq!(error.failure_reason(), Some(FailureReason::DishDelisted));
}

#[test]
fn reserve_at_another_price_than_the_current_one_is_refused() {
    let error = given(stocked())
        .when(reserve(1, 1, 1400))
        .then_error(|e| matches!(e, SkuError::PriceChanged { .. }));
    assert_eq!(error.failure_reason(), Some(FailureReason::PriceChanged));
}

#[test]
fn reserve_of_an_unlisted_or_another_merchants_sku_is_unknown() {
    let error = given([])
        .when(reserve(1, 1, 1500))
        .then_error(|e| *e == SkuError::UnknownSku);
    assert_eq!(error.failure_reason(), Some(FailureReason::UnknownSku));
    given(stocked())
        .when(SkuCommand::Reserve {
            order_no: order(1),
            merchant: merchant(2),
            quantity: qty(1),
            unit_price: cny(1500),
            expires_at: t(EXPIRES),
            at: t(1_000),
        })
        .then_error(|e| *e == SkuError::UnknownSku);
}

#[test]
fn reserving_again_for_the_same_order_is_a_no_op() {
    // Even once the rest of the stock is gone: the first answer stands.
    let history = with(stocked(), [reserved(1, 4), reserved(2, 6)]);
    given(history.clone())
        .when(reserve(1, 4, 1500))
        .then_nothing();
    given(with(history, [deducted(1, 4)]))
        .when(reserve(1, 4, 1500))
        .then_nothing();
}

#[test]
fn reserving_again_with_another_quantity_is_refused() {
    given(with(stocked(), [reserved(1, 4)]))
        .when(reserve(1, 5, 1500))
        .then_error(|e| matches!(e, SkuError::ReservationConflict { .. }));
}

#[test]
fn reserving_again_after_a_release_is_refused() {
    let history = with(
        stocked(),
        [
            reserved(1, 4),
            released(1, 4, ReleaseReason::OrderFailed, 1_500),
        ],
    );
    given(history)
        .when(reserve(1, 4, 1500))
        .then_error(|e| *e == SkuError::ReservationReleased(order(1)));
}

#[test]
fn a_reservation_must_expire_after_it_is_made() {
    given(stocked())
        .when(SkuCommand::Reserve {
            order_no: order(1),
            merchant: merchant(1),
            quantity: qty(1),
            unit_price: cny(1500),
            expires_at: t(1_000),
            at: t(1_000),
        })
        .then_error(|e| matches!(e, SkuError::ExpiryNotAfter { .. }));
}

#[test]
fn deduct_sells_the_reserved_units_once() {
    let history = with(stocked(), [reserved(1, 4)]);
    let state = given(history.clone())
        .when(deduct(1))
        .then([deducted(1, 4)]);
    assert_eq!(state.stock(), level(10, 6, 0, 4, 0));
    given(with(history, [deducted(1, 4)]))
        .when(deduct(1))
        .then_nothing();
}

#[test]
fn deduct_of_an_unknown_or_released_reservation_is_refused() {
    let error = given(stocked())
        .when(deduct(1))
        .then_error(|e| *e == SkuError::ReservationNotFound(order(1)));
    assert_eq!(error.kind(), RefusalKind::NotFound);
    given(with(
        stocked(),
        [
            reserved(1, 4),
            released(1, 4, ReleaseReason::OrderCancelled, 1_500),
        ],
    ))
    .when(deduct(1))
    .then_error(|e| *e == SkuError::ReservationReleased(order(1)));
}

#[test]
fn release_puts_the_units_back_once() {
    let history = with(stocked(), [reserved(1, 4)]);
    let state = given(history.clone())
        .when(release(1, ReleaseReason::OrderCancelled, 1_500))
        .then([released(1, 4, ReleaseReason::OrderCancelled, 1_500)]);
    assert_eq!(state.stock(), level(10, 10, 0, 0, 4));
    given(with(
        history,
        [released(1, 4, ReleaseReason::OrderCancelled, 1_500)],
    ))
    .when(release(1, ReleaseReason::Expired, EXPIRES))
    .then_nothing();
}

#[test]
fn release_of_an_unknown_or_deducted_reservation_is_refused() {
    given(stocked())
        .when(release(1, ReleaseReason::OrderFailed, 1_500))
        .then_error(|e| *e == SkuError::ReservationNotFound(order(1)));
    given(with(stocked(), [reserved(1, 4), deducted(1, 4)]))
        .when(release(1, ReleaseReason::OrderCancelled, 3_000))
        .then_error(|e| *e == SkuError::ReservationDeducted(order(1)));
}

#[test]
fn an_expiry_release_waits_for_expires_at() {
    let history = with(stocked(), [reserved(1, 4)]);
    given(history.clone())
        .when(release(1, ReleaseReason::Expired, EXPIRES - 1))
        .then_error(|e| matches!(e, SkuError::ReservationNotExpired { .. }));
    given(history)
        .when(release(1, ReleaseReason::Expired, EXPIRES))
        .then([released(1, 4, ReleaseReason::Expired, EXPIRES)]);
}

#[test]
fn a_payment_after_expiry_still_deducts_until_the_reaper_released() {
    given(with(stocked(), [reserved(1, 4)]))
        .when(SkuCommand::Deduct {
            order_no: order(1),
            at: t(EXPIRES + 1),
        })
        .then([StockDeducted {
            order_no: order(1),
            quantity: qty(4),
            at: t(EXPIRES + 1),
        }
        .into()]);
}

#[test]
fn expired_reservations_are_those_still_held_past_expiry() {
    let state = given(with(
        stocked(),
        [
            reserved(1, 1),
            reserved(2, 1),
            reserved(3, 1),
            deducted(2, 1),
        ],
    ))
    .state();
    let expired = |at| -> Vec<OrderNo> {
        state
            .expired_reservations(t(at))
            .map(|(o, _)| o.clone())
            .collect()
    };
    assert!(expired(EXPIRES - 1).is_empty());
    assert_eq!(expired(EXPIRES), vec![order(1), order(3)]);
}

// Stored form

#[test]
fn every_sku_event_round_trips_through_its_stored_form() {
    let events = vec![
        listed(1, "latte", 1500),
        DishDelisted { at: t(1) }.into(),
        added(3),
        reserved(1, 2),
        deducted(1, 2),
        released(1, 2, ReleaseReason::Expired, 9),
    ];
    assert_eq!(events.len(), SkuEvent::EVENT_TYPES.len());
    for event in events {
        let payload = event.encode().unwrap();
        let back = SkuEvent::decode(event.event_type(), event.event_version(), &payload).unwrap();
        assert_eq!(back, event);
    }
    let raw = |v: serde_json::Value| serde_json::value::to_raw_value(&v).unwrap();
    assert!(matches!(
        SkuEvent::decode("StockAdded", 9, &raw(serde_json::json!({}))),
        Err(DecodeError::UnknownVersion { .. })
    ));
    // A restock of 0 units cannot be read back as a value.
    assert!(matches!(
        SkuEvent::decode(
            "StockAdded",
            1,
            &raw(serde_json::json!({"quantity": 0, "at": 0}))
        ),
        Err(DecodeError::Payload { .. })
    ));
}

// Invariants

fn command() -> impl Strategy<Value = SkuCommand> {
    let m = || (1..=2_i64).prop_map(merchant);
    let o = || (0..6_u32).prop_map(order);
    let at = || prop::sample::select(vec![0_i64, 1_000, EXPIRES, 2 * EXPIRES]).prop_map(t);
    prop_oneof![
        1 => (m(), prop::sample::select(vec![100_i64, 200])).prop_map(|(merchant, p)| {
            SkuCommand::List {
                merchant,
                name: Name::parse("dish").unwrap(),
                price: cny(p),
                at: t(0),
            }
        }),
        1 => m().prop_map(|merchant| SkuCommand::Delist { merchant, at: t(0) }),
        3 => (m(), 1..=20_i64).prop_map(|(merchant, n)| SkuCommand::Restock {
            merchant,
            quantity: RestockQuantity::new(n).unwrap(),
            at: t(0),
        }),
        6 => (o(), m(), 1..=10_i64, prop::sample::select(vec![100_i64, 200]), at(), at())
            .prop_map(|(order_no, merchant, n, p, expires_at, at)| SkuCommand::Reserve {
                order_no,
                merchant,
                quantity: qty(n),
                unit_price: cny(p),
                expires_at,
                at,
            }),
        3 => (o(), at()).prop_map(|(order_no, at)| SkuCommand::Deduct { order_no, at }),
        3 => (
            o(),
            prop::sample::select(vec![
                ReleaseReason::OrderFailed,
                ReleaseReason::OrderCancelled,
                ReleaseReason::Expired,
            ]),
            at(),
        )
            .prop_map(|(order_no, reason, at)| SkuCommand::Release { order_no, reason, at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_commands_keep_the_ledger_balanced(
        commands in prop::collection::vec(command(), 0..100)
    ) {
        let mut state = SkuState::default();
        let mut released = std::collections::HashMap::<OrderNo, u32>::new();
        let mut deducted = std::collections::HashSet::<OrderNo>::new();
        for command in &commands {
            let Ok(events) = Sku::decide(command, &state) else { continue };
            for event in &events {
                match event {
                    SkuEvent::Released(e) => {
                        *released.entry(e.order_no.clone()).or_default() += 1;
                        prop_assert!(!deducted.contains(&e.order_no), "released after deduct");
                    }
                    SkuEvent::Deducted(e) => {
                        prop_assert!(deducted.insert(e.order_no.clone()), "deducted twice");
                        prop_assert!(!released.contains_key(&e.order_no), "deducted after release");
                    }
                    _ => {}
                }
                state = Sku::evolve(state, event);
                let s = state.stock();
                prop_assert_eq!(s.added, s.available + s.reserved + s.deducted, "{:?}", s);
                prop_assert!(s.available >= 0 && s.reserved >= 0 && s.deducted >= 0, "{:?}", s);
                // The totals agree with the rows.
                let sum = |wanted| -> i64 {
                    state.reservations().filter(|(_, r)| r.state == wanted).map(|(_, r)| r.quantity.get()).sum()
                };
                prop_assert_eq!(s.reserved, sum(ReservationState::Reserved));
                prop_assert_eq!(s.deducted, sum(ReservationState::Deducted));
                prop_assert_eq!(s.released, sum(ReservationState::Released));
            }
        }
        prop_assert!(released.values().all(|n| *n == 1), "released twice: {:?}", released);
    }
}

/// The generator reserves, deducts and releases, so the property above is not vacuous.
#[test]
fn the_generator_moves_stock_every_way() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(command(), 100);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let mut state = SkuState::default();
        for command in strategy.new_tree(&mut runner).unwrap().current() {
            if let Ok(events) = Sku::decide(&command, &state) {
                seen.extend(events.iter().map(|e| e.event_type()));
                state = events.iter().fold(state, Sku::evolve);
            }
        }
    }
    assert_eq!(seen.len(), SkuEvent::EVENT_TYPES.len(), "only {seen:?}");
}
