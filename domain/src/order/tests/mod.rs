//! Order rules as specifications: fixtures here, one test per rule in `rules`, every status ×
//! command pair in `table`, random histories in `props`.

mod codec;
mod delivery;
mod props;
mod refused;
mod rules;
mod table;

use super::*;
use crate::geo::Address;
use crate::ids::{BuyerId, MerchantId, OfferId, PaymentTxnId, RiderId, SkuId};
use crate::money::Money;
use crate::order_no::OrderNo;
use crate::quantity::Quantity;
use crate::testing::{self, Given};
use crate::text::{Name, Reason};
use crate::time::Timestamp;

pub(super) fn concat(
    a: Vec<OrderEvent>,
    b: impl IntoIterator<Item = OrderEvent>,
) -> Vec<OrderEvent> {
    a.into_iter().chain(b).collect()
}

pub(super) fn given(events: impl IntoIterator<Item = OrderEvent>) -> Given<Order> {
    testing::given(events)
}

pub(super) fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(super) fn cny(minor: i64) -> Money {
    Money::parse("CNY", minor).unwrap()
}

pub(super) fn buyer() -> BuyerId {
    BuyerId::new(37).unwrap()
}

pub(super) fn merchant() -> MerchantId {
    MerchantId::new(7).unwrap()
}

pub(super) fn rider(id: i64) -> RiderId {
    RiderId::new(id).unwrap()
}

pub(super) fn offer(id: &str) -> OfferId {
    OfferId::parse(id).unwrap()
}

pub(super) fn txn(id: &str) -> PaymentTxnId {
    PaymentTxnId::parse(id).unwrap()
}

pub(super) fn order_no() -> OrderNo {
    OrderNo::new(t(1_000), 1, buyer()).unwrap()
}

pub(super) fn line(sku: &str, quantity: i64, unit_price: Money) -> OrderLine {
    OrderLine {
        sku: SkuId::parse(sku).unwrap(),
        name: Name::parse(format!("dish {sku}")).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit_price,
    }
}

pub(super) fn address() -> Address {
    Address::parse("1 Chang'an Ave", 39.9, 116.4).unwrap()
}

/// Two lattes at 15.00 and a bagel at 8.00.
pub(super) fn lines() -> Vec<OrderLine> {
    vec![line("latte", 2, cny(1500)), line("bagel", 1, cny(800))]
}

pub(super) const TOTAL: i64 = 3800;
pub(super) const PAYMENT_DEADLINE: i64 = 10_000;
pub(super) const OFFER_EXPIRES: i64 = 20_000;
pub(super) const DELIVERY_DEADLINE: i64 = 100_000;

pub(super) fn submit_with(lines: Vec<OrderLine>) -> OrderCommand {
    OrderCommand::Submit {
        order_no: order_no(),
        buyer: buyer(),
        merchant: merchant(),
        lines,
        address: address(),
        at: t(1_000),
        refused: None,
    }
}

pub(super) fn submitted() -> OrderEvent {
    OrderSubmitted {
        order_no: order_no(),
        buyer: buyer(),
        merchant: merchant(),
        lines: lines(),
        total: cny(TOTAL),
        address: address(),
        at: t(1_000),
    }
    .into()
}

pub(super) fn created() -> OrderEvent {
    OrderCreated {
        payment_deadline: t(PAYMENT_DEADLINE),
        at: t(2_000),
    }
    .into()
}

pub(super) fn failed() -> OrderEvent {
    OrderFailed {
        reason: crate::FailureReason::OutOfStock,
        sku: None,
        at: t(2_000),
    }
    .into()
}

pub(super) fn paid() -> OrderEvent {
    OrderPaid {
        txn: txn("txn-1"),
        amount: cny(TOTAL),
        at: t(3_000),
    }
    .into()
}

pub(super) fn cancelled() -> OrderEvent {
    OrderCancelled {
        cause: CancelCause::Buyer {
            reason: Reason::parse("changed my mind").unwrap(),
        },
        at: t(3_000),
    }
    .into()
}

/// Round `round` offered to riders 1 and 2 under `offer-{round}`.
pub(super) fn notified(round: u32) -> OrderEvent {
    RidersNotified {
        offer_id: offer(&format!("offer-{round}")),
        round,
        riders: vec![rider(1), rider(2)],
        radius_m: 3_000,
        expires_at: t(OFFER_EXPIRES * i64::from(round)),
        at: t(4_000),
    }
    .into()
}

pub(super) fn offer_expired(round: u32) -> OrderEvent {
    OfferExpired {
        offer_id: offer(&format!("offer-{round}")),
        round,
        at: t(OFFER_EXPIRES * i64::from(round)),
    }
    .into()
}

pub(super) fn grabbed() -> OrderEvent {
    OrderGrabbed {
        rider: rider(1),
        offer_id: offer("offer-1"),
        delivery_deadline: t(DELIVERY_DEADLINE),
        at: t(5_000),
    }
    .into()
}

pub(super) fn picked_up() -> OrderEvent {
    OrderPickedUp {
        rider: rider(1),
        at: t(6_000),
    }
    .into()
}

pub(super) fn timed_out() -> OrderEvent {
    DeliveryTimedOut {
        delivery_deadline: t(DELIVERY_DEADLINE),
        at: t(DELIVERY_DEADLINE),
    }
    .into()
}

pub(super) fn delivered(late: bool) -> OrderEvent {
    OrderDelivered {
        rider: rider(1),
        late,
        at: t(if late { 120_000 } else { 50_000 }),
    }
    .into()
}

pub(super) fn compensated() -> OrderEvent {
    OrderCompensated {
        amount: cny(500),
        reason: Reason::parse("late").unwrap(),
        at: t(130_000),
    }
    .into()
}

pub(super) fn closed() -> OrderEvent {
    OrderClosed { at: t(140_000) }.into()
}

/// The history up to a picked-up order in DELIVERING.
pub(super) fn delivering() -> Vec<OrderEvent> {
    vec![
        submitted(),
        created(),
        paid(),
        notified(1),
        grabbed(),
        picked_up(),
    ]
}
