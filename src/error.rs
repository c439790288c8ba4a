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
    /// Rate limited (429) after all retries, or a pull quota that is gone.
    #[serde(rename = "rate-limit")]
    RateLimited,
    /// Any other unexpected HTTP status.
    Http,
    /// The registry answered something this tool cannot use.
    Protocol,
    /// The run was cancelled before the image finished.
    Cancelled,
    /// A signature, SBOM or attestation of the image (a referrer) could not be copied
    /// (`--referrers`); the message names its digest and type.
    Referrer,
}

/// What an HTTP error status means for the one asking: the only place that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 408, 429 and 5xx: worth another attempt.
    Transient,
    /// 401 and 403: the credentials or the operation were refused.
    Auth,
    /// 404.
    NotFound,
    /// Anything else that is not a success: retrying will not change it.
    Fatal,
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status {
            408 | 429 | 500..=599 => StatusClass::Transient,
            401 | 403 => StatusClass::Auth,
            404 => StatusClass::NotFound,
            _ => StatusClass::Fatal,
        }
    }
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

    /// An error for an HTTP status, classified by [`StatusClass::of`].
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        let class = StatusClass::of(status);
        let kind = match (status, class) {
            (429, _) => ErrorKind::RateLimited,
            (_, StatusClass::Auth) => ErrorKind::Auth,
            (_, StatusClass::NotFound) => ErrorKind::NotFound,
            _ => ErrorKind::Http,
        };
        Error {
            status: Some(status),
            retryable: class == StatusClass::Transient,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_once() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(StatusClass::of(status), StatusClass::Transient, "{status}");
            assert!(Error::from_status(status, "x").retryable, "{status}");
        }
        assert_eq!(Error::from_status(429, "x").kind, ErrorKind::RateLimited);
        for (status, kind) in [
            (401, ErrorKind::Auth),
            (403, ErrorKind::Auth),
            (404, ErrorKind::NotFound),
            (400, ErrorKind::Http),
            (409, ErrorKind::Http),
        ] {
            let error = Error::from_status(status, "x");
            assert_eq!(error.kind, kind, "{status}");
            assert!(!error.retryable, "{status}");
            assert_eq!(error.status, Some(status));
        }
    }
}
