//! The conformance suites of the read models: every adapter of a read port (memory twin and
//! PostgreSQL) runs the same cases, through `order_detail_suite!` and `order_list_suite!`.
//!
//! Compiled for this crate's tests and, with the `testing` feature, for other crates.

pub mod fixtures;
mod suites;

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
