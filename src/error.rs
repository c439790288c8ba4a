//! Errors of the network side, classified so that retry logic can tell transient from
//! permanent failures and the report can say what kind of failure an image met.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

/// What kind of failure an image met, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Connection refused/reset, timeout, TLS failure.
    Network,
    /// The registry refused the credentials or the operation (401/403).
    Auth,
    /// The manifest, tag list or blob does not exist.
    NotFound,
    /// Content did not match its digest or size.
    Digest,
    /// Rate limited (429) after all retries.
    RateLimited,
    /// Any other unexpected HTTP status.
    Http,
    /// The registry answered something this tool cannot use.
    Protocol,
    /// The run was cancelled before the image finished.
    Cancelled,
}

/// A failed registry operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub status: Option<u16>,
    /// Transient: worth another attempt.
    pub retryable: bool,
    /// What the server asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retryable: false,
            retry_after: None,
        }
    }

    /// A connection-level failure; transient.
    pub fn network(message: impl Into<String>) -> Self {
        Error {
            retryable: true,
            ..Error::new(ErrorKind::Network, message)
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    pub fn digest(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Digest, message)
    }

    pub fn cancelled() -> Self {
        Error::new(ErrorKind::Cancelled, "cancelled before completion")
    }

    /// Classifies an HTTP status: 408, 429 and 5xx are transient.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            401 | 403 => ErrorKind::Auth,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Http,
        };
        Error {
            status: Some(status),
            retryable: matches!(status, 408 | 429 | 500..=599),
            ..Error::new(kind, message)
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Adds context in front of the message, keeping the classification.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

pub type Result<T> = std::result::Result<T, Error>;
