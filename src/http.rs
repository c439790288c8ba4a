//! The only module that uses ureq: the one agent builder (User-Agent, timeouts, TLS, proxy)
//! for registries and the Kubernetes API, the pooled agents (verified TLS, `insecure`
//! registries, hosts with their own CAs or client certificate in certs.d), and the retry
//! loop with exponential backoff, jitter and `Retry-After`. Redirects are not followed
//! here: the registry client follows them itself so that credentials never leave the
//! registry host. Every response is read within the bounds of [`bounds`]: a deadline per
//! request, a floor on speed, and a size limit for each body read into memory.

pub mod bounds;
mod proxy;
mod tls;

pub use bounds::TimeBounds;

pub use proxy::ProxyPolicy;
pub use tls::{
    ClientIdentity, DOCKER_CERTS_D, Roots, is_tls_failure, pem_certificates, tls_config,
};

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ureq::config::ConfigBuilder;
use ureq::http::{self, HeaderMap, Method};
use ureq::tls::{Certificate, TlsConfig};
use ureq::typestate::AgentScope;
use ureq::{Agent, Proxy};

use crate::error::{Error, Result};

/// `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("image-migrator/", env!("CARGO_PKG_VERSION"));

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How the transport is set up.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// Retries after the first attempt for transient failures.
    pub retries: u32,
    /// Extra PEM roots, added to the built-in ones.
    pub ca_file: Option<std::path::PathBuf>,
    /// Connections kept per host (≥ the number of parallel requests).
    pub max_idle_per_host: usize,
    /// Docker's per-registry trust directory (`/etc/docker/certs.d`).
    pub certs_d: Option<PathBuf>,
    /// Request deadline and speed floor.
    pub time: TimeBounds,
}

/// How one request is sent: with or without certificate verification, and whether the
/// request deadline covers the whole exchange or only until the answer's headers (blob
/// transfers, whose length is unbounded; the speed floor bounds their bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    pub insecure: bool,
    pub streamed: bool,
}

impl Exchange {
    /// A request whose answer is read whole (manifests, tokens, tag lists, pings).
    pub fn whole(insecure: bool) -> Self {
        Exchange {
            insecure,
            streamed: false,
        }
    }

    /// A blob transfer.
    pub fn streamed(insecure: bool) -> Self {
        Exchange {
            insecure,
            streamed: true,
        }
    }
}

/// Counters shared by everything done for one job.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub requests: AtomicU64,
    pub retries: AtomicU32,
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
    pub headers: HeaderMap,
    pub body: ureq::Body,
    time: TimeBounds,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
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

    /// A short description of an error response: status plus the registry's error codes.
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
        let detail = registry_error_text(&body);
        let mut message = match detail {
            Some(detail) => format!("{what}: HTTP {status}: {detail}"),
            None => format!("{what}: HTTP {status}"),
        };
        if status == 429 {
            message.push_str(&crate::hints::rate_limited(quota.as_deref()));
        }
        Error::from_status(status, message).with_retry_after(retry_after)
    }
}

/// `Retry-After` (seconds, or an HTTP date seen from `now`), capped at
/// [`MAX_RETRY_AFTER`]; a date in the past means at once, garbage means not given.
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

/// The distribution spec's `{"errors":[{"code","message"}]}` body, summarised (the first
/// five errors, 300 characters each, control characters escaped).
fn registry_error_text(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let errors: Errors = serde_json::from_slice(body).ok()?;
    // The server's words go into logs and reports: escaped, and not too many of them.
    let text: Vec<String> = errors
        .errors
        .iter()
        .take(5)
        .map(|e| bounds::printable(format!("{} {}", e.code, e.message).trim(), 300))
        .collect();
    (!text.is_empty()).then(|| text.join("; "))
}

/// Buffers of each pooled connection, per layer (TCP, and TLS above it). ureq's 128 KiB
/// each way cost 0.5 MiB per TLS connection and 9 MiB over a run's pool, for no speed:
/// reads are 64 KiB at most anyway (and TLS records 16 KiB); the input buffer still holds
/// the largest response header ureq accepts (64 KiB).
const INPUT_BUFFER_BYTES: usize = 64 * 1024;
const OUTPUT_BUFFER_BYTES: usize = 32 * 1024;

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

/// The settings every agent shares, registries and the Kubernetes API alike: the
/// User-Agent, statuses as answers, no compression, a connect timeout, connection buffers,
/// and `tls`. The proxy is chosen per request (see [`ProxyPolicy`]), so none is set here.
pub fn agent_config(tls: TlsConfig) -> ConfigBuilder<AgentScope> {
    Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(USER_AGENT)
        .accept_encoding("identity")
        .timeout_connect(Some(Duration::from_secs(30)))
        .input_buffer_size(INPUT_BUFFER_BYTES)
        .output_buffer_size(OUTPUT_BUFFER_BYTES)
        .proxy(None)
        .tls_config(tls)
}

/// A pooled agent for registries: the shared settings, no redirects followed, an answer's
/// headers within the request deadline, long transfers allowed (the speed floor bounds
/// them), and enough idle connections for the parallel jobs.
fn pooled_agent(tls: TlsConfig, max_idle_per_host: usize, time: &TimeBounds) -> Agent {
    let per_io = time.request_timeout.min(Duration::from_secs(120));
    agent_config(tls)
        .max_redirects(0)
        .timeout_recv_response(Some(time.request_timeout))
        .timeout_per_read(Some(per_io))
        .timeout_per_write(Some(per_io))
        .max_idle_connections(max_idle_per_host * 4)
        .max_idle_connections_per_host(max_idle_per_host)
        .build()
        .new_agent()
}

/// Sends `request` through `proxy` (or directly), within `deadline` for the whole exchange
/// when one is given.
fn run_via(
    agent: &Agent,
    proxy: Option<Proxy>,
    deadline: Option<Duration>,
    request: http::Request<impl ureq::AsSendBody>,
) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
    let mut config = agent.configure_request(request).proxy(proxy);
    if deadline.is_some() {
        config = config.timeout_per_call(deadline);
    }
    agent.run(config.build())
}

/// The pooled HTTP agents plus the retry policy.
pub struct Transport {
    verified: Agent,
    unverified: Agent,
    /// `--ca-file`'s CAs, layered on the system roots.
    extra_roots: Vec<Certificate<'static>>,
    certs_d: Option<PathBuf>,
    /// Agents for hosts with a certs.d directory, by `host[:port]`; `None` = the shared one.
    per_host: Mutex<HashMap<String, std::result::Result<Option<Agent>, String>>>,
    proxies: ProxyPolicy,
    max_idle_per_host: usize,
    retries: u32,
    time: TimeBounds,
    cancelled: Arc<AtomicBool>,
}

impl Transport {
    pub fn new(options: &TransportOptions, cancelled: Arc<AtomicBool>) -> Result<Self> {
        let extra_roots = match &options.ca_file {
            Some(path) => tls::pem_file_certificates(path, "--ca-file (or SSL_CERT_FILE)")
                .map_err(Error::protocol)?,
            None => Vec::new(),
        };
        let proxies =
            ProxyPolicy::from_env(&|name| std::env::var(name).ok()).map_err(Error::protocol)?;
        let max_idle_per_host = options.max_idle_per_host.max(8);
        Ok(Transport {
            verified: pooled_agent(
                tls::tls_config(&Roots::System(extra_roots.clone()), None),
                max_idle_per_host,
                &options.time,
            ),
            unverified: pooled_agent(
                tls::tls_config(&Roots::Unverified, None),
                max_idle_per_host,
                &options.time,
            ),
            extra_roots,
            certs_d: options.certs_d.clone(),
            per_host: Mutex::new(HashMap::new()),
            proxies,
            max_idle_per_host,
            retries: options.retries,
            time: options.time,
            cancelled,
        })
    }

    /// Where requests go through a proxy, and per-host exceptions to it.
    pub fn proxies(&self) -> &ProxyPolicy {
        &self.proxies
    }

    /// The agent for a verified request to `url`: the shared one, or the host's own when
    /// certs.d has a directory for it (read once per run).
    fn verified_agent(&self, url: &str) -> Result<Agent> {
        let Some(root) = &self.certs_d else {
            return Ok(self.verified.clone());
        };
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mut per_host = self.per_host.lock().unwrap();
        let entry = per_host.entry(authority.clone()).or_insert_with(|| {
            let trust = tls::host_trust(root, &authority)?;
            Ok(trust.map(|trust| {
                let mut roots = self.extra_roots.clone();
                roots.extend(trust.cas);
                pooled_agent(
                    tls::tls_config(&Roots::System(roots), trust.identity.as_ref()),
                    self.max_idle_per_host,
                    &self.time,
                )
            }))
        });
        match entry {
            Ok(Some(agent)) => Ok(agent.clone()),
            Ok(None) => Ok(self.verified.clone()),
            Err(e) => Err(Error::protocol(format!(
                "{authority}: Docker's certs.d: {e}"
            ))),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// One attempt. Any HTTP status is a successful `Response`; only transport failures
    /// are errors. `exchange.insecure` skips certificate verification for this request; a
    /// streamed body (either way) is not under the whole-exchange deadline.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        exchange: Exchange,
        stats: &RequestStats,
    ) -> Result<Response> {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let agent = if exchange.insecure {
            self.unverified.clone()
        } else {
            self.verified_agent(url)?
        };
        let proxy = self.proxies.for_url(url);
        let streamed = exchange.streamed || matches!(body, Body::Stream(..));
        let deadline = (!streamed).then_some(self.time.request_timeout);
        let run = |request| run_via(&agent, proxy.clone(), deadline, request);
        let run_stream = |request| run_via(&agent, proxy.clone(), deadline, request);
        let run_empty = |request| run_via(&agent, proxy.clone(), deadline, request);
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let result = match body {
            // POST/PUT/PATCH without content still say `Content-Length: 0`: without it ureq
            // sends an empty chunked body, which some registries and proxies refuse.
            Body::Empty if matches!(method, Method::POST | Method::PUT | Method::PATCH) => {
                builder.header("content-length", 0).body(&[][..]).map(run)
            }
            Body::Empty => builder.body(()).map(run_empty),
            Body::Bytes(bytes) => builder
                .header("content-length", bytes.len())
                .body(bytes)
                .map(run),
            Body::Stream(reader, len) => builder
                .header("content-length", len)
                .body(ureq::SendBody::from_reader(reader))
                .map(run_stream),
        };
        let response = result
            .map_err(|e| Error::protocol(format!("{method} {}: {e}", redact_url(url))))?
            .map_err(|e| classify_transport_error(&method, url, e))?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            time: self.time,
        })
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the retries are spent.
    /// Backoff doubles from 0.1 s up to 30 s with jitter; `Retry-After` wins when given.
    pub fn retrying<T>(
        &self,
        stats: &RequestStats,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let mut backoff = BACKOFF_START;
        let mut tries = 0;
        loop {
            if self.is_cancelled() {
                return Err(Error::cancelled());
            }
            match attempt() {
                Err(e) if e.retryable && tries < self.retries => {
                    tries += 1;
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
                    let wait = e.retry_after.unwrap_or(jittered);
                    self.sleep_unless_cancelled(wait);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                other => return other,
            }
        }
    }

    /// Sleeps in small steps so a cancellation is noticed quickly.
    fn sleep_unless_cancelled(&self, wait: Duration) {
        let step = Duration::from_millis(50);
        let mut left = wait;
        while !left.is_zero() && !self.is_cancelled() {
            let now = left.min(step);
            std::thread::sleep(now);
            left -= now;
        }
    }
}

fn classify_transport_error(method: &Method, url: &str, error: ureq::Error) -> Error {
    let message = format!("{method} {}: {error}", redact_url(url));
    if is_tls_failure(&error) {
        // A certificate problem (or a plain-HTTP server) does not heal by retrying.
        return Error::new(
            crate::error::ErrorKind::Network,
            format!("{message} ({})", crate::hints::tls_failed()),
        );
    }
    match error {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => Error::protocol(message),
        ureq::Error::Timeout(_) => {
            Error::network(format!("{message} ({})", crate::hints::no_answer_in_time()))
        }
        _ => Error::network(message),
    }
}

/// The URL without its query string (upload URLs carry state tokens).
pub fn redact_url(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
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

    fn transport(retries: u32) -> (Transport, Arc<AtomicBool>) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let options = TransportOptions {
            retries,
            ca_file: None,
            max_idle_per_host: 1,
            certs_d: None,
            time: bounds::TimeBounds::default(),
        };
        (
            Transport::new(&options, cancelled.clone()).unwrap(),
            cancelled,
        )
    }

    /// An error that asks for no wait, so the loop runs at test speed.
    fn transient() -> Error {
        Error::from_status(503, "busy").with_retry_after(Some(Duration::ZERO))
    }

    #[test]
    fn the_retry_loop_tries_retries_plus_one_times_and_counts_them() {
        let (transport, _) = transport(3);
        let stats = RequestStats::default();
        let mut calls = 0;
        let result: Result<()> = transport.retrying(&stats, || {
            calls += 1;
            Err(transient())
        });
        assert_eq!(result.unwrap_err().status, Some(503));
        assert_eq!(calls, 4);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 3);

        // Success on the third try stops there.
        let stats = RequestStats::default();
        let mut calls = 0;
        let result = transport.retrying(&stats, || {
            calls += 1;
            if calls < 3 {
                Err(transient())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_permanent_failure_or_a_cancelled_run_is_not_retried() {
        let (transport, cancelled) = transport(5);
        let stats = RequestStats::default();
        let mut calls = 0;
        let result: Result<()> = transport.retrying(&stats, || {
            calls += 1;
            Err(Error::from_status(404, "gone"))
        });
        assert_eq!(result.unwrap_err().status, Some(404));
        assert_eq!(calls, 1);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 0);

        cancelled.store(true, Ordering::Relaxed);
        let mut calls = 0;
        let result: Result<()> = transport.retrying(&stats, || {
            calls += 1;
            Ok(())
        });
        assert_eq!(result.unwrap_err().kind, crate::error::ErrorKind::Cancelled);
        assert_eq!(calls, 0);
    }

    #[test]
    fn retry_after_is_the_wait_when_given() {
        let (transport, _) = transport(1);
        let stats = RequestStats::default();
        let started = std::time::Instant::now();
        let mut calls = 0;
        let _ = transport.retrying(&stats, || {
            calls += 1;
            if calls == 1 {
                Err(Error::from_status(429, "slow down")
                    .with_retry_after(Some(Duration::from_millis(300))))
            } else {
                Ok(())
            }
        });
        assert_eq!(calls, 2);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
