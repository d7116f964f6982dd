//! What every simulated person shares: the API client, the clock, the log watch, the city,
//! and the book of orders submitted so far (so a rider "knows" which scenario an order plays).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_command_service::CommandConfig;

use super::api::Api;
use super::city::City;
use super::clock::SimClock;
use super::plan::Scenario;
use super::rng::Rng;
use super::watch::{Creation, LogWatch};

/// How long a buyer waits for its order to be created before giving up on it (real time).
const CREATION_WAIT: Duration = Duration::from_secs(60);

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

    /// The order's creation outcome, from the log watch.
    pub async fn creation(&self, order_no: &str) -> Creation {
        self.watch.creation(order_no, CREATION_WAIT).await
    }

    /// Whether a delivered order was late, from the log watch.
    pub async fn was_late(&self, order_no: &str) -> Option<bool> {
        self.watch.late(order_no)
    }
}
