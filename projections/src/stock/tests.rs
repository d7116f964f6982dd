//! The stock fold against the domain: whatever history the sku decider can produce, the
//! ledger row equals the decider's own stock level and keeps its identity, and each
//! reservation row has the decider's state.

use std::collections::HashMap;

use orderflow_domain::sku::{ReleaseReason, Sku, SkuCommand, SkuState};
use orderflow_domain::{
    BuyerId, Decider, MerchantId, Money, Name, OrderNo, Quantity, RestockQuantity, SkuId, Timestamp,
};
use proptest::prelude::*;

use super::*;
use crate::testing::fixtures::Log;

#[derive(Debug, Clone)]
enum Step {
    Restock(i64),
    Reserve(u8, i64),
    Deduct(u8),
    Release(u8),
    Expire(u8),
    Delist,
    Relist,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..50i64).prop_map(Step::Restock),
        (0..6u8, 1..10i64).prop_map(|(o, q)| Step::Reserve(o, q)),
        (0..6u8).prop_map(Step::Deduct),
        (0..6u8).prop_map(Step::Release),
        (0..6u8).prop_map(Step::Expire),
        Just(Step::Delist),
        Just(Step::Relist),
    ]
}

fn order(o: u8) -> OrderNo {
    OrderNo::new(
        Timestamp::from_millis(1_795_331_832_345 + i64::from(o)),
        0,
        BuyerId::new(i64::from(o) + 1).unwrap(),
    )
    .unwrap()
}

fn command(step: &Step, merchant: MerchantId, price: Money, now: Timestamp) -> SkuCommand {
    let at = now;
    match step {
        Step::Restock(n) => SkuCommand::Restock {
            merchant,
            quantity: RestockQuantity::new(*n).unwrap(),
            at,
        },
        Step::Reserve(o, q) => SkuCommand::Reserve {
            order_no: order(*o),
            merchant,
            quantity: Quantity::new(*q).unwrap(),
            unit_price: price,
            expires_at: Timestamp::from_millis(now.as_millis() + 10),
            at,
        },
        Step::Deduct(o) => SkuCommand::Deduct {
            order_no: order(*o),
            at,
        },
        Step::Release(o) => SkuCommand::Release {
            order_no: order(*o),
            reason: ReleaseReason::OrderCancelled,
            at,
        },
        Step::Expire(o) => SkuCommand::Release {
            order_no: order(*o),
            reason: ReleaseReason::Expired,
            at,
        },
        Step::Delist => SkuCommand::Delist { merchant, at },
        Step::Relist => SkuCommand::List {
            merchant,
            name: Name::parse("Latte").unwrap(),
            price,
            at,
        },
    }
}

proptest! {
    #[test]
    fn the_ledger_row_is_the_deciders_stock_level(steps in prop::collection::vec(step(), 1..60), batch in 1..8usize) {
        // Given any history the sku decider accepts
        let sku = SkuId::parse("latte").unwrap();
        let merchant = MerchantId::new(7).unwrap();
        let price = Money::parse("CNY", 1800).unwrap();
        let mut state = SkuState::default();
        let mut log = Log::new();
        let mut now = Timestamp::from_millis(1_795_331_832_345);
        let mut history = vec![command(&Step::Relist, merchant, price, now)];
        history.extend(steps.iter().map(|s| command(s, merchant, price, now)));
        for (i, cmd) in history.iter().enumerate() {
            now = Timestamp::from_millis(now.as_millis() + 7 * i as i64);
            let cmd = retime(cmd.clone(), now);
            if let Ok(events) = Sku::decide(&cmd, &state) {
                for e in events {
                    state = Sku::evolve(state, &e);
                    log.record(&sku.stream_id(), e);
                }
            }
        }
        // When it is folded in batches, each batch seeing the rows the last one left
        let mut ledgers = HashMap::new();
        let mut reservations = HashMap::new();
        for chunk in log.events.chunks(batch) {
            let refs: Vec<&RecordedEvent> = chunk.iter().collect();
            fold_stock(&mut ledgers, &mut reservations, &refs);
        }
        // Then the row is the decider's level, consistent, and every reservation matches
        let row = &ledgers["latte"];
        let level = state.stock();
        prop_assert!(row.is_consistent(), "{row:?}");
        prop_assert_eq!(
            (row.added, row.available, row.reserved, row.deducted, row.released),
            (level.added, level.available, level.reserved, level.deducted, level.released)
        );
        prop_assert_eq!(row.listed, state.is_listed());
        for (no, held) in state.reservations() {
            let projected = &reservations[&("latte".to_owned(), no.to_string())];
            prop_assert_eq!(projected.state, held.state);
            prop_assert_eq!(projected.quantity, held.quantity.get());
            prop_assert_eq!(projected.expires_at, held.expires_at);
        }
        prop_assert_eq!(reservations.len(), state.reservations().count());
        // And folding the whole log again changes nothing
        let refs: Vec<&RecordedEvent> = log.events.iter().collect();
        let again = fold_stock(&mut ledgers, &mut reservations, &refs);
        prop_assert_eq!(again, StockChanges::default());
    }
}

fn retime(command: SkuCommand, now: Timestamp) -> SkuCommand {
    let later = Timestamp::from_millis(now.as_millis() + 10);
    match command {
        SkuCommand::Restock {
            merchant, quantity, ..
        } => SkuCommand::Restock {
            merchant,
            quantity,
            at: now,
        },
        SkuCommand::Reserve {
            order_no,
            merchant,
            quantity,
            unit_price,
            ..
        } => SkuCommand::Reserve {
            order_no,
            merchant,
            quantity,
            unit_price,
            expires_at: later,
            at: now,
        },
        SkuCommand::Deduct { order_no, .. } => SkuCommand::Deduct { order_no, at: now },
        SkuCommand::Release {
            order_no, reason, ..
        } => SkuCommand::Release {
            order_no,
            reason,
            at: now,
        },
        SkuCommand::Delist { merchant, .. } => SkuCommand::Delist { merchant, at: now },
        SkuCommand::List {
            merchant,
            name,
            price,
            ..
        } => SkuCommand::List {
            merchant,
            name,
            price,
            at: now,
        },
    }
}

#[test]
fn stock_before_a_listing_is_refused_not_invented() {
    let sku = SkuId::parse("ghost").unwrap();
    let event = SkuEvent::StockAdded(orderflow_domain::sku::StockAdded {
        quantity: RestockQuantity::new(3).unwrap(),
        at: Timestamp::from_millis(0),
    });
    assert!(matches!(
        apply(&sku, None, None, &event, 1),
        Err(StockFoldError::Unlisted { .. })
    ));
}
