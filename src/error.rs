//! Errors of the network side, classified so that retry logic can tell transient from
//! permanent failures and the report can say what kind of failure an image met. A
//! registry's error body (`{"errors":[{"code":…}]}`) is parsed once, into [`ErrorCode`]s
//! that the error carries, so that no layer looks for a code in a message's text.

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
    /// The target refused to move a tag it keeps immutable (Harbor's immutability rules,
    /// ECR's `IMMUTABLE` repositories).
    Immutable,
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
    /// The codes of the registry's error body, in its order (the first few).
    pub codes: Vec<ErrorCode>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retryable: false,
            retry_after: None,
            codes: Vec::new(),
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

    pub fn with_codes(mut self, codes: Vec<ErrorCode>) -> Self {
        self.codes = codes;
        self
    }

    /// Whether the registry's error body said `code`.
    pub fn has_code(&self, code: &ErrorCode) -> bool {
        self.codes.contains(code)
    }

    /// Adds context in front of the message, keeping the classification.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// An error code of the distribution spec (`errors[].code` in an error body), or another
/// a registry made up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// ECR's answer to a tag its repository keeps immutable (and, in the spec, a schema 1
    /// manifest whose tag is not the URL's).
    TagInvalid,
    /// Harbor's `412` answer, e.g. to a tag one of its immutability rules covers.
    Precondition,
    Other(String),
}

/// The spec's codes as registries write them (upper case, exactly).
const CODES: [(&str, ErrorCode); 16] = [
    ("BLOB_UNKNOWN", ErrorCode::BlobUnknown),
    ("BLOB_UPLOAD_INVALID", ErrorCode::BlobUploadInvalid),
    ("BLOB_UPLOAD_UNKNOWN", ErrorCode::BlobUploadUnknown),
    ("DIGEST_INVALID", ErrorCode::DigestInvalid),
    ("MANIFEST_BLOB_UNKNOWN", ErrorCode::ManifestBlobUnknown),
    ("MANIFEST_INVALID", ErrorCode::ManifestInvalid),
    ("MANIFEST_UNKNOWN", ErrorCode::ManifestUnknown),
    ("NAME_INVALID", ErrorCode::NameInvalid),
    ("NAME_UNKNOWN", ErrorCode::NameUnknown),
    ("SIZE_INVALID", ErrorCode::SizeInvalid),
    ("UNAUTHORIZED", ErrorCode::Unauthorized),
    ("DENIED", ErrorCode::Denied),
    ("UNSUPPORTED", ErrorCode::Unsupported),
    ("TOOMANYREQUESTS", ErrorCode::TooManyRequests),
    ("TAG_INVALID", ErrorCode::TagInvalid),
    ("PRECONDITION", ErrorCode::Precondition),
];

/// Longest code kept as [`ErrorCode::Other`]: the server's words, not ours.
const OTHER_CODE_MAX: usize = 64;

impl ErrorCode {
    pub fn parse(code: &str) -> ErrorCode {
        CODES
            .iter()
            .find(|(name, _)| *name == code)
            .map(|(_, known)| known.clone())
            .unwrap_or_else(|| ErrorCode::Other(code.chars().take(OTHER_CODE_MAX).collect()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Other(code) => code,
            known => CODES
                .iter()
                .find(|(_, code)| code == known)
                .map_or("", |(name, _)| name),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a registry's error body: its code and the registry's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub message: String,
}

/// Entries of an error body kept (the rest are not read into memory as errors).
pub const REGISTRY_ERRORS_KEPT: usize = 5;

impl RegistryError {
    /// The distribution spec's `{"errors":[{"code","message"}]}` body, the first
    /// [`REGISTRY_ERRORS_KEPT`] entries; `None` when the body is not one.
    pub fn parse_body(body: &[u8]) -> Option<Vec<RegistryError>> {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let errors: Errors = serde_json::from_slice(body).ok()?;
        Some(
            errors
                .errors
                .into_iter()
                .take(REGISTRY_ERRORS_KEPT)
                .map(|item| RegistryError {
                    code: ErrorCode::parse(&item.code),
                    message: item.message,
                })
                .collect(),
        )
    }

    /// The codes of an error body (none when it is not one).
    pub fn codes_of(body: &[u8]) -> Vec<ErrorCode> {
        RegistryError::parse_body(body)
            .unwrap_or_default()
            .into_iter()
            .map(|error| error.code)
            .collect()
    }
}

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

    #[test]
    fn error_codes_are_read_from_real_error_bodies() {
        // Docker Hub's anonymous pull limit.
        let hub = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit"}]}"#;
        assert_eq!(RegistryError::codes_of(hub), [ErrorCode::TooManyRequests]);
        // distribution (registry:2) for a repository it does not know, with its detail.
        let unknown = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"a/b"}}]}"#;
        let parsed = RegistryError::parse_body(unknown).unwrap();
        assert_eq!(parsed[0].code, ErrorCode::NameUnknown);
        assert_eq!(parsed[0].message, "repository name not known to registry");
        // A manifest PUT whose layers are missing: one entry per blob.
        let missing = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:aa"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:bb"}]}"#;
        assert_eq!(
            RegistryError::codes_of(missing),
            [
                ErrorCode::ManifestBlobUnknown,
                ErrorCode::ManifestBlobUnknown
            ]
        );
        // Harbor's codes that are not the spec's, and a code-less entry.
        let harbor =
            br#"{"errors":[{"code":"NOT_FOUND","message":"artifact not found"},{"message":"x"}]}"#;
        assert_eq!(
            RegistryError::codes_of(harbor),
            [
                ErrorCode::Other("NOT_FOUND".into()),
                ErrorCode::Other(String::new())
            ]
        );
        // Not an error body.
        assert_eq!(RegistryError::parse_body(b"<html>502</html>"), None);
        assert_eq!(RegistryError::parse_body(br#"{"tags":[]}"#), None);
        assert!(RegistryError::codes_of(b"").is_empty());
        // Only the first few entries are kept.
        let many = format!(
            r#"{{"errors":[{}]}}"#,
            vec![r#"{"code":"DENIED"}"#; 50].join(",")
        );
        assert_eq!(
            RegistryError::codes_of(many.as_bytes()).len(),
            REGISTRY_ERRORS_KEPT
        );
    }

    #[test]
    fn every_spec_code_reads_back_as_itself() {
        for (name, code) in &CODES {
            assert_eq!(ErrorCode::parse(name), *code);
            assert_eq!(code.as_str(), *name);
            assert_eq!(code.to_string(), *name);
        }
        // Exactly as the spec writes them; anything else is another code, kept short.
        assert_eq!(
            ErrorCode::parse("toomanyrequests"),
            ErrorCode::Other("toomanyrequests".into())
        );
        let long = "X".repeat(1000);
        assert_eq!(ErrorCode::parse(&long).as_str().len(), OTHER_CODE_MAX);
        let error = Error::from_status(429, "x").with_codes(vec![ErrorCode::TooManyRequests]);
        assert!(error.has_code(&ErrorCode::TooManyRequests));
        assert!(!error.has_code(&ErrorCode::Denied));
    }
}
