//! Buyers: each planned order is one buyer's short story, told in simulated time. Submit at
//! the planned minute, learn whether the order was created (stock reserved), then pay after a
//! while, cancel, or walk away and let the payment window close.

use std::sync::Arc;
use std::time::Duration;

use orderflow_proto::v1 as pb;

use super::api::{money, Caller};
use super::plan::{PlannedOrder, Scenario};
use super::sim::{Sim, Submitted};
use super::watch::Creation;

/// One buyer's order, from submit to paid (or cancelled, or abandoned). `index` seeds this
/// order's own random numbers.
pub async fn order(sim: Arc<Sim>, index: usize, planned: PlannedOrder) {
    let mut rng = sim.rng.fork(0x0B0B_0000 + index as u64);
    if !sim.clock.sleep_until(planned.at).await {
        return;
    }
    let merchant = &sim.city.merchants[planned.merchant];
    let buyer = sim
        .city
        .buyers
        .get((planned.buyer - 1) as usize)
        .expect("planned buyers exist");
    let request = pb::SubmitOrderRequest {
        request_id: sim.api.request_id(),
        buyer_id: planned.buyer,
        merchant_id: merchant.id,
        lines: planned
            .lines
            .iter()
            .map(|l| pb::OrderLine {
                sku_id: l.sku.clone(),
                quantity: l.quantity,
                unit_price: Some(money(l.unit_price)),
            })
            .collect(),
        delivery_address: Some(pb::Address {
            text: format!("buyer {} home", planned.buyer),
            location: Some(buyer.home.proto()),
        }),
    };
    let Ok(reply) = sim
        .api
        .submit_order(Caller::Buyer(planned.buyer), request)
        .await
    else {
        // Counted by the stats; nothing was created.
        return;
    };
    let order_no = reply.order_no;
    sim.record_submitted(
        &order_no,
        Submitted {
            scenario: planned.scenario,
            total: planned.total(),
            pays: planned.pays,
            merchant: planned.merchant,
        },
    );
    match sim.creation(&order_no, planned.buyer).await {
        Creation::Created => {}
        // Out of stock (the flash sale's losers, a sold-out dish): nothing more to do.
        Creation::Failed(_) | Creation::Unknown => return,
    }
    let pays = match planned.scenario {
        Scenario::BuyerCancels => {
            if !sim
                .clock
                .sleep(Duration::from_secs(rng.range(20, 300)))
                .await
            {
                return;
            }
            let _ = sim
                .api
                .cancel_order(
                    Caller::Buyer(planned.buyer),
                    pb::CancelOrderRequest {
                        request_id: sim.api.request_id(),
                        order_no: order_no.clone(),
                        reason: "changed my mind".into(),
                    },
                )
                .await;
            false
        }
        Scenario::PaymentTimeout => false,
        _ => planned.pays,
    };
    if !pays {
        return;
    }
    // Well inside the payment window (15 minutes by default).
    if !sim
        .clock
        .sleep(Duration::from_secs(rng.range(5, 120)))
        .await
    {
        return;
    }
    let _ = sim
        .api
        .confirm_payment(
            Caller::Payments,
            pb::ConfirmPaymentRequest {
                request_id: sim.api.request_id(),
                order_no: order_no.clone(),
                payment_txn_id: format!("txn-{order_no}"),
                amount: Some(money(planned.total())),
            },
        )
        .await;
}
