//! The operations desk: after every delivery it looks at the order, and when it was late
//! (timed out by the delivery deadline, or delivered at or after it) it compensates the buyer
//! and then closes the order. On-time orders are closed by the close deadline, not by ops.

use std::sync::Arc;
use std::time::Duration;

use orderflow_proto::v1 as pb;

use super::api::{money, Caller};
use super::rng::Rng;
use super::sim::Sim;

/// Smallest compensation, in fen.
const MIN_COMPENSATION: i64 = 500;

/// `delivered`: the consistency token of the delivery's answer, so ops read the order with
/// the delivery applied (read-your-writes), not an older row.
pub async fn after_delivery(sim: Arc<Sim>, order_no: String, delivered: String, mut rng: Rng) {
    if !sim.clock.sleep(Duration::from_secs(60)).await {
        return;
    }
    if sim.was_late(&order_no, &delivered).await != Some(true) {
        return;
    }
    let Some(total) = sim.submitted(&order_no).map(|s| s.total) else {
        return;
    };
    if !sim
        .clock
        .sleep(Duration::from_secs(rng.range(60, 300)))
        .await
    {
        return;
    }
    let amount = (total / 5).max(MIN_COMPENSATION).min(total);
    let compensated = sim
        .api
        .compensate(
            Caller::Ops,
            pb::CompensateRequest {
                request_id: sim.api.request_id(),
                order_no: order_no.clone(),
                amount: Some(money(amount)),
                reason: "late delivery".into(),
            },
        )
        .await;
    if compensated.is_err() {
        return;
    }
    let _ = sim
        .api
        .close_order(
            Caller::Ops,
            pb::CloseOrderRequest {
                request_id: sim.api.request_id(),
                order_no,
            },
        )
        .await;
}
