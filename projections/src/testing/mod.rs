//! The conformance suites of the read models: every adapter of a read port (memory twin and
//! PostgreSQL) runs the same cases, through `order_detail_suite!`, `order_list_suite!`,
//! `stock_ledger_suite!`, `merchant_catalog_suite!`, `rider_geo_suite!` and
//! `merchant_hourly_suite!`.
//!
//! Compiled for this crate's tests and, with the `testing` feature, for other crates.

pub mod fixtures;
mod merchants;
mod riders;
mod stats;
mod stock;
mod suites;

pub use merchants::*;
pub use riders::*;
pub use stats::*;
pub use stock::*;
pub use suites::*;

/// Runs every `order_detail` case against the model `$factory` builds (an async expression
/// giving an `Arc` of a type implementing `ProjectionModel + OrderDetailReader`).
#[macro_export]
macro_rules! order_detail_suite {
    ($factory:expr) => {
        $crate::order_detail_suite!(@cases $factory;
            detail_shows_the_whole_lifecycle_with_its_timeline,
            detail_repeated_and_overlapping_batches_change_nothing,
            detail_checkpoints_move_per_shard_with_the_rows,
            detail_failed_order_keeps_its_reason,
            detail_search_matches_dishes_address_number_and_merchant_name,
            detail_search_finds_an_order_after_its_status_changes,
            detail_search_pages_newest_first,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let model = $factory.await;
                $crate::testing::$case(model).await;
            }
        )*
    };
}

/// Runs every `buyer_order` / `seller_order` case; `$factory` is an async closure-like
/// expression taking a [`crate::orders::ListSide`] and giving an `Arc` of a type implementing
/// `ProjectionModel + OrderListReader`.
#[macro_export]
macro_rules! order_list_suite {
    ($factory:expr) => {
        $crate::order_list_suite!(@cases $factory;
            lists_hold_each_owners_orders_newest_first,
            lists_filter_by_status,
            lists_page_stably_while_new_orders_arrive,
            lists_repeated_batches_change_nothing,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::testing::$case(factory).await;
            }
        )*
    };
}

/// Runs every `stock_ledger` case; `$factory` is an async expression giving an `Arc` of a
/// type implementing `ProjectionModel + StockReader`.
#[macro_export]
macro_rules! stock_ledger_suite {
    ($factory:expr) => {
        $crate::stock_ledger_suite!(@cases $factory;
            stock_ledger_counts_every_movement,
            stock_ledger_repeated_batches_change_nothing,
            stock_ledger_publishes_rows_and_moves_checkpoints,
            stock_ledger_pages_reservations_by_state,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let model = $factory.await;
                $crate::testing::$case(model).await;
            }
        )*
    };
}

/// Runs every `merchant_catalog` case; `$factory` is an async expression giving an `Arc` of
/// a type implementing `ProjectionModel + MerchantReader`.
#[macro_export]
macro_rules! merchant_catalog_suite {
    ($factory:expr) => {
        $crate::merchant_catalog_suite!(@cases $factory;
            merchant_catalog_follows_each_merchant,
            merchant_catalog_finds_merchants_nearby_nearest_first,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let model = $factory.await;
                $crate::testing::$case(model).await;
            }
        )*
    };
}

/// Runs every `rider_geo` case; `$factory` is an async expression giving an `Arc` of a type
/// implementing `ProjectionModel + RiderReader`.
#[macro_export]
macro_rules! rider_geo_suite {
    ($factory:expr) => {
        $crate::rider_geo_suite!(@cases $factory;
            rider_geo_finds_online_riders_nearest_first,
            rider_geo_keeps_each_riders_open_offers,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let model = $factory.await;
                $crate::testing::$case(model).await;
            }
        )*
    };
}

/// Runs every `merchant_hourly` case; `$factory` is an async expression giving an `Arc` of a
/// type implementing `ProjectionModel + StatsReader`.
#[macro_export]
macro_rules! merchant_hourly_suite {
    ($factory:expr) => {
        $crate::merchant_hourly_suite!(@cases $factory;
            merchant_hourly_counts_each_event_in_its_hour,
            merchant_hourly_publishes_each_hour_it_changes,
            merchant_hourly_sums_the_shards_of_an_hour,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let model = $factory.await;
                $crate::testing::$case(model).await;
            }
        )*
    };
}
