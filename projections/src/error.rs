//! The read side's one error type below the query service.

use orderflow_infra::bus::{BusError, CheckpointError};
use orderflow_infra::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read model's database is unreachable or refused a statement.
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// A stored row this binary cannot read back.
    #[error("corrupt read-model row in {view}: {reason}")]
    Corrupt { view: &'static str, reason: String },
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("checkpoints: {0}")]
    Checkpoint(#[from] CheckpointError),
}

impl From<tokio_postgres::Error> for ProjectionError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message says what went wrong; the client's Display does not.
        match e.as_db_error() {
            Some(db) => {
                ProjectionError::Unavailable(format!("{}: {}", db.code().code(), db.message()))
            }
            None => ProjectionError::Unavailable(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ProjectionError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ProjectionError::Unavailable(e.to_string())
    }
}
