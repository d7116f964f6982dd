//! The read-model conformance suites on PostgreSQL: each case on a fresh, migrated database.

use std::sync::Arc;

use orderflow_infra::migrate;
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::orders::{ListSide, PgOrderDetail, PgOrderList};
use orderflow_projections::pg::SharedReads;

async fn pool() -> deadpool_postgres::Pool {
    let database = TestDatabase::create().await;
    let pool = database.pool(4);
    migrate::run(&pool, migrate::MIGRATIONS)
        .await
        .expect("migrations apply");
    pool
}

mod order_detail {
    use super::*;

    orderflow_projections::order_detail_suite!(async {
        Arc::new(PgOrderDetail::new(pool().await))
    });
}

mod order_lists {
    use super::*;

    orderflow_projections::order_list_suite!(|side: ListSide| async move {
        Arc::new(PgOrderList::new(side, pool().await))
    });
}

/// The same suites with the hot queries (lookups by number, pages) on two shared, pipelined
/// connections, as `serve` runs them.
async fn pool_and_shared() -> (deadpool_postgres::Pool, SharedReads) {
    let database = TestDatabase::create().await;
    let pool = database.pool(4);
    migrate::run(&pool, migrate::MIGRATIONS)
        .await
        .expect("migrations apply");
    let shared = SharedReads::new(&database.url, 2).expect("a valid url");
    (pool, shared)
}

mod order_detail_shared {
    use super::*;

    orderflow_projections::order_detail_suite!(async {
        let (pool, shared) = pool_and_shared().await;
        Arc::new(PgOrderDetail::new(pool).with_shared_reads(shared))
    });
}

mod order_lists_shared {
    use super::*;

    orderflow_projections::order_list_suite!(|side: ListSide| async move {
        let (pool, shared) = pool_and_shared().await;
        Arc::new(PgOrderList::new(side, pool).with_shared_reads(shared))
    });
}

mod stock_ledger {
    use super::*;
    use orderflow_projections::stock::PgStockLedger;

    orderflow_projections::stock_ledger_suite!(async {
        Arc::new(PgStockLedger::new(pool().await))
    });
}

mod merchant_catalog {
    use super::*;
    use orderflow_projections::merchants::PgMerchantCatalog;

    orderflow_projections::merchant_catalog_suite!(async {
        Arc::new(PgMerchantCatalog::new(pool().await))
    });
}

mod rider_geo {
    use super::*;
    use orderflow_projections::riders::PgRiderGeo;

    orderflow_projections::rider_geo_suite!(async { Arc::new(PgRiderGeo::new(pool().await)) });
}

mod merchant_hourly {
    use super::*;
    use orderflow_projections::stats::PgMerchantHourly;

    orderflow_projections::merchant_hourly_suite!(async {
        Arc::new(PgMerchantHourly::new(pool().await))
    });
}

/// Migration 0006 on a database whose `merchant_hourly` rows are whole-hour totals.
mod merchant_hourly_migration {
    use super::*;
    use orderflow_domain::Timestamp;
    use orderflow_projections::model::ProjectionModel;
    use orderflow_projections::stats::{hour_of, PgMerchantHourly, StatsReader};
    use orderflow_projections::testing::fixtures::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn existing_totals_keep_their_sums_after_the_split_into_shards() {
        // Given a database at migration 0005 whose merchant-hour row counts two orders of
        // two shards (10 and 11), submitted and paid, with the checkpoints past them
        let database = TestDatabase::create().await;
        let pool = database.pool(4);
        let before: Vec<_> = migrate::MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version <= 5)
            .collect();
        migrate::run(&pool, &before).await.expect("0001-0005 apply");
        let mut log = Log::new();
        let (a, b) = (order_no(0, 42), order_no(1, 43));
        log.order(&a, submitted(&a, 42, 7, "Noodles", "1 Road", 0));
        log.order(&b, submitted(&b, 43, 7, "Noodles", "1 Road", 1));
        log.order(&a, paid(10));
        log.order(&b, paid(11));
        let hour = hour_of(at(0)).as_millis();
        let client = pool.get().await.expect("connection");
        client
            .execute(
                "INSERT INTO merchant_hourly VALUES (7, $1, 2, 11200, 0, 0, 0)",
                &[&hour],
            )
            .await
            .expect("old total");
        client
            .execute(
                "INSERT INTO merchant_hourly_orders VALUES ($1, 7), ($2, 7)",
                &[&a.as_str(), &b.as_str()],
            )
            .await
            .expect("old orders");
        client
            .execute(
                "INSERT INTO checkpoints (name, shard, position)
                 VALUES ('projection:merchant_hourly', $1, 2), ('projection:merchant_hourly', $2, 2)",
                &[&i16::from(a.shard().index()), &i16::from(b.shard().index())],
            )
            .await
            .expect("old checkpoints");

        // When migration 0006 runs and both shards go on: order a (shard 10) is cancelled,
        // a third order of shard 11 is submitted in the same hour
        migrate::run(&pool, migrate::MIGRATIONS)
            .await
            .expect("0006 applies");
        log.order(
            &a,
            orderflow_domain::order::OrderCancelled {
                cause: buyer_cancel(),
                at: at(20),
            },
        );
        let c = order_no(2, 75);
        log.order(&c, submitted(&c, 75, 7, "Noodles", "1 Road", 2));
        let model = PgMerchantHourly::new(pool.clone());
        for shard in [a.shard(), b.shard()] {
            model.apply(shard, &log.shard(shard)).await.expect("apply");
        }

        // Then the hour sums the old total and the new partials: 3 orders, 2 paid, 1 cancelled
        let hours = model
            .hours(merchant(7), Timestamp::from_millis(0), at(10 * 3_600_000))
            .await
            .expect("hours");
        let summary: Vec<_> = hours
            .iter()
            .map(|h| (h.hour.as_millis(), h.orders, h.gmv, h.cancellations))
            .collect();
        assert_eq!(summary, vec![(hour, 3, 11200, 1)]);
        // And the old total became shard 0's partial
        let shards: Vec<i16> = client
            .query("SELECT shard FROM merchant_hourly ORDER BY shard", &[])
            .await
            .expect("rows")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            shards,
            vec![
                0,
                i16::from(a.shard().index()),
                i16::from(b.shard().index())
            ]
        );
    }
}

/// `seller_order` loads an order's row from its merchant's partition when it knows it, and
/// through the parent when it does not (after a restart).
mod seller_order_partitions {
    use super::*;
    use orderflow_domain::order::OrderStatus;
    use orderflow_projections::model::ProjectionModel;
    use orderflow_projections::orders::{OrderListReader, Owner};
    use orderflow_projections::testing::fixtures::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn later_events_find_the_row_before_and_after_a_restart() {
        // Given two orders of one buyer's shard for merchants of two partitions (7 and 40),
        // projected at submission
        let pool = pool().await;
        let mut log = Log::new();
        let (a, b) = (order_no(0, 42), order_no(1, 42));
        log.order(&a, submitted(&a, 42, 7, "Tea", "1 Road", 0));
        log.order(&b, submitted(&b, 42, 40, "Tea", "1 Road", 1));
        let shard = a.shard();
        let first = PgOrderList::new(ListSide::Seller, pool.clone());
        first.apply(shard, &log.shard(shard)).await.expect("apply");
        // When the same adapter projects their creation (it knows their partitions), and a
        // fresh one, as after a restart, their payment and a third order's submission
        log.order(&a, created(10));
        log.order(&b, created(11));
        first.apply(shard, &log.shard(shard)).await.expect("apply");
        log.order(&a, paid(20));
        log.order(&b, paid(21));
        let c = order_no(2, 42);
        log.order(&c, submitted(&c, 42, 7, "Tea", "1 Road", 2));
        let restarted = PgOrderList::new(ListSide::Seller, pool.clone());
        restarted
            .apply(shard, &log.shard(shard))
            .await
            .expect("apply");
        // And the fresh one projects a cancellation of the third (now known to it)
        log.order(
            &c,
            orderflow_domain::order::OrderCancelled {
                cause: buyer_cancel(),
                at: at(30),
            },
        );
        restarted
            .apply(shard, &log.shard(shard))
            .await
            .expect("apply");
        // Then each merchant's list shows its orders with every event applied
        let list = |merchant_id: i64| {
            let restarted = restarted.clone();
            async move {
                restarted
                    .list(Owner::Merchant(merchant(merchant_id)), &[], None, 10)
                    .await
                    .expect("list")
                    .orders
                    .into_iter()
                    .map(|v| (v.order_no, v.status))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(7).await,
            vec![(c, OrderStatus::Cancelled), (a, OrderStatus::Paid)]
        );
        assert_eq!(list(40).await, vec![(b, OrderStatus::Paid)]);
    }
}
