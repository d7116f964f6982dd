//! The bus layer's errors: one enum for the port and its adapters, one for checkpoint stores.

/// The source of a backend failure, kept whole so logs show the driver's own message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("nats prefix must be 1..=64 of [a-z0-9_-], got {0:?}")]
    InvalidPrefix(String),
    #[error("consumer name must be 1..=64 of [A-Za-z0-9_-], got {0:?}")]
    InvalidConsumerName(String),
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    /// A durable subject outside every stream the bus manages.
    #[error("no stream captures subject {0:?}")]
    NoStream(String),
    #[error("consumer {0} does not exist")]
    ConsumerNotFound(String),
    /// The server or connection failed; the operation may be retried.
    #[error("bus unavailable ({op}): {source}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// No answer in time; a publish may or may not have been stored (retry with the same id).
    #[error("bus timed out ({op})")]
    Timeout { op: &'static str },
    /// A stream or consumer could not be created as configured.
    #[error("bus setup ({op}): {source}")]
    Setup {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// A message on an event subject that is not a valid envelope.
    #[error("undecodable event message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("event message has an invalid field {field}")]
    InvalidEnvelope { field: &'static str },
    /// The bus was shut down.
    #[error("bus is closed")]
    Closed,
}

impl BusError {
    pub(crate) fn unavailable(op: &'static str, source: impl Into<BoxError>) -> BusError {
        BusError::Unavailable {
            op,
            source: source.into(),
        }
    }

    pub(crate) fn setup(op: &'static str, source: impl Into<BoxError>) -> BusError {
        BusError::Setup {
            op,
            source: source.into(),
        }
    }

    /// True for faults of the backend rather than of the request: retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BusError::Unavailable { .. } | BusError::Timeout { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint name must be 1..=200 characters, got {0} bytes")]
    InvalidName(usize),
    #[error("checkpoint store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("corrupt checkpoint {name}: {field}")]
    Corrupt { name: String, field: &'static str },
}

impl From<tokio_postgres::Error> for CheckpointError {
    fn from(e: tokio_postgres::Error) -> Self {
        CheckpointError::Unavailable(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for CheckpointError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CheckpointError::Unavailable(Box::new(e))
    }
}

/// Why an ordered consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}
