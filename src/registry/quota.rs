//! A registry's manifest pull quota (Docker Hub: `RateLimit-Limit: 100;w=21600`,
//! `RateLimit-Remaining: 97;w=21600`; `GET` counts, `HEAD` is free). What the answers say
//! is kept per registry so that a quota that is gone is not asked again in this run: the
//! first 429 that says so stops every later manifest `GET` to that registry at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::error::{Error, ErrorCode, ErrorKind};
use crate::http::Response;

/// What a registry has said of its pull quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullQuota {
    /// No manifest answer yet.
    Unknown,
    /// Its manifest answers carry no quota.
    Unlimited,
    /// Pulls left in the window, as last answered.
    Left(i64),
}

#[derive(Default)]
pub(super) struct Quota {
    /// Pulls left in the window, as last answered; -1 = the registry has not said.
    remaining: AtomicI64,
    /// The window's allowance as the registry states it (`100;w=21600`), once seen.
    limit: Mutex<Option<String>>,
    /// Set by the 429 that ended the quota: the message every later pull fails with.
    exhausted: Mutex<Option<String>>,
    /// Manifest `GET`s sent to this registry in this run.
    manifest_gets: AtomicU64,
    /// Whether any manifest answer was read.
    answered: AtomicBool,
}

impl Quota {
    pub(super) fn new() -> Self {
        Quota {
            remaining: AtomicI64::new(-1),
            ..Quota::default()
        }
    }

    /// What the registry has said so far.
    pub(super) fn state(&self) -> PullQuota {
        let left = self.remaining.load(Ordering::Relaxed);
        if left >= 0 {
            PullQuota::Left(left)
        } else if self.answered.load(Ordering::Relaxed) {
            PullQuota::Unlimited
        } else {
            PullQuota::Unknown
        }
    }

    pub(super) fn manifest_gets(&self) -> u64 {
        self.manifest_gets.load(Ordering::Relaxed)
    }

    /// Before a manifest `GET`: fails at once when the quota is known to be gone — a 429
    /// said so, or the registry's last answer (a free `HEAD` too) left no pull.
    pub(super) fn before_pull(&self, registry: &str) -> Result<(), Error> {
        if let Some(message) = self.exhausted.lock().unwrap().as_ref() {
            return Err(Error::new(ErrorKind::RateLimited, message.clone()));
        }
        if self.remaining.load(Ordering::Relaxed) == 0 {
            return Err(self.exhaust(registry));
        }
        self.manifest_gets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Reads the quota headers of any manifest answer (`GET` or `HEAD`).
    /// The pulls left count from answers that were served: a 429 that says to come back
    /// later (`Retry-After`) is a burst limit, and its `0` does not end the quota (a 429
    /// that does end it goes through [`Quota::exhaust`]).
    pub(super) fn observe(&self, response: &Response) {
        self.answered.store(true, Ordering::Relaxed);
        if response.status != 429
            && let Some(left) = response
                .header("ratelimit-remaining")
                .and_then(quota_number)
        {
            self.remaining.store(left, Ordering::Relaxed);
        }
        if let Some(limit) = response.header("ratelimit-limit") {
            *self.limit.lock().unwrap() = Some(limit.trim().to_string());
        }
    }

    /// Whether a 429 says the quota of the window is gone, not a short burst limit: no
    /// `Retry-After`, and `RateLimit-Remaining: 0` or Docker Hub's `TOOMANYREQUESTS`.
    /// `error` is the answer described ([`Response::describe_error`] reads the body).
    pub(super) fn says_exhausted(none_left: bool, retry_after: bool, error: &Error) -> bool {
        error.status == Some(429)
            && !retry_after
            && (none_left || error.has_code(&ErrorCode::TooManyRequests))
    }

    /// Whether the answer's `RateLimit-Remaining` is 0.
    pub(super) fn none_left(response: &Response) -> bool {
        response
            .header("ratelimit-remaining")
            .and_then(quota_number)
            == Some(0)
    }

    /// After such a 429: the error for this pull and, from now on, for every other.
    pub(super) fn exhaust(&self, registry: &str) -> Error {
        let allowance = self
            .limit
            .lock()
            .unwrap()
            .as_deref()
            .map(describe_allowance);
        let message = crate::hints::quota_exhausted(registry, allowance.as_deref());
        self.remaining.store(0, Ordering::Relaxed);
        *self.exhausted.lock().unwrap() = Some(message.clone());
        Error {
            status: Some(429),
            ..Error::new(ErrorKind::RateLimited, message)
        }
    }
}

/// `97;w=21600` → 97.
fn quota_number(value: &str) -> Option<i64> {
    value.split([';', ',']).next()?.trim().parse().ok()
}

/// `100;w=21600` → "100 pulls per 6 h".
fn describe_allowance(limit: &str) -> String {
    let mut parts = limit.split(';');
    let count = parts.next().unwrap_or(limit).trim();
    let window = parts
        .find_map(|p| p.trim().strip_prefix("w="))
        .and_then(|w| w.trim().parse::<u64>().ok());
    match window {
        Some(seconds) if seconds % 3600 == 0 => format!("{count} pulls per {} h", seconds / 3600),
        Some(seconds) => format!("{count} pulls per {seconds} s"),
        None => format!("{count} pulls"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_headers_are_read_as_docker_hub_writes_them() {
        assert_eq!(quota_number("97;w=21600"), Some(97));
        assert_eq!(quota_number(" 0 "), Some(0));
        assert_eq!(quota_number("many"), None);
        assert_eq!(describe_allowance("100;w=21600"), "100 pulls per 6 h");
        assert_eq!(describe_allowance("10;w=90"), "10 pulls per 90 s");
        assert_eq!(describe_allowance("10"), "10 pulls");
    }
}
