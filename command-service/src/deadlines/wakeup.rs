//! How the scheduler wakes the firer when it stores a deadline due before the firer meant to
//! look again. Only matters for deadlines shorter than the firer's longest sleep (1 s by
//! default): every other one is found by the regular look.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use orderflow_domain::Timestamp;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Wakeup {
    notify: Notify,
    /// When the firer will look next, in ms; `i64::MAX` before it first sleeps.
    planned: AtomicI64,
}

impl Wakeup {
    pub fn new() -> Arc<Self> {
        Arc::new(Wakeup {
            notify: Notify::new(),
            planned: AtomicI64::new(i64::MAX),
        })
    }

    /// The firer: "I will look again at `at`".
    pub(super) fn plan(&self, at: Timestamp) {
        self.planned.store(at.as_millis(), Ordering::SeqCst);
    }

    /// The scheduler: a deadline due at `due_at` was stored. Wakes the firer only if it
    /// would otherwise look too late, so a busy scheduler does not keep the firer spinning.
    /// A deadline stored while the firer is between a look and its next plan may wait for
    /// that plan (at most the firer's longest sleep).
    pub(super) fn scheduled(&self, due_at: Timestamp) {
        if due_at.as_millis() < self.planned.load(Ordering::SeqCst) {
            // One stored permit at most: many notifications wake the firer once.
            self.notify.notify_one();
        }
    }

    pub(super) async fn notified(&self) {
        self.notify.notified().await;
    }
}
