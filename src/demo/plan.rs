//! The plan of the hour, drawn from the seed before anything runs: which buyer orders what from
//! whom and when, and what becomes of the order (the scenario mix), plus the flash sale.

use std::time::Duration;

use serde::Serialize;

use super::city::City;
use super::clock::SimTime;
use super::rng::Rng;

/// What the simulated people do with one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Paid, offered, grabbed, picked up, delivered in time, closed by the close deadline.
    Ordinary,
    /// The buyer cancels before paying.
    BuyerCancels,
    /// The buyer never pays; the payment deadline cancels the order.
    PaymentTimeout,
    /// Every rider offered the first round ignores it; the order is offered again, wider.
    OfferTimeout,
    /// The rider is slow: the delivery deadline passes, ops compensate, then close.
    LateDelivery,
    /// A flash-sale order that is paid when it gets stock.
    FlashSale,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Ordinary,
        Scenario::BuyerCancels,
        Scenario::PaymentTimeout,
        Scenario::OfferTimeout,
        Scenario::LateDelivery,
        Scenario::FlashSale,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Scenario::Ordinary => "ordinary",
            Scenario::BuyerCancels => "buyer cancels",
            Scenario::PaymentTimeout => "payment timeout",
            Scenario::OfferTimeout => "offer timeout",
            Scenario::LateDelivery => "late delivery",
            Scenario::FlashSale => "flash sale",
        }
    }
}

/// Shares of the ordinary hour's orders that take each special path (the rest are ordinary).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub buyer_cancels: f64,
    pub payment_timeout: f64,
    pub offer_timeout: f64,
    pub late_delivery: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            buyer_cancels: 0.05,
            payment_timeout: 0.05,
            offer_timeout: 0.05,
            late_delivery: 0.05,
        }
    }
}

impl Mix {
    fn draw(&self, rng: &mut Rng) -> Scenario {
        let x = rng.unit();
        let mut edge = 0.0;
        for (share, scenario) in [
            (self.buyer_cancels, Scenario::BuyerCancels),
            (self.payment_timeout, Scenario::PaymentTimeout),
            (self.offer_timeout, Scenario::OfferTimeout),
            (self.late_delivery, Scenario::LateDelivery),
        ] {
            edge += share;
            if x < edge {
                return scenario;
            }
        }
        Scenario::Ordinary
    }
}

#[derive(Debug, Clone)]
pub struct PlannedLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
}

#[derive(Debug, Clone)]
pub struct PlannedOrder {
    pub at: SimTime,
    pub buyer: i64,
    /// Index into [`City::merchants`].
    pub merchant: usize,
    pub lines: Vec<PlannedLine>,
    pub scenario: Scenario,
    /// The flash sale's buyers who get stock but never pay (their reservation is released by
    /// the payment deadline).
    pub pays: bool,
}

impl PlannedOrder {
    pub fn total(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity * l.unit_price).sum()
    }
}

/// The flash sale's shape.
#[derive(Debug, Clone, Copy)]
pub struct FlashPlan {
    pub at: SimTime,
    /// Submits within `spread` of `at`.
    pub submits: usize,
    pub spread: Duration,
    /// Share of the buyers who got stock and pay.
    pub pay_share: f64,
}

/// Orders of the hour, sorted by time. Arrivals follow a lunch peak: the rate in the middle of
/// the run is about 2.5 times the rate at its ends.
pub fn orders(
    city: &City,
    count: usize,
    minutes: u32,
    mix: &Mix,
    flash: Option<FlashPlan>,
    rng: &mut Rng,
) -> Vec<PlannedOrder> {
    let span_ms = u64::from(minutes.max(1)) * 60_000;
    let mut out: Vec<PlannedOrder> = (0..count)
        .map(|_| {
            let at = Duration::from_millis(peak_time(rng, span_ms));
            let buyer = rng.pick(&city.buyers);
            // Mostly the nearest few: people order from what is close.
            let nearest = &buyer.nearby[..buyer.nearby.len().min(8)];
            let merchant = *rng.pick(nearest);
            let dishes = &city.merchants[merchant].dishes;
            let line_count = rng.range(1, 4).min(dishes.len() as u64) as usize;
            let first = rng.range(0, dishes.len() as u64) as usize;
            let lines = (0..line_count)
                .map(|k| {
                    let dish = &dishes[(first + k) % dishes.len()];
                    PlannedLine {
                        sku: dish.sku.clone(),
                        quantity: if rng.chance(0.8) { 1 } else { 2 },
                        unit_price: dish.price,
                    }
                })
                .collect();
            PlannedOrder {
                at,
                buyer: buyer.id,
                merchant,
                lines,
                scenario: mix.draw(rng),
                pays: true,
            }
        })
        .collect();
    if let (Some(plan), Some(dish)) = (flash, city.flash.as_ref()) {
        for _ in 0..plan.submits {
            let jitter = rng.range(0, plan.spread.as_millis().max(1) as u64);
            out.push(PlannedOrder {
                at: plan.at + Duration::from_millis(jitter),
                buyer: rng.pick(&city.buyers).id,
                merchant: dish.merchant,
                lines: vec![PlannedLine {
                    sku: dish.dish.sku.clone(),
                    quantity: 1,
                    unit_price: dish.dish.price,
                }],
                scenario: Scenario::FlashSale,
                pays: rng.chance(plan.pay_share),
            });
        }
    }
    out.sort_by_key(|o| o.at);
    out
}

/// A time in `0..span_ms`, denser in the middle (a tent mixed with uniform).
fn peak_time(rng: &mut Rng, span_ms: u64) -> u64 {
    let t = if rng.chance(0.5) {
        rng.unit()
    } else {
        (rng.unit() + rng.unit()) / 2.0
    };
    ((t * span_ms as f64) as u64).min(span_ms.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::city::CitySize;

    #[test]
    fn the_plan_has_every_order_in_time_with_the_mix_and_the_flash_sale() {
        let mut rng = Rng::new(11);
        let city = City::generate(
            CitySize {
                merchants: 10,
                riders: 10,
                buyers: 100,
                flash_units: 5,
            },
            &mut rng,
        );
        let flash = FlashPlan {
            at: Duration::from_secs(600),
            submits: 50,
            spread: Duration::from_secs(30),
            pay_share: 0.9,
        };
        let plan = orders(&city, 2_000, 60, &Mix::default(), Some(flash), &mut rng);
        assert_eq!(plan.len(), 2_050);
        assert!(
            plan.windows(2).all(|w| w[0].at <= w[1].at),
            "sorted by time"
        );
        assert!(plan.iter().all(|o| o.at < Duration::from_secs(3_600)));
        assert!(plan.iter().all(|o| !o.lines.is_empty() && o.total() > 0));
        let count = |s| plan.iter().filter(|o| o.scenario == s).count();
        assert_eq!(count(Scenario::FlashSale), 50);
        for s in [
            Scenario::BuyerCancels,
            Scenario::PaymentTimeout,
            Scenario::OfferTimeout,
            Scenario::LateDelivery,
        ] {
            assert!((50..=160).contains(&count(s)), "{s:?}: {}", count(s));
        }
        // Lines of one order never repeat a sku (the API refuses that).
        for o in &plan {
            let mut skus: Vec<_> = o.lines.iter().map(|l| &l.sku).collect();
            skus.sort();
            skus.dedup();
            assert_eq!(skus.len(), o.lines.len());
        }
    }
}
