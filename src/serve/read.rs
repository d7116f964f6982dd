//! The `query` role's read models: the Postgres tables a `projections` process writes, with
//! their applied positions followed from the database.
//!
//! In one process ([`ReadApp`](orderflow_query_service::ReadApp)) read-your-writes waits on
//! the projectors' applied positions in memory. A query process runs no projector, so it
//! reads each projection's checkpoints (committed in the same transaction as its rows) every
//! [`FOLLOW_EVERY`] and advances the same `Applied` the views wait on: a consistency token is
//! honoured at most that much later than in one process.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use orderflow_infra::auth::JwtAuth;
use orderflow_infra::store::EventStore;
use orderflow_projections::orders::{ListSide, PgOrderDetail, PgOrderList};
use orderflow_projections::pg::SharedReads;
use orderflow_projections::{Applied, ProjectionModel};
use orderflow_query_service::read_models::{OrderViews, View};
use orderflow_query_service::{system_now, QueryConfig, QueryHandler};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a query process re-reads the projections' checkpoints.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// The query handler over the Postgres read models in `pool` (the hot queries on `shared`,
/// when given; the caller closes it after the server has drained), and the task following their
/// applied positions until `shutdown`.
pub fn query_handler(
    auth: JwtAuth,
    store: Arc<dyn EventStore>,
    pool: Pool,
    shared: Option<SharedReads>,
    shutdown: CancellationToken,
) -> (QueryHandler, JoinHandle<()>) {
    let (mut detail, mut buyers, mut sellers) = (
        PgOrderDetail::new(pool.clone()),
        PgOrderList::new(ListSide::Buyer, pool.clone()),
        PgOrderList::new(ListSide::Seller, pool),
    );
    if let Some(shared) = shared {
        detail = detail.with_shared_reads(shared.clone());
        buyers = buyers.with_shared_reads(shared.clone());
        sellers = sellers.with_shared_reads(shared);
    }
    let (detail, buyers, sellers) = (Arc::new(detail), Arc::new(buyers), Arc::new(sellers));
    let (a_detail, a_buyers, a_sellers) = (Applied::new(), Applied::new(), Applied::new());
    let followed: Vec<(Arc<dyn ProjectionModel>, Applied)> = vec![
        (detail.clone(), a_detail.clone()),
        (buyers.clone(), a_buyers.clone()),
        (sellers.clone(), a_sellers.clone()),
    ];
    let views = OrderViews {
        detail: View::new(detail, a_detail),
        buyers: View::new(buyers, a_buyers),
        sellers: View::new(sellers, a_sellers),
    };
    let handler = QueryHandler::new(
        auth,
        system_now(),
        views,
        store,
        QueryConfig::default(),
        shutdown.clone(),
    );
    let following = tokio::spawn(follow(followed, shutdown));
    (handler, following)
}

async fn follow(models: Vec<(Arc<dyn ProjectionModel>, Applied)>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (model, applied) in &models {
            match model.checkpoints().await {
                Ok(positions) => {
                    for (shard, position) in positions {
                        applied.advance(shard, position);
                    }
                }
                Err(e) => {
                    tracing::warn!(projection = model.name(), error = %e, "cannot read applied positions")
                }
            }
        }
    }
}
