//! Simulated time. The app runs on a [`ManualClock`]; the demo's driver moves it forward tick
//! by tick, as fast as the system keeps up (at most `speed` simulated seconds per real
//! second), and wakes the simulated people whose next step is due.
//!
//! Everything the server does with time follows: the deadline firer compares due times with
//! this clock, the notifier stamps offer windows with it, tokens expire on it. The firer looks
//! at the clock at least once a real second, so at `speed` 60 a deadline fires up to about a
//! simulated minute after it is due (never before: the domain checks the time it is given).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderflow_command_service::{Clock, ManualClock};
use orderflow_domain::Timestamp;
use tokio::sync::oneshot;

/// A point of simulated time: how long after the start of the run.
pub type SimTime = Duration;

/// The demo's clock: the app's [`ManualClock`] and the simulated people waiting on it.
#[derive(Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

struct Inner {
    clock: ManualClock,
    start: Timestamp,
    /// Sleepers by (wake time in ms since start, sequence). A std Mutex: held only to insert
    /// or split off the due ones, never across an await.
    sleepers: Mutex<BTreeMap<(u64, u64), oneshot::Sender<()>>>,
    sequence: AtomicU64,
    /// Set when the run is over: every sleeper wakes, and no one sleeps again.
    closed: AtomicBool,
}

impl SimClock {
    pub fn starting_at(start: Timestamp) -> Self {
        SimClock {
            inner: Arc::new(Inner {
                clock: ManualClock::at(start),
                start,
                sleepers: Mutex::new(BTreeMap::new()),
                sequence: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The clock to build the app with.
    pub fn manual(&self) -> ManualClock {
        self.inner.clock.clone()
    }

    pub fn start(&self) -> Timestamp {
        self.inner.start
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> SimTime {
        let ms = self.now().as_millis() - self.inner.start.as_millis();
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// The simulated time of a timestamp of this run (zero before the start).
    pub fn sim_time_of(&self, t: Timestamp) -> SimTime {
        let ms = t.as_millis() - self.inner.start.as_millis();
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// Resolves once the driver has moved the clock to `at` or past it: `true`; or once the
    /// run is over: `false`, and the sleeper should stop.
    pub async fn sleep_until(&self, at: SimTime) -> bool {
        if self.is_closed() {
            return false;
        }
        if self.elapsed() >= at {
            return true;
        }
        let (tx, rx) = oneshot::channel();
        let key = (
            u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            self.inner.sequence.fetch_add(1, Ordering::Relaxed),
        );
        self.lock().insert(key, tx);
        // The driver may have passed `at` between the check and the insert: look again.
        if self.elapsed() >= at {
            self.lock().remove(&key);
            return true;
        }
        // A dropped sender means the run is over.
        rx.await.is_ok() && !self.is_closed()
    }

    /// As [`SimClock::sleep_until`], `d` from now.
    pub async fn sleep(&self, d: Duration) -> bool {
        self.sleep_until(self.elapsed() + d).await
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// People waiting on the clock.
    pub fn sleepers(&self) -> usize {
        self.lock().len()
    }

    /// Moves the clock to `to` (never back) and wakes everyone due.
    fn advance_to(&self, to: SimTime) {
        let now = self.elapsed();
        if to > now {
            self.inner.clock.advance(to - now);
        }
        let due_ms = u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = {
            let mut sleepers = self.lock();
            let later = sleepers.split_off(&(due_ms.saturating_add(1), 0));
            std::mem::replace(&mut *sleepers, later)
        };
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }

    /// Ends the run: every sleeper wakes with `false`, and later sleeps return at once.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u64, u64), oneshot::Sender<()>>> {
        self.inner
            .sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// How the driver moves time.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Simulated time per step.
    pub tick: Duration,
    /// At most this many simulated seconds per real second.
    pub speed: f64,
    /// The clock waits while more client calls than this are unanswered, so a slow system
    /// slows the simulation down instead of seeing its buyers' patience run out.
    pub max_in_flight: usize,
}

/// Drives `clock` until `end`, or until `done` says so (checked after each tick). `on_tick`
/// sees the simulated time after each step (for progress bars).
pub async fn drive(
    clock: &SimClock,
    pace: Pace,
    end: SimTime,
    in_flight: &AtomicUsize,
    mut done: impl FnMut() -> bool,
    mut on_tick: impl FnMut(SimTime),
) {
    let real_per_tick = Duration::from_secs_f64(pace.tick.as_secs_f64() / pace.speed.max(0.001));
    let mut next_real = Instant::now();
    while clock.elapsed() < end {
        let to = (clock.elapsed() + pace.tick).min(end);
        clock.advance_to(to);
        // Let the woken people send their calls before measuring the backlog.
        tokio::task::yield_now().await;
        while in_flight.load(Ordering::Relaxed) > pace.max_in_flight {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        on_tick(clock.elapsed());
        if done() {
            break;
        }
        next_real += real_per_tick;
        let now = Instant::now();
        if next_real > now {
            tokio::time::sleep(next_real - now).await;
        } else {
            // Behind schedule: do not try to catch up in a burst later.
            next_real = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleepers_wake_when_the_driver_passes_their_time() {
        let clock = SimClock::starting_at(Timestamp::from_millis(1_000_000));
        let woke = Arc::new(AtomicUsize::new(0));
        for s in [5u64, 10, 90] {
            let (clock, woke) = (clock.clone(), woke.clone());
            tokio::spawn(async move {
                if clock.sleep_until(Duration::from_secs(s)).await {
                    woke.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Every sleeper registered.
        while clock.sleepers() < 3 {
            tokio::task::yield_now().await;
        }
        let pace = Pace {
            tick: Duration::from_secs(1),
            speed: 1e9,
            max_in_flight: 10,
        };
        drive(
            &clock,
            pace,
            Duration::from_secs(30),
            &AtomicUsize::new(0),
            || false,
            |_| {},
        )
        .await;
        while woke.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(clock.elapsed(), Duration::from_secs(30));
        assert_eq!(clock.now(), Timestamp::from_millis(1_030_000));
        assert_eq!(
            woke.load(Ordering::SeqCst),
            2,
            "the 90 s sleeper still sleeps"
        );
        assert_eq!(clock.sleepers(), 1);
        clock.close();
        assert_eq!(clock.sleepers(), 0);
        assert!(
            !clock.sleep(Duration::from_secs(1)).await,
            "no sleeping after the end"
        );
        assert_eq!(
            woke.load(Ordering::SeqCst),
            2,
            "the closed sleeper did not count as woken"
        );
    }
}
