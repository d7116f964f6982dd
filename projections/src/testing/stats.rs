//! The cases of the `merchant_hourly` conformance suite.

use std::sync::Arc;

use orderflow_domain::order::OrderCancelled;
use orderflow_domain::Timestamp;

use super::fixtures::*;
use crate::model::ProjectionModel;
use crate::stats::{hour_of, StatsReader, MERCHANT_HOURLY};

const HOUR: i64 = 3_600_000;

/// An hour's counts relative to the first hour: (offset ms, orders, gmv, cancellations,
/// late deliveries, compensation).
type Summary = (i64, i64, i64, i64, i64, i64);

pub async fn merchant_hourly_counts_each_event_in_its_hour<M>(model: Arc<M>)
where
    M: ProjectionModel + StatsReader,
{
    // Given merchant 7: an order submitted and paid at once, delivered late (timed out at
    // +30 min) and compensated 5.00 (+31.7 min); an order submitted and cancelled an hour
    // later; and one order of merchant 8
    let mut log = Log::new();
    let late = order_no(0, 42);
    log.order(&late, submitted(&late, 42, 7, "Noodles", "1 Road", 0));
    late_delivery(&mut log, &late, 3);
    let cancelled = order_no(HOUR, 43);
    log.order(
        &cancelled,
        submitted(&cancelled, 43, 7, "Noodles", "1 Road", HOUR),
    );
    log.order(
        &cancelled,
        OrderCancelled {
            cause: buyer_cancel(),
            at: at(HOUR + 5),
        },
    );
    let other = order_no(0, 44);
    log.order(&other, submitted(&other, 44, 8, "Tea", "2 Road", 0));
    // When projected in batches of 2, then every shard again whole
    log.apply_to(model.as_ref(), 2).await;
    log.apply_to(model.as_ref(), 100).await;
    // Then each hour of merchant 7 has what happened in it, counted once
    let hours = model
        .hours(merchant(7), Timestamp::from_millis(0), at(10 * HOUR))
        .await
        .unwrap();
    let h0 = hour_of(at(0));
    let summary: Vec<_> = hours
        .iter()
        .map(|h| {
            (
                h.hour.as_millis() - h0.as_millis(),
                h.orders,
                h.gmv,
                h.cancellations,
                h.late_deliveries,
                h.compensation,
            )
        })
        .collect();
    // The late delivery times out at +30 min and is compensated at +31.7 min: its hour
    // depends on where T0 falls in its hour, so compute it the same way.
    let late_hour = hour_of(at(1_800_040)).as_millis() - h0.as_millis();
    let paid_hour = hour_of(at(1_900_010)).as_millis() - h0.as_millis();
    let mut expected: Vec<Summary> = vec![(0, 1, 5600, 0, 0, 0)];
    let mut bump =
        |offset: i64, f: &dyn Fn(&mut Summary)| match expected.iter_mut().find(|e| e.0 == offset) {
            Some(e) => f(e),
            None => {
                let mut e = (offset, 0, 0, 0, 0, 0);
                f(&mut e);
                expected.push(e);
            }
        };
    bump(late_hour, &|e| e.4 += 1);
    bump(paid_hour, &|e| e.5 += 500);
    bump(hour_of(at(HOUR)).as_millis() - h0.as_millis(), &|e| {
        e.1 += 1;
        e.3 += 1;
    });
    expected.sort();
    assert_eq!(summary, expected);
    // And merchant 8 has its own order only, and a window outside has nothing
    let other = model
        .hours(merchant(8), Timestamp::from_millis(0), at(10 * HOUR))
        .await
        .unwrap();
    assert_eq!((other.len(), other[0].orders, other[0].gmv), (1, 1, 0));
    assert!(model
        .hours(merchant(7), at(20 * HOUR), at(30 * HOUR))
        .await
        .unwrap()
        .is_empty());
}

pub async fn merchant_hourly_publishes_each_hour_it_changes<M>(model: Arc<M>)
where
    M: ProjectionModel + StatsReader,
{
    // Given one order submitted and paid in the same hour
    let mut log = Log::new();
    let no = order_no(0, 42);
    log.order(&no, submitted(&no, 42, 7, "Noodles", "1 Road", 0));
    log.order(&no, created(10));
    log.order(&no, paid(20));
    // When its shard is applied in one batch
    let outcome = model
        .apply(no.shard(), &log.shard(no.shard()))
        .await
        .unwrap();
    // Then one change, of that shard's partial of the hour, with both counted
    assert_eq!(outcome.changes.len(), 1);
    let change = &outcome.changes[0];
    assert_eq!(change.view, MERCHANT_HOURLY);
    assert_eq!(
        change.key,
        format!("7.{}.{}", hour_of(at(0)).as_millis(), no.shard().index())
    );
    let row = change.row.as_ref().unwrap().to_value();
    assert_eq!(
        (row["orders"].as_i64(), row["gmv"].as_i64()),
        (Some(1), Some(5600))
    );
}

pub async fn merchant_hourly_sums_the_shards_of_an_hour<M>(model: Arc<M>)
where
    M: ProjectionModel + StatsReader,
{
    // Given merchant 7's orders in one hour from buyers of three shards (10, 11 and 10 again),
    // two of them paid, one cancelled
    let mut log = Log::new();
    let nos = [order_no(0, 42), order_no(1, 43), order_no(2, 74)];
    for (i, no) in nos.iter().enumerate() {
        let buyer = [42, 43, 74][i];
        log.order(no, submitted(no, buyer, 7, "Noodles", "1 Road", i as i64));
    }
    log.order(&nos[0], paid(10));
    log.order(&nos[1], paid(11));
    log.order(
        &nos[2],
        OrderCancelled {
            cause: buyer_cancel(),
            at: at(12),
        },
    );
    assert_ne!(nos[0].shard(), nos[1].shard());
    // When each shard is applied, the second one's twice (a redelivery counts nothing)
    let mut changes = Vec::new();
    for shard in [nos[0].shard(), nos[1].shard(), nos[1].shard()] {
        let outcome = model.apply(shard, &log.shard(shard)).await.unwrap();
        changes.extend(outcome.changes);
    }
    // Then the hour reads as one, its shards' partials summed
    let hours = model
        .hours(merchant(7), Timestamp::from_millis(0), at(10 * HOUR))
        .await
        .unwrap();
    let summary: Vec<_> = hours
        .iter()
        .map(|h| (h.hour, h.orders, h.gmv, h.cancellations))
        .collect();
    assert_eq!(summary, vec![(hour_of(at(0)), 3, 2 * 5600, 1)]);
    // And each shard published its own partial under its own key
    let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    let hour = hour_of(at(0)).as_millis();
    assert_eq!(
        keys,
        vec![
            format!("7.{hour}.{}", nos[0].shard().index()),
            format!("7.{hour}.{}", nos[1].shard().index()),
        ]
    );
    let orders: Vec<_> = changes
        .iter()
        .map(|c| c.row.as_ref().unwrap().to_value()["orders"].as_i64())
        .collect();
    assert_eq!(orders, vec![Some(2), Some(1)]);
}
