//! One run, phase by phase: start the app, seed the city, the hour, the drain, read the log
//! back, stop. The same function backs `orderflow demo` and the CI test.

use std::time::{Duration, Instant};

use orderflow_command_service::CommandConfig;
use orderflow_domain::order::OrderStatus;
use orderflow_domain::Timestamp;
use tokio_util::sync::CancellationToken;

use super::api::Api;
use super::audit::{self, Audit};
use super::city::{City, CitySize};
use super::clock::{drive, Pace, SimClock};
use super::plan::{self, FlashPlan, Mix};
use super::progress::Progress;
use super::report::{seconds, Inputs, Report, Scale, Wall};
use super::rng::Rng;
use super::sim::Sim;
use super::system::{Backend, System};
use super::watch::LogWatch;
use super::{buyers, merchants, readside, riders, DemoError};

/// Connections the simulated people share.
const CONNECTIONS: usize = 4;
/// The clock waits while more calls than this are unanswered.
const MAX_IN_FLIGHT: usize = 256;
/// Simulated time per step of the driver.
const TICK: Duration = Duration::from_secs(1);
/// When the flash sale starts, as a share of the hour.
const FLASH_AT: f64 = 1.0 / 3.0;
/// After the hour, the clock runs on at most this long for the last orders to settle.
const DRAIN_LIMIT: Duration = Duration::from_secs(120 * 60);
/// The embedded drain needs less care: fewer people are about. Its speed relative to the hour's.
const DRAIN_SPEEDUP: f64 = 4.0;
/// How long to wait (real time) for the last releases and deductions before reading the log.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub backend: Backend,
    pub merchants: usize,
    pub riders: usize,
    pub buyers: usize,
    pub orders: usize,
    pub minutes: u32,
    pub flash_units: i64,
    pub flash_submits: usize,
    pub seed: u64,
    pub report_every: Duration,
    pub speed: f64,
    pub keep: bool,
    pub config: CommandConfig,
}

/// Runs the whole demo and returns its report. The app is stopped (and a durable run's
/// database and streams removed unless `keep`) whatever happened.
pub async fn run_demo(options: &DemoOptions, progress: &Progress) -> Result<Report, DemoError> {
    let started = Instant::now();
    let rng = Rng::new(options.seed);
    let city = City::generate(
        CitySize {
            merchants: options.merchants,
            riders: options.riders,
            buyers: options.buyers,
            flash_units: options.flash_units,
        },
        &mut rng.fork(1),
    );
    let hour = Duration::from_secs(u64::from(options.minutes) * 60);
    let flash = (options.flash_units > 0 && options.flash_submits > 0).then(|| FlashPlan {
        at: hour.mul_f64(FLASH_AT),
        submits: options.flash_submits,
        spread: Duration::from_secs(30),
        pay_share: 0.9,
    });
    let planned = plan::orders(
        &city,
        options.orders,
        options.minutes,
        &Mix::default(),
        flash,
        &mut rng.fork(2),
    );
    // Whole seconds: the report's minutes line up with the clock's.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let clock = SimClock::starting_at(Timestamp::from_millis(now_ms - now_ms % 1_000));
    let system = System::start(&options.backend, &clock, options.config.clone()).await?;
    let outcome = drive_city(
        &system, options, city, planned, clock, rng, progress, started,
    )
    .await;
    let finished = system.finish(options.keep).await;
    let report = outcome?;
    finished?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn drive_city(
    system: &System,
    options: &DemoOptions,
    city: City,
    planned: Vec<plan::PlannedOrder>,
    clock: SimClock,
    rng: Rng,
    progress: &Progress,
    started: Instant,
) -> Result<Report, DemoError> {
    let hour = Duration::from_secs(u64::from(options.minutes) * 60);
    let api = Api::new(
        system.channels(CONNECTIONS).await?,
        system.auth.clone(),
        clock.now(),
        hour + DRAIN_LIMIT + Duration::from_secs(3_600),
        format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    );
    let stop = CancellationToken::new();
    let watch = LogWatch::start(system.app.store().clone(), stop.child_token());
    let lag_samples = readside::sample_lag(
        system.read.clone(),
        system.app.store().clone(),
        stop.child_token(),
    );
    let scale = Scale {
        merchants: city.merchants.len(),
        dishes: city.dish_count(),
        riders: city.riders.len(),
        buyers: city.buyers.len(),
        planned_orders: planned.len(),
    };
    let flash_sku = city.flash.as_ref().map(|f| f.dish.sku.clone());
    let sim = Sim::new(
        api.clone(),
        clock.clone(),
        watch.clone(),
        city,
        options.config.clone(),
        rng,
        options.report_every,
    );

    // Seeding, through the API like everything else.
    let bar = progress.bar("seeding", 0);
    sim.city.seed(&api, &bar).await?;
    wait_for_riders(system, sim.city.riders.len()).await?;
    bar.finish();
    let seeded = Instant::now();

    let fleet = riders::Fleet::new(&sim);
    let offers = tokio::spawn(riders::listen_for_offers(
        sim.clone(),
        fleet.clone(),
        system.app.bus().clone(),
        stop.child_token(),
    ));
    let end_of_everything = hour + DRAIN_LIMIT;
    for r in &sim.city.riders {
        tokio::spawn(riders::move_and_report(
            sim.clone(),
            fleet.clone(),
            r.id,
            end_of_everything,
        ));
    }
    for m in 0..sim.city.merchants.len() {
        tokio::spawn(merchants::restock_now_and_then(sim.clone(), m, hour));
    }
    let planned_count = planned.len();
    let mut buyers_tasks = tokio::task::JoinSet::new();
    for (i, order) in planned.into_iter().enumerate() {
        buyers_tasks.spawn(buyers::order(sim.clone(), i, order));
    }

    // The hour.
    let bar = progress.bar("hour", u64::from(options.minutes));
    let pace = Pace {
        tick: TICK,
        speed: options.speed,
        max_in_flight: MAX_IN_FLIGHT,
    };
    let mut ticks = 0u64;
    drive(
        &clock,
        pace,
        hour,
        api.in_flight(),
        || false,
        |t| {
            ticks += 1;
            if ticks % 10 == 0 {
                bar.set_position(t.as_secs() / 60);
                bar.set_message(status_line(&watch, api.stats().calls()));
            }
        },
    )
    .await;
    bar.set_position(u64::from(options.minutes));
    bar.finish();
    let hour_done = Instant::now();

    // The drain: no new orders; the clock runs on until every order has settled.
    sim.wind_down();
    let bar = progress.bar("drain", planned_count as u64);
    // Embedded, the process managers answer in milliseconds and the drain can hurry; on
    // PostgreSQL + NATS they take long enough that hurrying would expire offers in flight.
    let speedup = match options.backend {
        Backend::Embedded => DRAIN_SPEEDUP,
        Backend::Durable { .. } => 1.0,
    };
    let drain_pace = Pace {
        speed: options.speed * speedup,
        ..pace
    };
    let mut ticks = 0u64;
    drive(
        &clock,
        drain_pace,
        end_of_everything,
        api.in_flight(),
        || {
            ticks += 1;
            if ticks % 30 != 0 {
                return false;
            }
            while buyers_tasks.try_join_next().is_some() {}
            let (seen, terminal) = watch.settled();
            bar.set_position(terminal);
            bar.set_message(status_line(&watch, api.stats().calls()));
            buyers_tasks.is_empty() && seen == terminal
        },
        |_| {},
    )
    .await;
    bar.finish();
    let drained = Instant::now();

    // Everyone goes home; then the log is read back.
    clock.close();
    buyers_tasks.abort_all();
    stop.cancel();
    let _ = offers.await;
    let audit = settled_audit(system).await?;
    let projection_lag =
        readside::lag_summary(&system.read, system.app.store().as_ref(), &lag_samples).await?;
    let read_models = readside::compare(&api, &audit).await;
    if let Some(e) = watch.failure() {
        tracing::warn!(error = %e, "demo: the log watch stopped early");
    }
    let finished = Instant::now();
    Ok(Report::build(Inputs {
        backend: system.kind(),
        seed: options.seed,
        scale,
        wall: Wall {
            seeding_s: seconds(seeded - started),
            hour_s: seconds(hour_done - seeded),
            drain_s: seconds(drained - hour_done),
            total_s: seconds(finished - started),
        },
        order_minutes: options.minutes,
        clock: &clock,
        audit: &audit,
        submitted: &sim.all_submitted(),
        rpcs: api.stats().summary(),
        flash_sku,
        projection_lag,
        read_models,
    }))
}

/// The notifier offers only riders the geo index has seen go online.
async fn wait_for_riders(system: &System, riders: usize) -> Result<(), DemoError> {
    let index = &system.processes.rider_index;
    let limit = Instant::now() + Duration::from_secs(60);
    while index.online_count() < riders {
        if Instant::now() > limit {
            return Err(DemoError::Setup(format!(
                "only {} of {riders} riders reached the geo index",
                index.online_count()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The log read back once the process managers have caught up: a cancellation's release or a
/// payment's deduction lands a moment after the order's own event.
async fn settled_audit(system: &System) -> Result<Audit, DemoError> {
    let limit = Instant::now() + SETTLE_LIMIT;
    loop {
        let audit = audit::read_log(system.app.store().as_ref()).await?;
        if holdings_match(&audit) || Instant::now() > limit {
            return Ok(audit);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every reservation settled: no order CREATED holds stock and nothing stays reserved.
fn holdings_match(audit: &Audit) -> bool {
    let created = audit
        .orders
        .values()
        .any(|o| o.status == OrderStatus::Created);
    let reserved: i64 = audit.skus.values().map(|s| s.stock().reserved).sum();
    !created && reserved == 0
}

fn status_line(watch: &LogWatch, calls: u64) -> String {
    let counts = watch.counts();
    let get = |s: OrderStatus| counts.get(&s).copied().unwrap_or(0);
    let moving: u64 = counts
        .iter()
        .filter(|(s, _)| !s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    format!(
        "orders {} (moving {moving}, closed {}, cancelled {}, failed {}); {calls} calls; {} events",
        counts.values().sum::<u64>(),
        get(OrderStatus::Closed),
        get(OrderStatus::Cancelled),
        get(OrderStatus::Failed),
        watch.events()
    )
}
