//! What goes over the wire and comes back, in types of our own so that no caller sees
//! ureq: the request's method and body, and the response, whose body is read within the
//! bounds of [`bounds`] (whole and capped, or as a stream under the speed floor). An error
//! answer becomes an [`Error`] here, with the registry's error codes parsed once.

use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime};

use ureq::http::HeaderMap;

use super::bounds::{self, TimeBounds};
use crate::error::{Error, RegistryError, Result};

/// Longest wait honoured from a `Retry-After` header.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// An HTTP method, of those this tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Whether a request with this method carries a body (an empty one says so).
    pub(super) fn sends_content(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch)
    }

    pub(super) fn to_ureq(self) -> ureq::http::Method {
        match self {
            Method::Get => ureq::http::Method::GET,
            Method::Head => ureq::http::Method::HEAD,
            Method::Post => ureq::http::Method::POST,
            Method::Put => ureq::http::Method::PUT,
            Method::Patch => ureq::http::Method::PATCH,
            Method::Delete => ureq::http::Method::DELETE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to send.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly `len` bytes (sent with `Content-Length`).
    Stream(&'a mut dyn Read, u64),
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    headers: HeaderMap,
    body: ureq::Body,
    time: TimeBounds,
}

impl Response {
    pub(super) fn new(response: ureq::http::Response<ureq::Body>, time: TimeBounds) -> Self {
        let (parts, body) = response.into_parts();
        Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            time,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header that is text, names in lower case.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect()
    }

    /// Reads a body of at most `limit` bytes (see [`bounds`]); `what` names it in errors.
    /// A larger body fails without being read further (at once when its
    /// `Content-Length` says so); a slow or cut body fails as a transient network error.
    pub fn read_bounded(self, limit: u64, what: &str) -> Result<Vec<u8>> {
        let announced = self
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|length| length > limit) {
            return Err(Error::protocol(bounds::too_large(what, limit)));
        }
        let reader = bounds::SpeedFloor::new(self.body.into_reader(), &self.time);
        bounds::read_at_most(reader, limit)
            .map_err(|e| Error::network(format!("reading {what}: {e}")))?
            .ok_or_else(|| Error::protocol(bounds::too_large(what, limit)))
    }

    /// Reads the rest of a body that is not needed (a ping's `{}`, a redirect's or a 401's
    /// few bytes), up to an error body's bound, so that ureq puts the connection back in its
    /// pool: a response dropped unread closes its connection, and over TLS the next
    /// request pays a handshake. A larger or broken body only costs that connection.
    pub fn discard(self) {
        let _ = self.read_bounded(bounds::MAX_ERROR_BODY_BYTES, "a body not needed");
    }

    /// The body as a stream, for blobs; slower than the speed floor fails.
    pub fn into_reader(self) -> impl Read + Send + 'static {
        let announced = self
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = ReadsItsEnd {
            inner: self.body.into_reader(),
            left: announced,
        };
        bounds::SpeedFloor::new(body, &self.time)
    }

    /// `Retry-After` as seconds or an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }

    /// A short description of an error response: status plus the registry's error codes,
    /// which the error also carries ([`Error::codes`]).
    pub fn describe_error(self, what: &str) -> Error {
        let status = self.status;
        let retry_after = self.retry_after();
        // Docker Hub says how much of its pull quota is left (`RateLimit-Remaining: 0;w=21600`).
        let quota = self
            .header("ratelimit-remaining")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let body = self
            .read_bounded(bounds::MAX_ERROR_BODY_BYTES, "error body")
            .unwrap_or_default();
        let errors = RegistryError::parse_body(&body).unwrap_or_default();
        let detail = registry_error_text(&errors);
        let mut message = match detail {
            Some(detail) => format!("{what}: HTTP {status}: {detail}"),
            None => format!("{what}: HTTP {status}"),
        };
        if status == 429 {
            message.push_str(&crate::hints::rate_limited(quota.as_deref()));
        }
        Error::from_status(status, message)
            .with_retry_after(retry_after)
            .with_codes(errors.into_iter().map(|e| e.code).collect())
    }
}

/// `Retry-After` (seconds, or an HTTP date seen from `now`), capped at
/// `MAX_RETRY_AFTER` (2 min); a date in the past means at once, garbage means not given.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A registry's error body summarised (the first entries, 300 characters each, control
/// characters escaped): the server's words go into logs and reports.
fn registry_error_text(errors: &[RegistryError]) -> Option<String> {
    let text: Vec<String> = errors
        .iter()
        .map(|e| bounds::printable(format!("{} {}", e.code, e.message).trim(), 300))
        .collect();
    (!text.is_empty()).then(|| text.join("; "))
}

/// A body that, once its announced length has been read, reads its end too. ureq puts a
/// connection back in its pool only when the body's end was read, and a consumer that
/// knows the length (an upload of the blob) stops at the last byte: without this every
/// blob cost a new connection, over TLS a handshake on the source registry.
struct ReadsItsEnd<R> {
    inner: R,
    /// Bytes still announced (`Content-Length`); `None` when unknown or done.
    left: Option<u64>,
}

impl<R: Read> Read for ReadsItsEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = self.left {
            let left = left.saturating_sub(n as u64);
            self.left = Some(left);
            if left == 0 && n > 0 {
                self.left = None;
                // ureq keeps to the announced length: this read is the end (0 bytes), and
                // a failure here takes nothing from the bytes already delivered.
                let _ = self.inner.read(&mut [0u8; 1]);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: at once"
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn methods_read_as_on_the_wire() {
        for (method, text) in [
            (Method::Get, "GET"),
            (Method::Head, "HEAD"),
            (Method::Post, "POST"),
            (Method::Put, "PUT"),
            (Method::Patch, "PATCH"),
            (Method::Delete, "DELETE"),
        ] {
            assert_eq!(method.to_string(), text);
            assert_eq!(method.to_ureq().as_str(), text);
        }
        assert!(Method::Put.sends_content() && !Method::Head.sends_content());
    }
}
