//! The projector over the memory store and the in-process bus: it follows every shard,
//! advances its applied positions, publishes row changes, resumes from its checkpoint and
//! retries a failing model without skipping anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::order::OrderEvent;
use orderflow_domain::{DomainEvent, OrderNo, Shard};
use orderflow_infra::bus::{ConsumerConfig, EventBus, InProcessBus};
use orderflow_infra::store::{
    AppendRequest, ConsistencyToken, EventStore, ExpectedVersion, MemoryEventStore, NewEvent,
    Position, RecordedEvent,
};
use orderflow_infra::testing::bus::unique_subjects;
use orderflow_infra::testing::store::metadata;
use orderflow_projections::orders::{MemoryOrderDetail, OrderDetailReader, ORDER_DETAIL};
use orderflow_projections::testing::fixtures::{created, order_no, submitted};
use orderflow_projections::{
    BatchOutcome, ProjectionError, ProjectionModel, Projector, ProjectorConfig,
};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

async fn append(
    store: &dyn EventStore,
    no: &OrderNo,
    event: impl Into<OrderEvent>,
) -> ConsistencyToken {
    let event: OrderEvent = event.into();
    let outcome = store
        .append(AppendRequest {
            stream: no.stream_id(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::new(
                event.event_type(),
                event.event_version(),
                event.encode().unwrap(),
            )],
            metadata: metadata(&uuid::Uuid::new_v4().to_string()),
        })
        .await
        .unwrap();
    ConsistencyToken::new(outcome.shard, outcome.last_position)
}

fn start(projector: &Projector) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let run = projector.clone().run(token.clone());
    (token, tokio::spawn(async move { run.await.unwrap() }))
}

#[tokio::test]
async fn a_projector_follows_every_shard_and_publishes_its_row_changes() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(unique_subjects()));
    let views = bus
        .consumer(ConsumerConfig::new("analytics", bus.subjects().views_all()))
        .await
        .unwrap();
    let model = Arc::new(MemoryOrderDetail::new());
    let projector = Projector::new(
        model.clone(),
        store.clone(),
        Some(bus.clone()),
        ProjectorConfig::default(),
    );
    let (stop, task) = start(&projector);

    // Given orders on two shards
    let (a, b) = (order_no(0, 1), order_no(1, 2));
    append(store.as_ref(), &a, submitted(&a, 1, 7, "Tea", "1 Road", 0)).await;
    append(store.as_ref(), &b, submitted(&b, 2, 7, "Tea", "1 Road", 1)).await;
    let token = append(store.as_ref(), &b, created(5)).await;
    // When the projector has applied the last one's position
    projector.applied().wait_for(token, WAIT).await.unwrap();
    // Then the rows are there, and each shard's changes went out on views.order_detail.{shard}
    assert!(model.get(&a).await.unwrap().is_some());
    assert_eq!(model.get(&b).await.unwrap().unwrap().timeline.len(), 2);
    let mut published: Vec<(String, String, u64)> = Vec::new();
    let wanted = |p: &Vec<(String, String, u64)>| {
        p.iter().any(|(_, k, _)| k == a.as_str()) && p.iter().any(|(_, k, _)| k == b.as_str())
    };
    for _ in 0..3 {
        if wanted(&published) {
            break;
        }
        for delivery in views.fetch(10, WAIT).await.unwrap() {
            let body: serde_json::Value =
                serde_json::from_slice(&delivery.message.payload).unwrap();
            assert_eq!(body["view"], ORDER_DETAIL);
            for change in body["changes"].as_array().unwrap() {
                published.push((
                    delivery.message.subject.clone(),
                    change["key"].as_str().unwrap().to_owned(),
                    change["position"].as_u64().unwrap(),
                ));
            }
            delivery.ack().await.unwrap();
        }
    }
    assert_eq!(
        projector.stats().publish_failures.load(Ordering::Relaxed),
        0
    );
    let prefix = bus.subjects().prefix().to_owned();
    let subject_of = |no: &OrderNo| format!("{prefix}.views.order_detail.{}", no.shard());
    assert!(
        published
            .iter()
            .any(|(s, k, _)| k == a.as_str() && *s == subject_of(&a)),
        "{published:?}"
    );
    // b's last change is its creation, the third event of the log
    let last_of_b = published
        .iter()
        .filter(|(s, k, _)| k == b.as_str() && *s == subject_of(&b))
        .map(|(_, _, position)| *position)
        .max();
    assert_eq!(last_of_b, Some(token.position.get()), "{published:?}");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_restarted_projector_resumes_from_its_checkpoint() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let model = Arc::new(MemoryOrderDetail::new());
    let no = order_no(0, 42);
    let first = append(
        store.as_ref(),
        &no,
        submitted(&no, 42, 7, "Tea", "1 Road", 0),
    )
    .await;
    let projector = Projector::new(
        model.clone(),
        store.clone(),
        None,
        ProjectorConfig::default(),
    );
    let (stop, task) = start(&projector);
    projector.applied().wait_for(first, WAIT).await.unwrap();
    stop.cancel();
    task.await.unwrap();

    // While it is down, the order is created
    let second = append(store.as_ref(), &no, created(5)).await;
    // A new projector on the same model starts where the checkpoint says
    let again = Projector::new(
        model.clone(),
        store.clone(),
        None,
        ProjectorConfig::default(),
    );
    let (stop, task) = start(&again);
    again.applied().wait_for(second, WAIT).await.unwrap();
    let view = model.get(&no).await.unwrap().unwrap();
    assert_eq!(
        view.timeline.len(),
        2,
        "nothing applied twice: {:?}",
        view.timeline
    );
    assert_eq!(
        model.checkpoints().await.unwrap()[&no.shard()],
        second.position
    );
    stop.cancel();
    task.await.unwrap();
}

/// A model whose first `failures` applies fail (a database that is briefly down).
struct Flaky {
    inner: MemoryOrderDetail,
    failures: AtomicUsize,
}

#[async_trait]
impl ProjectionModel for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn checkpoints(&self) -> Result<HashMap<Shard, Position>, ProjectionError> {
        self.inner.checkpoints().await
    }

    async fn apply(
        &self,
        shard: Shard,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ProjectionError::Unavailable("down for a moment".into()));
        }
        self.inner.apply(shard, events).await
    }
}

#[tokio::test]
async fn a_failing_model_is_retried_and_nothing_is_skipped() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let model = Arc::new(Flaky {
        inner: MemoryOrderDetail::new(),
        failures: AtomicUsize::new(3),
    });
    let projector = Projector::new(
        model.clone(),
        store.clone(),
        None,
        ProjectorConfig::default(),
    );
    let (stop, task) = start(&projector);
    let no = order_no(0, 42);
    append(
        store.as_ref(),
        &no,
        submitted(&no, 42, 7, "Tea", "1 Road", 0),
    )
    .await;
    let token = append(store.as_ref(), &no, created(5)).await;
    projector.applied().wait_for(token, WAIT).await.unwrap();
    assert_eq!(
        model.inner.get(&no).await.unwrap().unwrap().timeline.len(),
        2
    );
    assert_eq!(projector.stats().apply_failures.load(Ordering::Relaxed), 3);
    stop.cancel();
    task.await.unwrap();
}
