//! Is a merchant taking orders? The submit path's fast-fail check, without a PostgreSQL read
//! per submit.
//!
//! The check at submit time is a courtesy: the reservation saga re-reads the merchant for
//! every submission it handles and fails a closed merchant's orders with `MERCHANT_CLOSED`
//! (`crate::saga`). So the submit path may answer from a slightly old view, as long as it
//! errs towards accepting:
//!
//! - **positive answers are cached** for [`OPEN_TTL`] of the service clock: "merchant `m`
//!   exists and was open at `t`". Within that window a submit does not read the merchant;
//! - **negative answers are never cached**: a merchant never opened (`NOT_FOUND`) or closed
//!   (`FAILED_PRECONDITION`, reason `MERCHANT_CLOSED`) is read again on every submit, so a
//!   merchant that opens or reopens takes orders at once, and a caller spraying unknown ids
//!   cannot grow the cache (it holds at most the merchants that were seen open).
//!
//! **Staleness window**: a submit up to [`OPEN_TTL`] after a close (made by any process) may
//! still be accepted. Such an order is appended as CREATING and the saga, which reads the
//! merchant stream after the close committed, fails it with `MERCHANT_CLOSED`; it reserves
//! nothing. After the window the submit itself refuses, as before. Measured in
//! `docs/BENCHMARKS.md` (2026-11-22): the read was one PostgreSQL round trip and a pooled
//! connection per submit.
//!
//! A cold or expired entry is read by every submit that finds it so until one of them
//! stores the answer: a burst of a few concurrent reads per merchant per window, not worth a
//! single-flight lock on this path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use orderflow_domain::merchant::Merchant;
use orderflow_domain::{FailureReason, MerchantId, RefusalKind, Timestamp};

use crate::error::CommandError;
use crate::execute::Executor;

/// How long "open" is believed without reading the merchant again.
pub const OPEN_TTL: Duration = Duration::from_secs(1);

/// Merchants recently read as open, with when that was read (service clock).
#[derive(Debug)]
pub struct OpenMerchants {
    ttl: Duration,
    /// A std Mutex, not a tokio one: one map lookup or insert, never held across an await.
    seen_open: Mutex<HashMap<MerchantId, Timestamp>>,
}

impl Default for OpenMerchants {
    fn default() -> Self {
        OpenMerchants::new(OPEN_TTL)
    }
}

impl OpenMerchants {
    /// A cache believing "open" for `ttl`; `Duration::ZERO` reads on every call.
    pub fn new(ttl: Duration) -> Self {
        OpenMerchants {
            ttl,
            seen_open: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `merchant` takes orders as far as this process knows at `now`: NOT_FOUND for a
    /// merchant never opened, FAILED_PRECONDITION (MERCHANT_CLOSED) for a closed one.
    pub async fn ensure_open(
        &self,
        executor: &Executor,
        merchant: MerchantId,
        now: Timestamp,
    ) -> Result<(), CommandError> {
        if self.fresh(merchant, now) {
            return Ok(());
        }
        let loaded = executor.load::<Merchant>(&merchant.stream_id()).await?;
        match &loaded.state.profile {
            None => Err(CommandError::NotFound(format!(
                "merchant {merchant} does not exist"
            ))),
            Some(p) if !p.open => {
                self.forget(merchant);
                Err(CommandError::Refused {
                    kind: RefusalKind::FailedPrecondition,
                    reason: Some(FailureReason::MerchantClosed),
                    message: format!("merchant {merchant} is closed"),
                })
            }
            Some(_) => {
                if !self.ttl.is_zero() {
                    self.lock().insert(merchant, now);
                }
                Ok(())
            }
        }
    }

    /// True if `merchant` was read open less than the TTL before `now`. A clock that went
    /// backwards (read "in the future") does not count as fresh.
    fn fresh(&self, merchant: MerchantId, now: Timestamp) -> bool {
        let Some(read_at) = self.lock().get(&merchant).copied() else {
            return false;
        };
        read_at <= now && now < read_at.plus(self.ttl)
    }

    fn forget(&self, merchant: MerchantId) {
        self.lock().remove(&merchant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MerchantId, Timestamp>> {
        // Only whole inserts and removes happen under the lock: a poisoned map is consistent.
        self.seen_open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orderflow_domain::merchant::MerchantCommand;
    use orderflow_domain::{Actor, GeoPoint, Name, Role};
    use orderflow_infra::store::{CommandId, CorrelationId, EventStore, MemoryEventStore};

    use super::*;
    use crate::execute::CommandMeta;

    const T0: i64 = 1_795_331_832_345;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    fn meta(id: &str) -> CommandMeta {
        CommandMeta {
            command_id: CommandId::parse(id).unwrap(),
            correlation_id: CorrelationId::random(),
            causation_id: None,
            actor: Actor::new(Role::Merchant, "7"),
            at: at(0),
        }
    }

    async fn run(executor: &Executor, command: MerchantCommand, id: &str) {
        executor
            .execute::<Merchant>(&m().stream_id(), &command, &meta(id))
            .await
            .unwrap();
    }

    fn m() -> MerchantId {
        MerchantId::new(7).unwrap()
    }

    fn setup() -> (Executor, Arc<MemoryEventStore>) {
        let store = Arc::new(MemoryEventStore::new());
        (Executor::new(store.clone()), store)
    }

    async fn open(executor: &Executor) {
        let open = MerchantCommand::Open {
            name: Name::parse("Noodle Bar").unwrap(),
            location: GeoPoint::new(31.23, 121.47).unwrap(),
            at: at(0),
        };
        run(executor, open, "open").await;
    }

    fn is_closed(result: Result<(), CommandError>) -> bool {
        matches!(
            result,
            Err(CommandError::Refused {
                kind: RefusalKind::FailedPrecondition,
                reason: Some(FailureReason::MerchantClosed),
                ..
            })
        )
    }

    #[tokio::test]
    async fn a_merchant_never_opened_is_not_found_and_not_remembered() {
        let (executor, _) = setup();
        let cache = OpenMerchants::default();
        let err = cache.ensure_open(&executor, m(), at(0)).await.unwrap_err();
        assert!(matches!(err, CommandError::NotFound(_)), "{err:?}");
        // Opened a moment later: the next submit sees it, the refusal was not cached.
        open(&executor).await;
        cache.ensure_open(&executor, m(), at(1)).await.unwrap();
    }

    #[tokio::test]
    async fn open_is_believed_for_the_ttl_then_read_again() {
        let (executor, _) = setup();
        let cache = OpenMerchants::new(Duration::from_secs(1));
        open(&executor).await;
        cache.ensure_open(&executor, m(), at(0)).await.unwrap();
        run(&executor, MerchantCommand::Close { at: at(10) }, "close").await;

        // Inside the window the close is not seen (the saga refuses such orders).
        cache.ensure_open(&executor, m(), at(999)).await.unwrap();
        // At the end of the window the merchant is read again.
        assert!(is_closed(
            cache.ensure_open(&executor, m(), at(1_000)).await
        ));
        // A refusal is not cached: reopened, it takes orders at once.
        run(
            &executor,
            MerchantCommand::Reopen { at: at(1_100) },
            "reopen",
        )
        .await;
        cache.ensure_open(&executor, m(), at(1_101)).await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_merchant_is_read_on_every_call() {
        let (executor, store) = setup();
        let cache = OpenMerchants::default();
        open(&executor).await;
        run(&executor, MerchantCommand::Close { at: at(10) }, "close").await;
        for i in 0..3 {
            assert!(is_closed(
                cache.ensure_open(&executor, m(), at(20 + i)).await
            ));
        }
        assert!(cache.lock().is_empty());
        assert_eq!(
            store
                .read_stream(&m().stream_id(), 1, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_zero_ttl_or_a_clock_gone_back_reads_again() {
        let (executor, _) = setup();
        open(&executor).await;
        let never = OpenMerchants::new(Duration::ZERO);
        never.ensure_open(&executor, m(), at(0)).await.unwrap();
        assert!(!never.fresh(m(), at(0)));

        let cache = OpenMerchants::default();
        cache.ensure_open(&executor, m(), at(500)).await.unwrap();
        assert!(cache.fresh(m(), at(500)));
        assert!(!cache.fresh(m(), at(499)));
    }
}
