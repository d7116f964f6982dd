//! The deadlines' errors: one for the store port and its adapters, one for the processes.

use orderflow_infra::bus::{BoxError, ConsumerError};
use orderflow_infra::store::StoreError;

use crate::error::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum DeadlineStoreError {
    /// The backend failed; the operation may be retried.
    #[error("deadline store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A stored row this binary cannot read (hand-edited, or written by a newer version).
    #[error("corrupt deadline {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl From<tokio_postgres::Error> for DeadlineStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        DeadlineStoreError::Unavailable(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for DeadlineStoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DeadlineStoreError::Unavailable(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    #[error(transparent)]
    Store(#[from] DeadlineStoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
}

impl DeadlineError {
    /// A backend fault rather than a problem of this deadline: retrying later may succeed,
    /// and trying the next deadline now would most likely fail the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            DeadlineError::Store(DeadlineStoreError::Unavailable(_)) => true,
            DeadlineError::Store(DeadlineStoreError::Corrupt { .. }) => false,
            DeadlineError::Command(e) => matches!(
                e,
                CommandError::Store(StoreError::Unavailable(_) | StoreError::ShuttingDown)
                    | CommandError::Contention { .. }
                    | CommandError::ShuttingDown
            ),
            DeadlineError::Consumer(_) => true,
        }
    }
}
