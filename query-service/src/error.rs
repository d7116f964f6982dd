//! The query side's one error type, and its one mapping to gRPC status codes.

use orderflow_infra::auth::AuthError;
use orderflow_infra::store::{InvalidToken, StoreError};
use orderflow_projections::orders::InvalidPageToken;
use orderflow_projections::{Behind, ProjectionError};
use orderflow_proto::convert::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A request field is malformed; names the field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    /// Read-your-writes: the read model had not applied the token's position in time.
    #[error("consistency_token not reached: {0}")]
    Behind(#[from] Behind),
    #[error("{0}")]
    ReadModel(#[from] ProjectionError),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// An RPC of the contract this build does not serve yet.
    #[error("{0} is not served yet")]
    Unimplemented(&'static str),
    #[error("service is shutting down")]
    ShuttingDown,
}

impl QueryError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        QueryError::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    pub fn denied(message: impl std::fmt::Display) -> Self {
        QueryError::PermissionDenied(message.to_string())
    }
}

impl From<FieldError> for QueryError {
    fn from(e: FieldError) -> Self {
        QueryError::InvalidArgument {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl From<AuthError> for QueryError {
    fn from(e: AuthError) -> Self {
        QueryError::Unauthenticated(e.to_string())
    }
}

impl From<InvalidToken> for QueryError {
    fn from(e: InvalidToken) -> Self {
        QueryError::invalid("consistency_token", e)
    }
}

impl From<InvalidPageToken> for QueryError {
    fn from(e: InvalidPageToken) -> Self {
        QueryError::invalid("page_token", e)
    }
}

impl From<QueryError> for tonic::Status {
    fn from(e: QueryError) -> tonic::Status {
        use tonic::Code;
        let code = match &e {
            QueryError::InvalidArgument { .. } => Code::InvalidArgument,
            QueryError::Unauthenticated(_) => Code::Unauthenticated,
            QueryError::PermissionDenied(_) => Code::PermissionDenied,
            QueryError::NotFound(_) => Code::NotFound,
            QueryError::Behind(_) => Code::Unavailable,
            QueryError::ReadModel(ProjectionError::Corrupt { .. }) => Code::Internal,
            QueryError::ReadModel(_) => Code::Unavailable,
            QueryError::Store(StoreError::Unavailable(_) | StoreError::ShuttingDown) => {
                Code::Unavailable
            }
            QueryError::Store(_) => Code::Internal,
            QueryError::Unimplemented(_) => Code::Unimplemented,
            QueryError::ShuttingDown => Code::Unavailable,
        };
        tonic::Status::new(code, e.to_string())
    }
}
