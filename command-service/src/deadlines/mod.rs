//! Durable deadlines: the payment window, the offer window, the delivery deadline, the
//! on-time close and reservation expiry (seed 001's release job, "the reaper").
//!
//! Three parts, each restartable on its own (see `docs/deadlines.md`):
//! - the **port** [`DeadlineStore`] with an in-memory and a PostgreSQL adapter: deadlines are
//!   rows keyed by what they are about (`payment:{order_no}`), so scheduling twice keeps one;
//! - the **scheduler** [`DeadlineScheduler`], a durable consumer of the event log (consumer
//!   `deadline-scheduler`) that schedules a deadline for each event that opens a window and
//!   cancels what became moot;
//! - the **firer** [`DeadlineFirer`], a loop on a [`crate::Clock`] that sends the command of
//!   each due deadline with a command id derived from the key, and marks it done only once
//!   that command is durable. A crash in between re-fires it, which appends nothing.

mod assignment;
mod error;
mod firer;
mod memory;
mod postgres;
mod reaper;
mod scheduler;
mod wakeup;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use orderflow_domain::{OfferId, OrderNo, RiderId, SkuId, Timestamp};
use orderflow_infra::store::{CausationId, CorrelationId};
use serde::{Deserialize, Serialize};

pub use assignment::ASSIGNMENT_CHECK_AFTER;
pub use error::{DeadlineError, DeadlineStoreError};
pub use firer::{DeadlineFirer, FirerConfig};
pub use memory::MemoryDeadlineStore;
pub use postgres::PgDeadlineStore;
pub use scheduler::{DeadlineScheduler, SCHEDULER_CONSUMER};
pub use wakeup::Wakeup;

/// What a deadline is about; stored as JSON (`{"type": "payment_due", "order_no": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeadlineKind {
    /// CREATED → CANCELLED if still unpaid.
    PaymentDue { order_no: OrderNo },
    /// NOTIFIED → PAID if nobody grabbed this round's offer.
    OfferExpires {
        order_no: OrderNo,
        offer_id: OfferId,
    },
    /// DELIVERING → TIMED_OUT.
    DeliveryDue { order_no: OrderNo },
    /// RECEIVED (on time) → CLOSED.
    CloseDue { order_no: OrderNo },
    /// A reservation still held: settle it from the order's state.
    ReservationExpires { sku: SkuId, order_no: OrderNo },
    /// A rider assigned to an order: release the slot if the order went to someone else.
    AssignmentCheck { rider: RiderId, order_no: OrderNo },
}

impl DeadlineKind {
    /// The unique key: one deadline per order window, per offer round, per reservation.
    pub fn key(&self) -> DeadlineKey {
        DeadlineKey(match self {
            DeadlineKind::PaymentDue { order_no } => format!("payment:{order_no}"),
            DeadlineKind::OfferExpires { order_no, offer_id } => {
                format!("offer:{order_no}:{offer_id}")
            }
            DeadlineKind::DeliveryDue { order_no } => format!("delivery:{order_no}"),
            DeadlineKind::CloseDue { order_no } => format!("close:{order_no}"),
            DeadlineKind::ReservationExpires { sku, order_no } => {
                format!("reservation:{sku}:{order_no}")
            }
            DeadlineKind::AssignmentCheck { rider, order_no } => {
                format!("assignment:{rider}:{order_no}")
            }
        })
    }

    /// The order the deadline belongs to.
    pub fn order_no(&self) -> &OrderNo {
        match self {
            DeadlineKind::PaymentDue { order_no }
            | DeadlineKind::OfferExpires { order_no, .. }
            | DeadlineKind::DeliveryDue { order_no }
            | DeadlineKind::CloseDue { order_no }
            | DeadlineKind::ReservationExpires { order_no, .. }
            | DeadlineKind::AssignmentCheck { order_no, .. } => order_no,
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DeadlineKind::PaymentDue { .. } => "payment",
            DeadlineKind::OfferExpires { .. } => "offer",
            DeadlineKind::DeliveryDue { .. } => "delivery",
            DeadlineKind::CloseDue { .. } => "close",
            DeadlineKind::ReservationExpires { .. } => "reservation",
            DeadlineKind::AssignmentCheck { .. } => "assignment",
        }
    }
}

/// A deadline's unique key, derived from its kind (at most ~110 bytes: ids are bounded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeadlineKey(String);

impl DeadlineKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeadlineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a deadline exists: the event that opened it. The fired command carries the event's
/// correlation and names it as its causation, so an audit reads "cancelled because the
/// payment window opened by event X passed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineCause {
    pub correlation_id: CorrelationId,
    pub causation_id: Option<CausationId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub key: DeadlineKey,
    pub kind: DeadlineKind,
    pub due_at: Timestamp,
    pub cause: Option<DeadlineCause>,
    /// Failed firings so far (set by the store; refusals and outages do not count).
    pub attempts: u32,
}

impl Deadline {
    /// A deadline keyed by its kind.
    pub fn new(kind: DeadlineKind, due_at: Timestamp) -> Self {
        Deadline {
            key: kind.key(),
            kind,
            due_at,
            cause: None,
            attempts: 0,
        }
    }

    pub fn caused_by(mut self, cause: DeadlineCause) -> Self {
        self.cause = Some(cause);
        self
    }
}

/// Where deadlines are kept. A deadline is *open* from `schedule` until it is completed,
/// cancelled or parked; then it is *closed* and its key can never be scheduled again (a
/// replayed event must not revive a deadline that already fired).
#[async_trait]
pub trait DeadlineStore: Send + Sync + 'static {
    /// Stores the deadline unless its key exists (open or closed): the first one wins.
    /// Returns true if it was stored now. Keys name one window of one order, and every
    /// event that schedules a key carries the same due time, so there is nothing to move.
    async fn schedule(&self, deadline: Deadline) -> Result<bool, DeadlineStoreError>;

    /// Closes an open deadline without firing it (it became moot). Returns true if it was
    /// open; an unknown or closed key is left alone.
    async fn cancel(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError>;

    /// [`DeadlineStore::schedule`] for each deadline in order, at once (one statement on
    /// PostgreSQL, so all or nothing): the scheduler's batch of events costs one round trip,
    /// not one per deadline. The first of a key wins, within the batch as against the store.
    /// Returns, per deadline in the given order, whether it was stored now (a key repeated in
    /// the batch: at most its first).
    async fn schedule_many(
        &self,
        deadlines: Vec<Deadline>,
    ) -> Result<Vec<bool>, DeadlineStoreError>;

    /// [`DeadlineStore::cancel`] for each key, at once (one statement on PostgreSQL). Returns,
    /// per key in the given order, whether it was open (a key repeated in the batch: at most
    /// its first). A caller that schedules and cancels in one batch schedules first.
    async fn cancel_many(&self, keys: &[DeadlineKey]) -> Result<Vec<bool>, DeadlineStoreError>;

    /// Open deadlines with `due_at <= now`, oldest first, at most `limit`; a look that takes
    /// nothing (operators, tests). The firer uses [`DeadlineStore::claim`].
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Deadline>, DeadlineStoreError>;

    /// Takes up to `limit` open deadlines due at `now`, oldest first, for one firer: each
    /// taken one's `due_at` moves to `now + lease`, so no other claim sees it until then
    /// (on PostgreSQL, `FOR UPDATE SKIP LOCKED`: concurrent claims of several processes take
    /// disjoint rows, none waits). A firer that dies mid-batch leaves its deadlines to be
    /// claimed again when the lease runs out. The returned deadlines carry the due time they
    /// had before the claim.
    async fn claim(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Deadline>, DeadlineStoreError>;

    /// Deletes up to `limit` deadlines closed before `closed_before` (the store's own clock
    /// stamps `closed_at`); returns how many. Open ones are never deleted.
    async fn prune(
        &self,
        closed_before: Timestamp,
        limit: usize,
    ) -> Result<u64, DeadlineStoreError>;

    /// The earliest `due_at` of the open deadlines, for the firer's sleep.
    async fn next_due(&self) -> Result<Option<Timestamp>, DeadlineStoreError>;

    /// Marks an open deadline as fired. Returns true if it was open.
    async fn complete(&self, key: &DeadlineKey) -> Result<bool, DeadlineStoreError>;

    /// Moves an open deadline to `due_at` (a reservation whose order is still pending, a
    /// failure to retry later). With `failure`, counts one failed attempt and keeps the error
    /// for operators. Returns the failed attempts so far, `None` if it was not open.
    async fn postpone(
        &self,
        key: &DeadlineKey,
        due_at: Timestamp,
        failure: Option<&str>,
    ) -> Result<Option<u32>, DeadlineStoreError>;

    /// Closes an open deadline that kept failing, keeping the error: it no longer blocks the
    /// queue, and an operator can find it. Returns true if it was open.
    async fn park(&self, key: &DeadlineKey, error: &str) -> Result<bool, DeadlineStoreError>;

    /// How many deadlines are open (the "open deadlines" gauge).
    async fn count_open(&self) -> Result<u64, DeadlineStoreError>;
}
