//! Events as the store would record them, without a store: positions per shard and versions
//! per stream are handed out in order, so suites feed read models exact logs.

use std::collections::HashMap;

use orderflow_domain::merchant::{MerchantEvent, MerchantOpened, MerchantRenamed};
use orderflow_domain::order::{
    CancelCause, DeliveryTimedOut, OrderClosed, OrderCompensated, OrderCreated, OrderDelivered,
    OrderEvent, OrderFailed, OrderGrabbed, OrderLine, OrderPaid, OrderPickedUp, OrderRefused,
    OrderSubmitted, RidersNotified,
};
use orderflow_domain::{
    Actor, Address, BuyerId, DomainEvent, FailureReason, GeoPoint, MerchantId, Money, Name,
    OfferId, OrderNo, PaymentTxnId, Quantity, Reason, RiderId, Shard, SkuId, StreamId, Timestamp,
};
use orderflow_infra::store::{CommandId, CorrelationId, EventMetadata, Position, RecordedEvent};

use crate::model::ProjectionModel;

/// 2026-11-22T07:17:12.345Z.
pub const T0: i64 = 1_795_331_832_345;

pub fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

pub fn cny(minor: i64) -> Money {
    Money::parse("CNY", minor).expect("valid money")
}

/// A log of recorded events across shards.
#[derive(Default)]
pub struct Log {
    heads: HashMap<Shard, u64>,
    versions: HashMap<StreamId, u64>,
    pub events: Vec<RecordedEvent>,
}

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `event` on `stream` at the next position of its shard.
    pub fn record<E: DomainEvent>(&mut self, stream: &StreamId, event: E) -> RecordedEvent {
        let shard = stream.shard();
        let head = self.heads.entry(shard).or_default();
        *head += 1;
        let version = self.versions.entry(stream.clone()).or_default();
        *version += 1;
        let recorded = RecordedEvent {
            shard,
            position: Position::new(*head),
            stream: stream.clone(),
            stream_version: *version,
            event_id: uuid_like(shard, *head),
            event_type: event.event_type().to_owned(),
            event_version: event.event_version(),
            payload: event.encode().expect("events encode").into(),
            metadata: EventMetadata {
                command_id: CommandId::parse(format!("cmd-{}-{}", shard.index(), head))
                    .expect("command id"),
                correlation_id: CorrelationId::parse("corr-suite").expect("correlation id"),
                causation_id: None,
                actor: Actor::system("suite"),
                occurred_at: at(0),
            },
            recorded_at: at(0),
        };
        self.events.push(recorded.clone());
        recorded
    }

    pub fn order(&mut self, no: &OrderNo, event: impl Into<OrderEvent>) -> RecordedEvent {
        self.record(&no.stream_id(), event.into())
    }

    pub fn merchant(&mut self, merchant: MerchantId, event: impl Into<MerchantEvent>) {
        self.record(&merchant.stream_id(), event.into());
    }

    /// The events of one shard, in position order.
    pub fn shard(&self, shard: Shard) -> Vec<RecordedEvent> {
        self.events
            .iter()
            .filter(|e| e.shard == shard)
            .cloned()
            .collect()
    }

    /// Applies every shard's events to `model` in batches of `batch`.
    pub async fn apply_to(&self, model: &dyn ProjectionModel, batch: usize) {
        for shard in Shard::all() {
            for chunk in self.shard(shard).chunks(batch) {
                model.apply(shard, chunk).await.expect("apply");
            }
        }
    }
}

fn uuid_like(shard: Shard, position: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(u64::from(shard.index()), position)
}

pub fn buyer(id: i64) -> BuyerId {
    BuyerId::new(id).expect("buyer id")
}

pub fn merchant(id: i64) -> MerchantId {
    MerchantId::new(id).expect("merchant id")
}

pub fn order_no(offset_ms: i64, buyer_id: i64) -> OrderNo {
    OrderNo::new(at(offset_ms), 0, buyer(buyer_id)).expect("order number")
}

/// `OrderSubmitted` of one line (`dish`, 2 × 28.00) to `address`.
pub fn submitted(
    no: &OrderNo,
    buyer_id: i64,
    merchant_id: i64,
    dish: &str,
    address: &str,
    offset_ms: i64,
) -> OrderSubmitted {
    let line = OrderLine {
        sku: SkuId::parse(dish.to_lowercase().replace(' ', "-")).expect("sku"),
        name: Name::parse(dish).expect("name"),
        quantity: Quantity::new(2).expect("quantity"),
        unit_price: cny(2800),
    };
    OrderSubmitted {
        order_no: no.clone(),
        buyer: buyer(buyer_id),
        merchant: merchant(merchant_id),
        lines: vec![line],
        total: cny(5600),
        address: Address::parse(address, 31.24, 121.5).expect("address"),
        at: at(offset_ms),
    }
}

/// `submitted`'s order refused as it was submitted, its one line's SKU giving `reason`.
pub fn refused(submitted: OrderSubmitted, reason: FailureReason) -> OrderRefused {
    let sku = submitted.lines[0].sku.clone();
    OrderRefused {
        submitted,
        reason,
        sku,
    }
}

pub fn opened(name: &str) -> MerchantOpened {
    MerchantOpened {
        name: Name::parse(name).expect("name"),
        location: GeoPoint::new(31.23, 121.47).expect("point"),
        at: at(0),
    }
}

pub fn renamed(name: &str) -> MerchantRenamed {
    MerchantRenamed {
        name: Name::parse(name).expect("name"),
        at: at(0),
    }
}

/// The rest of a late delivery, after `submitted`: created, paid, notified, grabbed by
/// `rider`, picked up, timed out, delivered, compensated 5.00, closed.
pub fn late_delivery(log: &mut Log, no: &OrderNo, rider: i64) {
    let rider = RiderId::new(rider).expect("rider id");
    let offer = OfferId::parse("offer-1").expect("offer id");
    log.order(
        no,
        OrderCreated {
            payment_deadline: at(900_000),
            at: at(10),
        },
    );
    log.order(
        no,
        OrderPaid {
            txn: PaymentTxnId::parse("txn-1").expect("txn"),
            amount: cny(5600),
            at: at(20),
        },
    );
    log.order(
        no,
        RidersNotified {
            offer_id: offer.clone(),
            round: 1,
            riders: vec![rider],
            radius_m: 3000,
            expires_at: at(30_030),
            at: at(30),
        },
    );
    log.order(
        no,
        OrderGrabbed {
            rider,
            offer_id: offer,
            delivery_deadline: at(1_800_040),
            at: at(40),
        },
    );
    log.order(no, OrderPickedUp { rider, at: at(50) });
    log.order(
        no,
        DeliveryTimedOut {
            delivery_deadline: at(1_800_040),
            at: at(1_800_040),
        },
    );
    log.order(
        no,
        OrderDelivered {
            rider,
            late: true,
            at: at(1_900_000),
        },
    );
    log.order(
        no,
        OrderCompensated {
            amount: cny(500),
            reason: Reason::parse("late").expect("reason"),
            at: at(1_900_010),
        },
    );
    log.order(no, OrderClosed { at: at(1_900_020) });
}

pub fn created(offset_ms: i64) -> OrderCreated {
    OrderCreated {
        payment_deadline: at(offset_ms + 900_000),
        at: at(offset_ms),
    }
}

pub fn failed(offset_ms: i64) -> OrderFailed {
    OrderFailed {
        reason: FailureReason::OutOfStock,
        sku: None,
        at: at(offset_ms),
    }
}

pub fn paid(offset_ms: i64) -> OrderPaid {
    OrderPaid {
        txn: PaymentTxnId::parse(format!("txn-{offset_ms}")).expect("txn"),
        amount: cny(5600),
        at: at(offset_ms),
    }
}

pub fn buyer_cancel() -> CancelCause {
    CancelCause::Buyer {
        reason: Reason::parse("changed my mind").expect("reason"),
    }
}
