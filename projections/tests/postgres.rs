//! The read-model conformance suites on PostgreSQL: each case on a fresh, migrated database.

use std::sync::Arc;

use orderflow_infra::migrate;
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::orders::{ListSide, PgOrderDetail, PgOrderList};

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
