//! The crate's error type and THE one mapping from it to `tonic::Status`.
//!
//! Every refusal a client can see is one of these variants; the message names the field and
//! the rule. Internal causes (store failures) are logged here and reach the client only as a
//! short UNAVAILABLE or INTERNAL.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: `field` broke `rule`. Nothing was stored.
    #[error("{field}: {rule}")]
    InvalidArgument { field: String, rule: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The request is well formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// The hub cannot take writes now (its disk is nearly full); the request had no effect.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed; the request had no effect.
    #[error("store: {0}")]
    Store(String),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Store(cause) => {
                tracing::error!(%cause, "store failure");
                return Status::unavailable(
                    "the hub's store is unavailable; nothing was changed, retry later",
                );
            }
            Error::Unavailable(_) | Error::ShuttingDown => Code::Unavailable,
        };
        Status::new(code, e.to_string())
    }
}
