//! What every simulated person shares: the API client, the clock, the log watch, the city,
//! and the book of orders submitted so far (so a rider "knows" which scenario an order plays).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_command_service::CommandConfig;

use orderflow_domain::FailureReason;
use orderflow_proto::v1 as pb;

use super::api::{Api, Caller};
use super::city::City;
use super::clock::SimClock;
use super::plan::Scenario;
use super::rng::Rng;
use super::watch::{Creation, LogWatch};

/// How long a buyer waits for its order to be created before giving up on it (real time).
const CREATION_WAIT: Duration = Duration::from_secs(60);
/// One `IsCreated` long-poll waits at most this long (the contract allows 30 s).
const LONG_POLL_MS: u32 = 10_000;

/// An order the demo submitted, as the demo knows it.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub scenario: Scenario,
    pub total: i64,
    /// Whether the buyer means to pay (flash-sale buyers who get stock may not).
    pub pays: bool,
    /// Index into [`City::merchants`].
    pub merchant: usize,
}

pub struct Sim {
    pub api: Api,
    pub clock: SimClock,
    pub watch: LogWatch,
    pub city: City,
    pub config: CommandConfig,
    pub rng: Rng,
    /// Riders' speed, metres per simulated second.
    pub rider_speed: f64,
    /// Simulated time between two location reports of a moving rider.
    pub report_every: Duration,
    /// A std Mutex: one insert or lookup at a time, never across an await.
    submitted: Mutex<HashMap<String, Submitted>>,
    /// Set when the hour is over: idle riders stop wandering, merchants stop restocking.
    winding_down: AtomicBool,
}

impl Sim {
    pub fn new(
        api: Api,
        clock: SimClock,
        watch: LogWatch,
        city: City,
        config: CommandConfig,
        rng: Rng,
        report_every: Duration,
    ) -> Arc<Self> {
        Arc::new(Sim {
            api,
            clock,
            watch,
            city,
            config,
            rng,
            rider_speed: 5.0,
            report_every,
            submitted: Mutex::new(HashMap::new()),
            winding_down: AtomicBool::new(false),
        })
    }

    pub fn record_submitted(&self, order_no: &str, order: Submitted) {
        self.book().insert(order_no.to_owned(), order);
    }

    pub fn submitted(&self, order_no: &str) -> Option<Submitted> {
        self.book().get(order_no).cloned()
    }

    /// Every order the demo submitted, by number.
    pub fn all_submitted(&self) -> HashMap<String, Submitted> {
        self.book().clone()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, HashMap<String, Submitted>> {
        self.submitted.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wind_down(&self) {
        self.winding_down.store(true, Ordering::SeqCst);
    }

    pub fn winding_down(&self) -> bool {
        self.winding_down.load(Ordering::SeqCst)
    }

    /// The order's creation outcome, as a buyer app learns it: `IsCreated`, long-polled.
    /// Falls back to the log watch if the query side cannot answer.
    pub async fn creation(&self, order_no: &str, buyer: i64) -> Creation {
        let limit = tokio::time::Instant::now() + CREATION_WAIT;
        while tokio::time::Instant::now() < limit {
            let reply = self
                .api
                .is_created(
                    Caller::Buyer(buyer),
                    pb::IsCreatedRequest {
                        order_no: order_no.to_owned(),
                        wait_ms: LONG_POLL_MS,
                    },
                )
                .await;
            let reply = match reply {
                Ok(r) => r,
                Err(status) => {
                    tracing::warn!(%status, "demo: IsCreated failed; asking the log");
                    return self.watch.creation(order_no, CREATION_WAIT).await;
                }
            };
            match reply.state() {
                pb::CreationState::Created => return Creation::Created,
                pb::CreationState::Failed => {
                    let reason = match reply.failure_reason() {
                        pb::FailureReason::OutOfStock => FailureReason::OutOfStock,
                        pb::FailureReason::DishDelisted => FailureReason::DishDelisted,
                        pb::FailureReason::MerchantClosed => FailureReason::MerchantClosed,
                        pb::FailureReason::PriceChanged => FailureReason::PriceChanged,
                        _ => FailureReason::UnknownSku,
                    };
                    return Creation::Failed(reason);
                }
                // Not yet projected (NOT_FOUND is an error above) or still reserving.
                _ => {}
            }
        }
        Creation::Unknown
    }

    /// Whether a delivered order was late, as ops see it: `GetOrder`'s `late`, read at least
    /// as new as `consistency_token`.
    pub async fn was_late(&self, order_no: &str, consistency_token: &str) -> Option<bool> {
        self.api
            .get_order(
                Caller::Ops,
                pb::GetOrderRequest {
                    order_no: order_no.to_owned(),
                    consistency_token: consistency_token.to_owned(),
                },
            )
            .await
            .ok()
            .map(|o| o.late)
    }
}
