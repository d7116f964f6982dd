//! Domain events → their protobuf schema (`orderflow/v1/events.proto`), for consumers in other
//! languages and for tools that want typed events rather than the bus's JSON.
//!
//! Every `match` here lists every variant without a wildcard, so a new domain event does not
//! compile until it has a message; the test below also checks that every stored type name has
//! a message of the same name in the descriptor set.

use orderflow_domain::merchant::MerchantEvent;
use orderflow_domain::order::{CancelCause, OrderEvent, OrderSubmitted, RefundReason};
use orderflow_domain::rider::RiderEvent;
use orderflow_domain::sku::{ReleaseReason, SkuEvent};
use orderflow_domain::{Money, Timestamp};
use prost_types::Timestamp as PbTimestamp;

use super::to_proto::{failure_reason, timestamp};
use crate::v1 as pb;
use crate::v1::event_envelope::Payload;

fn at(t: Timestamp) -> Option<PbTimestamp> {
    Some(timestamp(t))
}

fn money(m: Money) -> Option<pb::Money> {
    Some(m.into())
}

fn submitted(e: &OrderSubmitted) -> pb::OrderSubmitted {
    pb::OrderSubmitted {
        order_no: e.order_no.as_str().to_owned(),
        buyer_id: e.buyer.get(),
        merchant_id: e.merchant.get(),
        lines: e
            .lines
            .iter()
            .map(|l| pb::SubmittedLine {
                sku_id: l.sku.as_str().to_owned(),
                name: l.name.as_str().to_owned(),
                quantity: l.quantity.get(),
                unit_price: money(l.unit_price),
            })
            .collect(),
        total: money(e.total),
        address: Some((&e.address).into()),
        at: at(e.at),
    }
}

/// An order stream's event as its protobuf payload.
pub fn order_payload(event: &OrderEvent) -> Payload {
    match event {
        OrderEvent::Submitted(e) => Payload::OrderSubmitted(submitted(e)),
        OrderEvent::Refused(e) => Payload::OrderRefused(pb::OrderRefused {
            submitted: Some(submitted(&e.submitted)),
            reason: failure_reason(Some(e.reason)),
            sku_id: e.sku.as_str().to_owned(),
        }),
        OrderEvent::Created(e) => Payload::OrderCreated(pb::OrderCreated {
            payment_deadline: at(e.payment_deadline),
            at: at(e.at),
        }),
        OrderEvent::Failed(e) => Payload::OrderFailed(pb::OrderFailed {
            reason: failure_reason(Some(e.reason)),
            sku_id: e
                .sku
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            at: at(e.at),
        }),
        OrderEvent::Paid(e) => Payload::OrderPaid(pb::OrderPaid {
            payment_txn_id: e.txn.as_str().to_owned(),
            amount: money(e.amount),
            at: at(e.at),
        }),
        OrderEvent::PaymentReceived(e) => Payload::PaymentReceived(pb::PaymentReceived {
            payment_txn_id: e.txn.as_str().to_owned(),
            amount: money(e.amount),
            at: at(e.at),
        }),
        OrderEvent::PaymentRefunded(e) => Payload::PaymentRefunded(pb::PaymentRefunded {
            payment_txn_id: e.txn.as_str().to_owned(),
            amount: money(e.amount),
            reason: refund_reason(e.reason) as i32,
            at: at(e.at),
        }),
        OrderEvent::Cancelled(e) => Payload::OrderCancelled(pb::OrderCancelled {
            cause: Some(match &e.cause {
                CancelCause::Buyer { reason } => {
                    pb::order_cancelled::Cause::BuyerReason(reason.as_str().to_owned())
                }
                CancelCause::PaymentDeadlinePassed => {
                    pb::order_cancelled::Cause::PaymentDeadlinePassed(true)
                }
            }),
            at: at(e.at),
        }),
        OrderEvent::RidersNotified(e) => Payload::RidersNotified(pb::RidersNotified {
            offer_id: e.offer_id.as_str().to_owned(),
            round: e.round,
            rider_ids: e.riders.iter().map(|r| r.get()).collect(),
            radius_m: e.radius_m,
            expires_at: at(e.expires_at),
            at: at(e.at),
        }),
        OrderEvent::OfferExpired(e) => Payload::OfferExpired(pb::OfferExpired {
            offer_id: e.offer_id.as_str().to_owned(),
            round: e.round,
            at: at(e.at),
        }),
        OrderEvent::Grabbed(e) => Payload::OrderGrabbed(pb::OrderGrabbed {
            rider_id: e.rider.get(),
            offer_id: e.offer_id.as_str().to_owned(),
            delivery_deadline: at(e.delivery_deadline),
            at: at(e.at),
        }),
        OrderEvent::PickedUp(e) => Payload::OrderPickedUp(pb::OrderPickedUp {
            rider_id: e.rider.get(),
            at: at(e.at),
        }),
        OrderEvent::DeliveryTimedOut(e) => Payload::DeliveryTimedOut(pb::DeliveryTimedOut {
            delivery_deadline: at(e.delivery_deadline),
            at: at(e.at),
        }),
        OrderEvent::Delivered(e) => Payload::OrderDelivered(pb::OrderDelivered {
            rider_id: e.rider.get(),
            late: e.late,
            at: at(e.at),
        }),
        OrderEvent::Compensated(e) => Payload::OrderCompensated(pb::OrderCompensated {
            amount: money(e.amount),
            reason: e.reason.as_str().to_owned(),
            at: at(e.at),
        }),
        OrderEvent::Closed(e) => Payload::OrderClosed(pb::OrderClosed { at: at(e.at) }),
    }
}

fn refund_reason(r: RefundReason) -> pb::RefundReason {
    match r {
        RefundReason::OrderCancelled => pb::RefundReason::OrderCancelled,
        RefundReason::OrderFailed => pb::RefundReason::OrderFailed,
        RefundReason::AlreadyPaid => pb::RefundReason::AlreadyPaid,
    }
}

/// A SKU stream's event as its protobuf payload.
pub fn sku_payload(event: &SkuEvent) -> Payload {
    match event {
        SkuEvent::Listed(e) => Payload::DishListed(pb::DishListed {
            merchant_id: e.merchant.get(),
            name: e.name.as_str().to_owned(),
            price: money(e.price),
            at: at(e.at),
        }),
        SkuEvent::Delisted(e) => Payload::DishDelisted(pb::DishDelisted { at: at(e.at) }),
        SkuEvent::StockAdded(e) => Payload::StockAdded(pb::StockAdded {
            quantity: e.quantity.get(),
            at: at(e.at),
        }),
        SkuEvent::Reserved(e) => Payload::StockReserved(pb::StockReserved {
            order_no: e.order_no.as_str().to_owned(),
            quantity: e.quantity.get(),
            unit_price: money(e.unit_price),
            expires_at: at(e.expires_at),
            at: at(e.at),
        }),
        SkuEvent::Deducted(e) => Payload::StockDeducted(pb::StockDeducted {
            order_no: e.order_no.as_str().to_owned(),
            quantity: e.quantity.get(),
            at: at(e.at),
        }),
        SkuEvent::Released(e) => Payload::StockReleased(pb::StockReleased {
            order_no: e.order_no.as_str().to_owned(),
            quantity: e.quantity.get(),
            reason: release_reason(e.reason) as i32,
            at: at(e.at),
        }),
    }
}

fn release_reason(r: ReleaseReason) -> pb::ReleaseReason {
    match r {
        ReleaseReason::OrderFailed => pb::ReleaseReason::OrderFailed,
        ReleaseReason::OrderCancelled => pb::ReleaseReason::OrderCancelled,
        ReleaseReason::Expired => pb::ReleaseReason::Expired,
    }
}

/// A rider stream's event as its protobuf payload.
pub fn rider_payload(event: &RiderEvent) -> Payload {
    match event {
        RiderEvent::WentOnline(e) => Payload::RiderWentOnline(pb::RiderWentOnline {
            location: Some(e.location.into()),
            capacity: i32::try_from(e.capacity.get()).unwrap_or(i32::MAX),
            at: at(e.at),
        }),
        RiderEvent::LocationReported(e) => {
            Payload::RiderLocationReported(pb::RiderLocationReported {
                location: Some(e.location.into()),
                at: at(e.at),
            })
        }
        RiderEvent::WentOffline(e) => {
            Payload::RiderWentOffline(pb::RiderWentOffline { at: at(e.at) })
        }
        RiderEvent::OrderAssigned(e) => Payload::RiderOrderAssigned(pb::RiderOrderAssigned {
            order_no: e.order_no.as_str().to_owned(),
            at: at(e.at),
        }),
        RiderEvent::OrderUnassigned(e) => Payload::RiderOrderUnassigned(pb::RiderOrderUnassigned {
            order_no: e.order_no.as_str().to_owned(),
            at: at(e.at),
        }),
        RiderEvent::OrderFinished(e) => Payload::RiderOrderFinished(pb::RiderOrderFinished {
            order_no: e.order_no.as_str().to_owned(),
            at: at(e.at),
        }),
    }
}

/// A merchant stream's event as its protobuf payload.
pub fn merchant_payload(event: &MerchantEvent) -> Payload {
    match event {
        MerchantEvent::Opened(e) => Payload::MerchantOpened(pb::MerchantOpened {
            name: e.name.as_str().to_owned(),
            location: Some(e.location.into()),
            at: at(e.at),
        }),
        MerchantEvent::Closed(e) => Payload::MerchantClosed(pb::MerchantClosed { at: at(e.at) }),
        MerchantEvent::Reopened(e) => {
            Payload::MerchantReopened(pb::MerchantReopened { at: at(e.at) })
        }
        MerchantEvent::Renamed(e) => Payload::MerchantRenamed(pb::MerchantRenamed {
            name: e.name.as_str().to_owned(),
            at: at(e.at),
        }),
        MerchantEvent::Moved(e) => Payload::MerchantMoved(pb::MerchantMoved {
            location: Some(e.location.into()),
            at: at(e.at),
        }),
    }
}

#[cfg(test)]
mod tests {
    use orderflow_domain::order::{OrderCancelled, OrderSubmitted};
    use orderflow_domain::sku::StockReleased;
    use orderflow_domain::{Address, BuyerId, MerchantId, OrderNo, Quantity, Reason};
    use prost::Message;

    use super::*;

    /// Every stored event type name of every aggregate has a message of that name in
    /// `events.proto`: a new event type fails here until its schema exists.
    #[test]
    fn every_stored_event_type_has_a_message() {
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let file = set
            .file
            .iter()
            .find(|f| f.name() == "orderflow/v1/events.proto")
            .expect("events.proto");
        let messages: Vec<&str> = file.message_type.iter().map(|m| m.name()).collect();
        let stored = OrderEvent::EVENT_TYPES
            .iter()
            .chain(SkuEvent::EVENT_TYPES)
            .chain(RiderEvent::EVENT_TYPES)
            .chain(MerchantEvent::EVENT_TYPES);
        for event_type in stored {
            assert!(messages.contains(event_type), "no message for {event_type}");
        }
        let envelope = file
            .message_type
            .iter()
            .find(|m| m.name() == "EventEnvelope")
            .unwrap();
        let payload_fields = envelope
            .field
            .iter()
            .filter(|f| f.oneof_index.is_some())
            .count();
        let total = OrderEvent::EVENT_TYPES.len()
            + SkuEvent::EVENT_TYPES.len()
            + RiderEvent::EVENT_TYPES.len()
            + MerchantEvent::EVENT_TYPES.len();
        assert_eq!(
            payload_fields, total,
            "one envelope payload field per event type"
        );
    }

    fn round_trip(payload: Payload) -> Payload {
        let envelope = pb::EventEnvelope {
            payload: Some(payload),
            ..Default::default()
        };
        pb::EventEnvelope::decode(envelope.encode_to_vec().as_slice())
            .unwrap()
            .payload
            .unwrap()
    }

    #[test]
    fn an_order_submission_carries_its_values() {
        let buyer = BuyerId::new(42).unwrap();
        let event: OrderEvent = OrderSubmitted {
            order_no: OrderNo::new(Timestamp::from_millis(1_700_000_000_000), 7, buyer).unwrap(),
            buyer,
            merchant: MerchantId::new(7).unwrap(),
            lines: vec![orderflow_domain::order::OrderLine {
                sku: orderflow_domain::SkuId::parse("beef-noodles").unwrap(),
                name: orderflow_domain::Name::parse("Beef noodles").unwrap(),
                quantity: Quantity::new(2).unwrap(),
                unit_price: Money::parse("CNY", 2_800).unwrap(),
            }],
            total: Money::parse("CNY", 5_600).unwrap(),
            address: Address::parse("88 Century Ave", 31.24, 121.5).unwrap(),
            at: Timestamp::from_millis(1_700_000_000_123),
        }
        .into();
        let Payload::OrderSubmitted(p) = round_trip(order_payload(&event)) else {
            panic!("wrong payload")
        };
        assert_eq!((p.buyer_id, p.merchant_id), (42, 7));
        assert!(p.order_no.ends_with("10"), "42 % 32 = 10: {}", p.order_no);
        assert_eq!(p.lines[0].quantity, 2);
        assert_eq!(p.total.unwrap().minor_units, 5_600);
        let at = p.at.unwrap();
        assert_eq!((at.seconds, at.nanos), (1_700_000_000, 123_000_000));
    }

    #[test]
    fn causes_and_reasons_map_to_their_enums() {
        let cancelled: OrderEvent = OrderCancelled {
            cause: CancelCause::Buyer {
                reason: Reason::parse("changed my mind").unwrap(),
            },
            at: Timestamp::from_millis(5),
        }
        .into();
        let Payload::OrderCancelled(p) = round_trip(order_payload(&cancelled)) else {
            panic!()
        };
        assert_eq!(
            p.cause,
            Some(pb::order_cancelled::Cause::BuyerReason(
                "changed my mind".into()
            ))
        );

        let released: SkuEvent = StockReleased {
            order_no: OrderNo::new(Timestamp::from_millis(1), 1, BuyerId::new(1).unwrap()).unwrap(),
            quantity: Quantity::new(3).unwrap(),
            reason: ReleaseReason::Expired,
            at: Timestamp::from_millis(9),
        }
        .into();
        let Payload::StockReleased(p) = round_trip(sku_payload(&released)) else {
            panic!()
        };
        assert_eq!(
            (p.quantity, p.reason),
            (3, pb::ReleaseReason::Expired as i32)
        );
    }
}
