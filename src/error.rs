//! The one error type of the app: each kind is a class of outcome (its
//! HTTP status number) and a sentence a person can act on. How it is said
//! on each surface (JSON, a toast, a page, Git's plain text) is
//! `http::error`'s business.

use std::fmt;

use crate::domain::Invalid;

#[derive(Debug)]
pub enum AppError {
    /// 400: the request is malformed (bad multipart, missing field).
    BadRequest(String),
    /// 401: no valid session, token or password.
    Unauthenticated(String),
    /// 403: authenticated, but the role or ownership does not allow it.
    Forbidden(String),
    /// 404: no such file, user, version or token.
    NotFound(String),
    /// 409: the state changed under the request (lock held, path taken).
    Conflict(String),
    /// 409 for a change of several files: the sentence, and each file that
    /// stood in the way with who holds it (or whom it is reserved for).
    Held {
        message: String,
        held: Vec<HeldFile>,
    },
    /// 413: the upload is over the size limit.
    TooLarge(String),
    /// 422: well-formed but invalid values.
    Invalid(String),
    /// 429: too many failed logins.
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 500: a fault of ours or of the disk; logged in full, shown vaguely.
    Internal(String),
}

/// A file a change set could not take, and the person in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFile {
    pub id: u64,
    pub path: String,
    pub owner: String,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn internal(context: &str, err: impl fmt::Display) -> Self {
        AppError::Internal(format!("{context}: {err}"))
    }

    /// The HTTP status number of this kind of outcome.
    pub fn code(&self) -> u16 {
        match self {
            AppError::BadRequest(_) => 400,
            AppError::Unauthenticated(_) => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) | AppError::Held { .. } => 409,
            AppError::TooLarge(_) => 413,
            AppError::Invalid(_) => 422,
            AppError::TooManyRequests { .. } => 429,
            AppError::Internal(_) => 500,
        }
    }

    /// The sentence a person is shown. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AppError::BadRequest(m)
            | AppError::Unauthenticated(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::TooLarge(m)
            | AppError::Invalid(m)
            | AppError::Held { message: m, .. } => m.clone(),
            AppError::TooManyRequests { message, .. } => message.clone(),
            AppError::Internal(_) => "Something went wrong on the server; the change was not made. Try again, and tell your admin if it keeps happening.".to_string(),
        }
    }

    /// Logs server faults once, where they are turned into a response.
    pub fn log(&self) {
        if let AppError::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Internal(detail) => write!(f, "internal error: {detail}"),
            other => f.write_str(&other.public_message()),
        }
    }
}

impl std::error::Error for AppError {}

impl From<Invalid> for AppError {
    fn from(err: Invalid) -> Self {
        AppError::Invalid(err.0)
    }
}

impl From<redb::Error> for AppError {
    fn from(err: redb::Error) -> Self {
        AppError::internal("database", err)
    }
}

macro_rules! redb_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for AppError {
            fn from(err: $ty) -> Self {
                AppError::internal("database", err)
            }
        }
    )*};
}
redb_errors!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

impl From<serde_json::Error> for AppError {
    fn from(err: serde_json::Error) -> Self {
        AppError::internal("record encoding", err)
    }
}

impl From<std::io::Error> for AppError {
    fn from(err: std::io::Error) -> Self {
        AppError::internal("i/o", err)
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(err: tokio::task::JoinError) -> Self {
        AppError::internal("background task", err)
    }
}
