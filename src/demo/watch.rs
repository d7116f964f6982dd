//! Following the event log while the city runs: one subscription per shard (catch-up, then
//! live, gap-free), every order stream folded with the domain's own decider.
//!
//! The simulated people learn from it what a client would learn from the read side (is my
//! order created? was this delivery late?), and the driver sees how many orders are still
//! moving. When the query service runs in the same process, buyers ask it instead
//! (`IsCreated` long-poll); this stays the source of the progress bars and of the drain.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use orderflow_domain::order::{Order, OrderEvent, OrderState, OrderStatus};
use orderflow_domain::{Decider, DomainEvent, FailureReason, Shard};
use orderflow_infra::store::{EventStore, Position, RecordedEvent};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What became of a submitted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    Created,
    Failed(FailureReason),
    /// No outcome within the wait.
    Unknown,
}

#[derive(Clone)]
pub struct LogWatch {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// A std Mutex: held to apply one event or read one order, never across an await.
    state: Mutex<State>,
    events: AtomicU64,
}

#[derive(Default)]
struct State {
    orders: HashMap<String, OrderState>,
    waiters: HashMap<String, Vec<oneshot::Sender<Creation>>>,
    failure: Option<String>,
}

impl LogWatch {
    /// Starts following `store` from its first event until `shutdown`.
    pub fn start(store: Arc<dyn EventStore>, shutdown: CancellationToken) -> Self {
        let watch = LogWatch {
            inner: Arc::new(Inner::default()),
        };
        let follower = watch.clone();
        tokio::spawn(async move {
            let streams = Shard::all().map(|shard| store.subscribe(shard, Position::ZERO));
            let mut all = futures::stream::select_all(streams);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = all.next() => match next {
                        Some(Ok(event)) => follower.apply(&event),
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "demo: the log subscription failed");
                            follower.lock().failure = Some(e.to_string());
                            break;
                        }
                        None => break,
                    },
                }
            }
        });
        watch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, recorded: &RecordedEvent) {
        self.inner.events.fetch_add(1, Ordering::Relaxed);
        if recorded.stream.category() != orderflow_domain::stream::ORDER_CATEGORY {
            return;
        }
        let event = match OrderEvent::decode(
            &recorded.event_type,
            recorded.event_version,
            &recorded.payload,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(stream = %recorded.stream, error = %e, "demo: unreadable order event");
                return;
            }
        };
        let key = recorded.stream.id().to_owned();
        let mut state = self.lock();
        let order = state.orders.remove(&key).unwrap_or_default();
        let order = Order::evolve(order, &event);
        let creation = creation_of(&order);
        state.orders.insert(key.clone(), order);
        if let Some(creation) = creation {
            for waiter in state.waiters.remove(&key).unwrap_or_default() {
                let _ = waiter.send(creation);
            }
        }
    }

    /// Waits (at most `limit`, real time) until the order is CREATED or FAILED.
    pub async fn creation(&self, order_no: &str, limit: Duration) -> Creation {
        let rx = {
            let mut state = self.lock();
            if let Some(c) = state.orders.get(order_no).and_then(creation_of) {
                return c;
            }
            let (tx, rx) = oneshot::channel();
            state
                .waiters
                .entry(order_no.to_owned())
                .or_default()
                .push(tx);
            rx
        };
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(c)) => c,
            _ => Creation::Unknown,
        }
    }

    /// Whether the order was ever late, as the log says now.
    pub fn late(&self, order_no: &str) -> Option<bool> {
        let state = self.lock();
        state
            .orders
            .get(order_no)
            .and_then(|o| o.order())
            .map(|o| o.late)
    }

    pub fn status(&self, order_no: &str) -> Option<OrderStatus> {
        self.lock().orders.get(order_no).and_then(|o| o.status())
    }

    /// Orders by status, as far as the log has been followed.
    pub fn counts(&self) -> BTreeMap<OrderStatus, u64> {
        let state = self.lock();
        let mut out = BTreeMap::new();
        for status in state.orders.values().filter_map(|o| o.status()) {
            *out.entry(status).or_default() += 1;
        }
        out
    }

    /// Orders seen and how many of them are in a terminal status.
    pub fn settled(&self) -> (u64, u64) {
        let state = self.lock();
        let terminal = state
            .orders
            .values()
            .filter(|o| o.status().is_some_and(OrderStatus::is_terminal))
            .count();
        (state.orders.len() as u64, terminal as u64)
    }

    /// Events read so far, every stream.
    pub fn events(&self) -> u64 {
        self.inner.events.load(Ordering::Relaxed)
    }

    /// Why the watch stopped early, if it did.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }
}

fn creation_of(order: &OrderState) -> Option<Creation> {
    let o = order.order()?;
    match o.status {
        OrderStatus::Creating => None,
        OrderStatus::Failed => Some(Creation::Failed(
            o.failure.unwrap_or(FailureReason::UnknownSku),
        )),
        _ => Some(Creation::Created),
    }
}
