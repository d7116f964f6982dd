//! Merchants during the hour: every so often each one restocks its dishes (stock is only ever
//! added to, never overwritten). The flash-sale dish is never restocked: its stock is the sale.

use std::sync::Arc;
use std::time::Duration;

use super::city::restock;
use super::clock::SimTime;
use super::sim::Sim;

/// Simulated time between two restocks of one merchant.
const RESTOCK_EVERY: Duration = Duration::from_secs(20 * 60);

pub async fn restock_now_and_then(sim: Arc<Sim>, merchant: usize, until: SimTime) {
    let mut rng = sim.rng.fork(0x5700_0000 + merchant as u64);
    let m = &sim.city.merchants[merchant];
    let phase = Duration::from_millis(rng.range(0, RESTOCK_EVERY.as_millis() as u64));
    if !sim.clock.sleep(phase).await {
        return;
    }
    while sim.clock.elapsed() < until && !sim.winding_down() {
        for dish in &m.dishes {
            let quantity = rng.range(20, 60) as i64;
            if let Err(e) = restock(&sim.api, m.id, &dish.sku, quantity).await {
                tracing::debug!(error = %e, "demo: restock refused");
            }
        }
        if !sim.clock.sleep(RESTOCK_EVERY).await {
            return;
        }
    }
}
