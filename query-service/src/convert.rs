//! Read-model rows → the contract's messages.

use orderflow_domain::Money;
use orderflow_projections::orders::{OrderView, StatusChange};
use orderflow_proto::convert::to_proto::{failure_reason, order_status, timestamp};
use orderflow_proto::v1 as pb;

use crate::auth::OrderParties;

pub fn order(view: &OrderView) -> pb::Order {
    pb::Order {
        order_no: view.order_no.to_string(),
        buyer_id: view.buyer.get(),
        merchant_id: view.merchant.get(),
        status: order_status(view.status),
        lines: view
            .lines
            .iter()
            .map(|l| pb::OrderLineView {
                sku_id: l.sku.as_str().to_owned(),
                name: l.name.as_str().to_owned(),
                quantity: l.quantity.get(),
                unit_price: Some(l.unit_price.into()),
            })
            .collect(),
        total: Some(view.total.into()),
        delivery_address: Some((&view.address).into()),
        rider_id: view.rider.map_or(0, |r| r.get()),
        failure_reason: failure_reason(view.failure),
        created_at: Some(timestamp(view.created_at)),
        updated_at: Some(timestamp(view.updated_at)),
        payment_deadline: view.payment_deadline.map(timestamp),
        delivery_deadline: view.delivery_deadline.map(timestamp),
        late: view.late,
        compensation: Some(
            view.compensation
                .unwrap_or_else(|| Money::zero(view.total.currency()))
                .into(),
        ),
        refunded: Some(view.refunded.into()),
        timeline: view
            .timeline
            .iter()
            .map(|c| pb::StatusChange {
                status: order_status(c.status),
                at: Some(timestamp(c.at)),
            })
            .collect(),
    }
}

pub fn update(view: &OrderView, change: &StatusChange) -> pb::OrderUpdate {
    pb::OrderUpdate {
        order_no: view.order_no.to_string(),
        status: order_status(change.status),
        event_type: change.event_type.clone(),
        at: Some(timestamp(change.at)),
    }
}

pub fn parties(view: &OrderView) -> OrderParties {
    OrderParties {
        buyer: view.buyer,
        merchant: view.merchant,
        rider: view.rider,
    }
}
