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
