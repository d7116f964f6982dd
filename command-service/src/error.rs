//! The command side's one error type, and its one mapping to gRPC status codes.

use orderflow_domain::{FailureReason, Refusal, RefusalKind};
use orderflow_infra::auth::AuthError;
use orderflow_infra::store::StoreError;
use orderflow_proto::convert::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A request field is malformed; names the field. Nothing was appended.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    /// The domain refused the command (illegal in the current state, lost a race, …).
    #[error("{message}")]
    Refused {
        kind: RefusalKind,
        reason: Option<FailureReason>,
        message: String,
    },
    /// Optimistic concurrency kept failing after the bounded retries: heavy contention.
    #[error("too much contention on {stream}, retry")]
    Contention { stream: String },
    /// A stored event this binary cannot read (newer version, corrupt row).
    #[error("cannot read stored history: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("service is shutting down")]
    ShuttingDown,
}

impl CommandError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        CommandError::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// A domain refusal, keeping its kind and machine-readable reason.
    pub fn refused<E: Refusal + std::fmt::Display>(e: E) -> Self {
        CommandError::Refused {
            kind: e.kind(),
            reason: e.failure_reason(),
            message: e.to_string(),
        }
    }
}

/// A request field that breaks the contract: INVALID_ARGUMENT naming the field.
impl From<FieldError> for CommandError {
    fn from(e: FieldError) -> Self {
        CommandError::InvalidArgument {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// No token, or one that does not verify: UNAUTHENTICATED, with the token's problem and
/// nothing of the token itself.
impl From<AuthError> for CommandError {
    fn from(e: AuthError) -> Self {
        CommandError::Unauthenticated(e.to_string())
    }
}

impl From<CommandError> for tonic::Status {
    fn from(e: CommandError) -> tonic::Status {
        use tonic::Code;
        let message = e.to_string();
        let code = match &e {
            CommandError::InvalidArgument { .. } => Code::InvalidArgument,
            CommandError::Unauthenticated(_) => Code::Unauthenticated,
            CommandError::PermissionDenied(_) => Code::PermissionDenied,
            CommandError::NotFound(_) => Code::NotFound,
            CommandError::Refused { kind, .. } => match kind {
                RefusalKind::InvalidArgument => Code::InvalidArgument,
                RefusalKind::FailedPrecondition => Code::FailedPrecondition,
                RefusalKind::Aborted => Code::Aborted,
                RefusalKind::NotFound => Code::NotFound,
                RefusalKind::PermissionDenied => Code::PermissionDenied,
            },
            CommandError::Contention { .. } => Code::Aborted,
            CommandError::Corrupt(_) => Code::Internal,
            CommandError::Store(store) => match store {
                StoreError::Conflict { .. }
                | StoreError::GroupPartlyStored { .. }
                | StoreError::AlreadyClaimed { .. } => Code::Aborted,
                StoreError::Unavailable(_) | StoreError::ShuttingDown => Code::Unavailable,
                StoreError::Corrupt { .. }
                | StoreError::Config(_)
                | StoreError::InvalidGroup(_)
                | StoreError::ClaimShard { .. }
                | StoreError::DuplicateEventId(_) => Code::Internal,
                // Limits and ids are checked at the edge; reaching the store with them is a bug
                // of ours, but the caller still learns what was wrong.
                _ => Code::InvalidArgument,
            },
            CommandError::ShuttingDown => Code::Unavailable,
        };
        let mut status = tonic::Status::new(code, message);
        if let CommandError::Refused {
            reason: Some(reason),
            ..
        } = &e
        {
            // Machine-readable reason for clients that do not parse messages.
            if let Ok(value) = reason.as_str().parse() {
                status
                    .metadata_mut()
                    .insert("orderflow-failure-reason", value);
            }
        }
        status
    }
}
