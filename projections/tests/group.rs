//! The PostgreSQL projection group (every projection in one transaction per batch of shards)
//! against separate projectors (one transaction per projection), on one store and a random
//! workload: the group's database ends with exactly the rows and checkpoints of the separate
//! projectors' database, also when members start at different checkpoints; and a batch one
//! member fails leaves no member's rows or checkpoint moved, then is applied once.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use orderflow_domain::Shard;
use orderflow_infra::store::{ConsistencyToken, EventStore, PgEventStore, Position, RecordedEvent};
use orderflow_infra::testing::TestDatabase;
use orderflow_projections::merchants::PgMerchantCatalog;
use orderflow_projections::orders::{ListSide, PgOrderDetail, PgOrderList};
use orderflow_projections::replay::{self, heads};
use orderflow_projections::riders::PgRiderGeo;
use orderflow_projections::stats::{PgMerchantHourly, MERCHANT_HOURLY};
use orderflow_projections::stock::PgStockLedger;
use orderflow_projections::{
    BatchOutcome, PgProjection, PgProjectionGroup, ProjectionError, ProjectionGroup,
    ProjectionHandle, ProjectionModel, Projector, ProjectorConfig, RowChange, ShardEvents,
};
use support::{append, checkpoints, migrated, rows, store_on, workload, Rng};
use tokio_util::sync::CancellationToken;

const SETTLE: Duration = Duration::from_secs(60);

/// One store; the separate projectors' read models in its database (the reference), the
/// group's in a second database.
struct Pair {
    _reference: TestDatabase,
    _grouped: TestDatabase,
    reference: Pool,
    grouped: Pool,
    store: Arc<PgEventStore>,
    separate: Vec<Projector>,
    shutdown: CancellationToken,
}

/// Every PostgreSQL projection as a model of its own (`replay::CATALOG`'s, over `pool`).
fn separate_models(pool: &Pool) -> Vec<Arc<dyn ProjectionModel>> {
    let models: Vec<Arc<dyn ProjectionModel>> = vec![
        Arc::new(PgOrderDetail::new(pool.clone())),
        Arc::new(PgOrderList::new(ListSide::Buyer, pool.clone())),
        Arc::new(PgOrderList::new(ListSide::Seller, pool.clone())),
        Arc::new(PgStockLedger::new(pool.clone())),
        Arc::new(PgMerchantCatalog::new(pool.clone())),
        Arc::new(PgRiderGeo::new(pool.clone())),
        Arc::new(PgMerchantHourly::new(pool.clone())),
    ];
    let names: Vec<&str> = models.iter().map(|m| m.name()).collect();
    let catalog: Vec<&str> = replay::CATALOG.iter().map(|r| r.name).collect();
    assert_eq!(names, catalog, "every projection of the catalog, once");
    models
}

/// Every projection of the catalog over `pool` as group members.
fn members(pool: &Pool) -> Vec<Arc<dyn PgProjection>> {
    replay::CATALOG
        .iter()
        .map(|r| (r.model)(pool.clone()))
        .collect()
}

fn config(batch: usize) -> ProjectorConfig {
    ProjectorConfig {
        batch,
        publish: false,
    }
}

impl Pair {
    async fn start() -> Pair {
        let reference_db = TestDatabase::create().await;
        let grouped_db = TestDatabase::create().await;
        let reference = migrated(&reference_db, 8).await;
        let grouped = migrated(&grouped_db, 8).await;
        let store = store_on(&reference_db).await;
        let shutdown = CancellationToken::new();
        let separate: Vec<Projector> = separate_models(&reference)
            .into_iter()
            .map(|model| Projector::new(model, store.clone(), None, config(64)))
            .collect();
        for p in &separate {
            tokio::spawn(p.clone().run(shutdown.clone()));
        }
        Pair {
            _reference: reference_db,
            _grouped: grouped_db,
            reference,
            grouped,
            store,
            separate,
            shutdown,
        }
    }

    async fn feed(&self, rng: &mut Rng, round: i64, orders: i64) {
        let log = workload(rng, round, orders);
        append(self.store.as_ref(), rng, log).await;
    }

    /// Waits until the separate projectors and `projections` have applied every head.
    async fn settle(&self, projections: &[ProjectionHandle]) {
        let heads = heads(self.store.as_ref()).await.expect("heads");
        let separate = self.separate.iter().flat_map(|p| p.projections());
        for p in separate.chain(projections) {
            for (shard, head) in &heads {
                p.applied()
                    .wait_for(ConsistencyToken::new(*shard, *head), SETTLE)
                    .await
                    .unwrap_or_else(|e| panic!("{} did not catch up: {e}", p.name()));
            }
        }
    }

    /// The group's database holds exactly the reference's rows and checkpoints.
    async fn assert_same(&self) {
        for target in replay::CATALOG {
            for table in target.tables {
                let reference = rows(&self.reference, "public", table).await;
                assert!(
                    !reference.is_empty() || *table == "rider_offer",
                    "{table}: the workload wrote nothing"
                );
                assert!(
                    rows(&self.grouped, "public", table).await == reference,
                    "{table}: the group's rows differ from the separate projector's"
                );
            }
            assert_eq!(
                checkpoints(&self.grouped, "public", target.name).await,
                checkpoints(&self.reference, "public", target.name).await,
                "{}: checkpoints differ",
                target.name
            );
        }
    }
}

/// Runs `projector` until the returned token is cancelled.
fn run(projector: &Projector) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(projector.clone().run(stop.clone()));
    (
        stop,
        tokio::spawn(async move {
            task.await
                .expect("projector task")
                .expect("projector starts")
        }),
    )
}

/// Applies `model` alone over part of each shard's events past its checkpoint: `share` of
/// them (in percent), as a rebuild swapped in ahead of the group would leave it.
async fn run_ahead(store: &dyn EventStore, model: &dyn ProjectionModel, share: u64) {
    let saved = model.checkpoints().await.expect("checkpoints");
    for shard in Shard::all() {
        let from = saved.get(&shard).copied().unwrap_or(Position::ZERO);
        let head = store.head(shard).await.expect("head");
        let n = (head.get() - from.get()) * share / 100;
        if n == 0 {
            continue;
        }
        let events = store
            .read_shard(shard, from, n as usize)
            .await
            .expect("read");
        for chunk in events.chunks(7) {
            model.apply(shard, chunk).await.expect("apply alone");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_writes_what_separate_projectors_write_with_members_at_different_checkpoints() {
    // Given separate projectors and a group following one store through a random workload
    let pair = Pair::start().await;
    let mut rng = Rng(0x0960_0004);
    pair.feed(&mut rng, 0, 120).await;
    let group = Arc::new(PgProjectionGroup::new(
        pair.grouped.clone(),
        members(&pair.grouped),
    ));
    let projector = Projector::group(group.clone(), pair.store.clone(), None, config(50));
    let (stop, task) = run(&projector);
    pair.settle(projector.projections()).await;
    stop.cancel();
    task.await.expect("stopped");

    // When, while the group is down, two members run ahead of the others by different
    // amounts (as after a rebuild swapped in)
    pair.feed(&mut rng, 1, 80).await;
    let hourly = PgMerchantHourly::new(pair.grouped.clone());
    let detail = PgOrderDetail::new(pair.grouped.clone());
    run_ahead(pair.store.as_ref(), &hourly, 60).await;
    run_ahead(pair.store.as_ref(), &detail, 30).await;
    let (hourly_at, detail_at, lists_at) = (
        hourly.checkpoints().await.expect("checkpoints"),
        detail.checkpoints().await.expect("checkpoints"),
        PgOrderList::new(ListSide::Buyer, pair.grouped.clone())
            .checkpoints()
            .await
            .expect("checkpoints"),
    );
    let ahead = |of: &HashMap<Shard, Position>, than: &HashMap<Shard, Position>| {
        Shard::all().any(|s| of.get(&s) > than.get(&s))
    };
    assert!(ahead(&hourly_at, &detail_at) && ahead(&detail_at, &lists_at));

    // And the group restarts (from the lowest member's checkpoint) while more events arrive
    let projector = Projector::group(group, pair.store.clone(), None, config(50));
    let (stop, task) = run(&projector);
    pair.feed(&mut rng, 2, 60).await;
    pair.settle(projector.projections()).await;

    // Then every table and checkpoint equals the separate projectors' (merchant_hourly adds
    // increments: an event applied twice would show)
    pair.assert_same().await;
    stop.cancel();
    task.await.expect("stopped");
    pair.shutdown.cancel();
}

/// A member that writes its rows and then fails, `failures` times (a statement refused, the
/// connection lost mid-batch).
struct Failing {
    inner: Arc<dyn PgProjection>,
    failures: AtomicUsize,
}

#[async_trait]
impl ProjectionModel for Failing {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        self.inner.checkpoints().await
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        self.inner.apply(shard, events).await
    }
}

#[async_trait]
impl PgProjection for Failing {
    fn reads(&self) -> &'static [&'static str] {
        self.inner.reads()
    }

    fn shares_rows(&self) -> bool {
        self.inner.shares_rows()
    }

    async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        batch: &[ShardEvents<'_>],
    ) -> Result<Vec<RowChange>, ProjectionError> {
        let changes = self.inner.apply_in(tx, batch).await?;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ProjectionError::Unavailable("injected failure".into()));
        }
        Ok(changes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_one_member_fails_moves_nothing_and_is_applied_once_on_retry() {
    // Given a group whose merchant_hourly member fails after writing its rows (the other
    // members' writes are in the transaction too)
    let pair = Pair::start().await;
    let mut rng = Rng(0xfa11_0004);
    pair.feed(&mut rng, 0, 120).await;
    let failing = Arc::new(Failing {
        inner: replay::find(MERCHANT_HOURLY)
            .map(|r| (r.model)(pair.grouped.clone()))
            .expect("merchant_hourly is in the catalog"),
        failures: AtomicUsize::new(1),
    });
    let mut group_members: Vec<Arc<dyn PgProjection>> = members(&pair.grouped)
        .into_iter()
        .filter(|m| m.name() != MERCHANT_HOURLY)
        .collect();
    group_members.push(failing.clone());
    let group = Arc::new(PgProjectionGroup::new(pair.grouped.clone(), group_members));

    // When a batch of the busiest shard goes through it
    let mut busiest = (Shard::of_id(0), Position::ZERO);
    for shard in Shard::all() {
        let head = pair.store.head(shard).await.expect("head");
        if head > busiest.1 {
            busiest = (shard, head);
        }
    }
    let events = pair
        .store
        .read_shard(busiest.0, Position::ZERO, 500)
        .await
        .expect("read");
    let failed = group.apply(busiest.0, &events).await;

    // Then it fails, and no member's rows or checkpoint moved
    assert!(matches!(failed, Err(ProjectionError::Unavailable(_))));
    for target in replay::CATALOG {
        for table in target.tables {
            assert_eq!(
                rows(&pair.grouped, "public", table).await,
                Vec::<String>::new(),
                "{table}: rows of a rolled-back batch"
            );
        }
        assert_eq!(
            checkpoints(&pair.grouped, "public", target.name).await,
            vec![],
            "{}: checkpoint of a rolled-back batch",
            target.name
        );
    }

    // And a projector of the group, started afresh and failing a few more times, retries
    // until every batch commits: the same rows as the separate projectors, none twice. (A
    // failure of shards applied together is retried shard by shard inside the group, so the
    // projector sees at most as many failures as were injected.)
    failing.failures.store(3, Ordering::SeqCst);
    let projector = Projector::group(group, pair.store.clone(), None, config(50));
    let (stop, task) = run(&projector);
    pair.feed(&mut rng, 1, 40).await;
    pair.settle(projector.projections()).await;
    assert_eq!(
        failing.failures.load(Ordering::SeqCst),
        0,
        "every failure was hit"
    );
    assert!(projector.stats().apply_failures.load(Ordering::Relaxed) <= 3);
    pair.assert_same().await;
    stop.cancel();
    task.await.expect("stopped");
    pair.shutdown.cancel();
}
