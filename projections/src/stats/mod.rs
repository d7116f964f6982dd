//! `merchant_hourly`: ops statistics per merchant per hour — orders submitted, GMV (the
//! amounts paid, in minor units of the order's currency), cancellations, late deliveries and
//! compensation paid — each counted in the hour its event happened.
//!
//! The contract has no RPC for it: it is read through [`StatsReader`] (the read app exposes
//! it, `ReadApp::stats`), and analytics read the `merchant_hourly` table or follow its row
//! changes on `{prefix}.views.merchant_hourly.{shard}` (key `{merchant_id}.{hour_ms}.{shard}`).
//!
//! Each hour is stored as **partials, one per event-store shard** (the shard of the orders
//! counted in it): a merchant's orders live on every shard, and one row per hour written by
//! all 32 shard projectors was a hot row whose lock they queued on (a flash sale). An hour's
//! figures are the sum of its partials: [`StatsReader::hours`] sums them, a row change
//! carries the shard's partial after the change (keep the last one per key and sum).
//!
//! Later order events do not name the merchant, so the projection keeps each order's
//! merchant (a small context row written at `OrderSubmitted`). The fold yields additive
//! **deltas** per (merchant, hour), applied as increments: the checkpoint, moved in the same
//! transaction, makes each event count exactly once.

pub mod memory;
pub mod pg;

use std::collections::HashMap;

use async_trait::async_trait;
use orderflow_domain::order::OrderEvent;
use orderflow_domain::{DomainEvent, MerchantId, Shard, Timestamp};
use orderflow_infra::store::{Position, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::error::ProjectionError;

pub use memory::MemoryMerchantHourly;
pub use pg::PgMerchantHourly;

pub const MERCHANT_HOURLY: &str = "merchant_hourly";

const HOUR_MS: i64 = 3_600_000;

/// The start of the hour `at` falls in.
pub fn hour_of(at: Timestamp) -> Timestamp {
    Timestamp::from_millis(at.as_millis().div_euclid(HOUR_MS) * HOUR_MS)
}

/// One merchant's hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourlyStats {
    pub merchant: MerchantId,
    /// The hour's start.
    pub hour: Timestamp,
    pub orders: i64,
    /// Paid amounts, minor units.
    pub gmv: i64,
    pub cancellations: i64,
    pub late_deliveries: i64,
    /// Compensation paid, minor units.
    pub compensation: i64,
}

impl HourlyStats {
    pub fn empty(merchant: MerchantId, hour: Timestamp) -> Self {
        HourlyStats {
            merchant,
            hour,
            orders: 0,
            gmv: 0,
            cancellations: 0,
            late_deliveries: 0,
            compensation: 0,
        }
    }

    /// Adds `delta`'s counts (same merchant and hour).
    pub fn add(&mut self, delta: &HourlyStats) {
        self.orders += delta.orders;
        self.gmv += delta.gmv;
        self.cancellations += delta.cancellations;
        self.late_deliveries += delta.late_deliveries;
        self.compensation += delta.compensation;
    }

    /// The key of its hour: `{merchant_id}.{hour_ms}`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.merchant, self.hour.as_millis())
    }

    /// The key of the row changes of `shard`'s partial of the hour:
    /// `{merchant_id}.{hour_ms}.{shard}`.
    pub fn partial_key(&self, shard: Shard) -> String {
        format!("{}.{}", self.key(), shard.index())
    }
}

/// What one order event adds to its merchant's hour (`None`: nothing counted).
pub fn delta(merchant: MerchantId, event: &OrderEvent) -> Option<HourlyStats> {
    let (at, set): (Timestamp, fn(&mut HourlyStats, i64)) = match event {
        OrderEvent::Submitted(e) => (e.at, |s, _| s.orders = 1),
        OrderEvent::Refused(e) => (e.submitted.at, |s, _| s.orders = 1),
        OrderEvent::Paid(e) => (e.at, |s, n| s.gmv = n),
        OrderEvent::Cancelled(e) => (e.at, |s, _| s.cancellations = 1),
        OrderEvent::DeliveryTimedOut(e) => (e.at, |s, _| s.late_deliveries = 1),
        OrderEvent::Compensated(e) => (e.at, |s, n| s.compensation = n),
        _ => return None,
    };
    let amount = match event {
        OrderEvent::Paid(e) => e.amount.minor_units(),
        OrderEvent::Compensated(e) => e.amount.minor_units(),
        _ => 0,
    };
    let mut stats = HourlyStats::empty(merchant, hour_of(at));
    set(&mut stats, amount);
    Some(stats)
}

/// What a batch adds: per (merchant, hour) the summed delta and the position of its last
/// event, in first-change order; and the merchants of orders first seen in the batch.
#[derive(Debug, Default, PartialEq)]
pub struct StatsDeltas {
    pub hours: Vec<(HourlyStats, Position)>,
    pub new_orders: Vec<(String, MerchantId)>,
}

/// The order numbers a batch touches, to load their merchants at once.
pub(crate) fn touched_orders(events: &[&RecordedEvent]) -> Vec<String> {
    crate::orders::touched_orders(events)
}

/// Folds a batch's order events into deltas; `merchants` holds the merchant of each touched
/// order known before the batch and gains the new ones. Unreadable events are logged and
/// skipped.
pub(crate) fn fold_stats(
    merchants: &mut HashMap<String, MerchantId>,
    events: &[&RecordedEvent],
) -> StatsDeltas {
    let mut out = StatsDeltas::default();
    for recorded in events {
        if recorded.stream.category() != orderflow_domain::stream::ORDER_CATEGORY {
            continue;
        }
        let event = match OrderEvent::decode(
            &recorded.event_type,
            recorded.event_version,
            &recorded.payload,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(projection = MERCHANT_HOURLY, error = %e, "skips an event");
                continue;
            }
        };
        let key = recorded.stream.id().to_owned();
        let submitted = match &event {
            OrderEvent::Submitted(e) => Some(e),
            OrderEvent::Refused(e) => Some(&e.submitted),
            _ => None,
        };
        if let Some(e) = submitted {
            if merchants.insert(key.clone(), e.merchant).is_none() {
                out.new_orders.push((key.clone(), e.merchant));
            }
        }
        let Some(merchant) = merchants.get(&key).copied() else {
            tracing::error!(projection = MERCHANT_HOURLY, stream = %recorded.stream,
                "order event without a submitted order; skipped");
            continue;
        };
        let Some(d) = delta(merchant, &event) else {
            continue;
        };
        match out
            .hours
            .iter_mut()
            .find(|(h, _)| (h.merchant, h.hour) == (d.merchant, d.hour))
        {
            Some((sum, position)) => {
                sum.add(&d);
                *position = recorded.position;
            }
            None => out.hours.push((d, recorded.position)),
        }
    }
    out
}

/// Reads of the hourly statistics.
#[async_trait]
pub trait StatsReader: Send + Sync + 'static {
    /// `merchant`'s hours starting in `[from, to)`, oldest first, each the sum of its
    /// shards' partials (hours with nothing counted are absent).
    async fn hours(
        &self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourlyStats>, ProjectionError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::*;
    use orderflow_domain::order::{OrderCancelled, OrderEvent};

    #[test]
    fn each_event_counts_in_its_own_hour() {
        let no = order_no(0, 42);
        let events: Vec<OrderEvent> = vec![
            submitted(&no, 42, 7, "Noodles", "1 Road", 0).into(),
            paid(3_600_000).into(),
            OrderCancelled {
                cause: buyer_cancel(),
                at: at(3_600_001),
            }
            .into(),
        ];
        let deltas: Vec<_> = events
            .iter()
            .filter_map(|e| delta(merchant(7), e))
            .collect();
        assert_eq!((deltas[0].orders, deltas[0].hour), (1, hour_of(at(0))));
        assert_eq!(
            (deltas[1].gmv, deltas[1].hour),
            (5600, hour_of(at(3_600_000)))
        );
        assert_eq!(deltas[2].cancellations, 1);
        assert_eq!(
            hour_of(Timestamp::from_millis(7_199_999)).as_millis(),
            3_600_000
        );
        assert_eq!(hour_of(Timestamp::from_millis(-1)).as_millis(), -3_600_000);
    }

    #[test]
    fn an_order_refused_at_submit_counts_as_an_order_and_its_merchant_is_learnt() {
        let no = order_no(0, 42);
        let event: OrderEvent = refused(
            submitted(&no, 42, 7, "Noodles", "1 Road", 5),
            orderflow_domain::FailureReason::OutOfStock,
        )
        .into();
        let d = delta(merchant(7), &event).expect("counted");
        assert_eq!((d.orders, d.hour), (1, hour_of(at(5))));
        let mut log = Log::new();
        let recorded = log.order(&no, event);
        let mut merchants = HashMap::new();
        let folded = fold_stats(&mut merchants, &[&recorded]);
        assert_eq!(
            folded.new_orders,
            [(no.stream_id().id().to_owned(), merchant(7))]
        );
        assert_eq!(folded.hours.len(), 1);
    }
}
