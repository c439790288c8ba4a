//! The only module that uses ureq: the one agent builder (User-Agent, timeouts, TLS, proxy)
//! for registries and the Kubernetes API, the pooled agents (verified TLS, `insecure`
//! registries, hosts with their own CAs or client certificate in certs.d), and the retry
//! loop with exponential backoff, jitter and `Retry-After`. Redirects are not followed
//! here: the registry client follows them itself so that credentials never leave the
//! registry host. Every response is read within the bounds of [`bounds`]: a deadline per
//! request, a floor on speed (a timer on each connection's reads), and a size limit for
//! each body read into memory. A transport failure becomes an error with its hint; a TLS
//! server's refusal of the client certificate (or its absence) is told from a failure to
//! verify the server.

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
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    ConnectProxyConnector, Connector, RustlsConnector, TcpConnector,
};
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
/// them, as a timer on each connection: [`bounds::FloorClock`]), and enough idle
/// connections for the parallel jobs.
fn pooled_agent(tls: TlsConfig, max_idle_per_host: usize, time: &TimeBounds) -> Agent {
    let per_io = time.request_timeout.min(Duration::from_secs(120));
    let config = agent_config(tls)
        .max_redirects(0)
        .timeout_recv_response(Some(time.request_timeout))
        .timeout_per_read(Some(per_io))
        .timeout_per_write(Some(per_io))
        .max_idle_connections(max_idle_per_host * 4)
        .max_idle_connections_per_host(max_idle_per_host)
        .build();
    Agent::with_parts(config, connector(), DefaultResolver::default())
}

/// The connector chain of the registry agents: ureq's default one for this build (CONNECT
/// proxies, TCP, rustls) with links of ours: SOCKS refused as an error ([`proxy::NoSocks`]),
/// a server's last words read after a reset under TLS ([`tls::LastWords`]), and the speed
/// floor's timer on every read ([`bounds::FloorClock`]).
fn connector() -> impl Connector {
    proxy::NoSocks
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(tls::LastWords)
        .chain(RustlsConnector::default())
        .chain(bounds::FloorClock)
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

/// An agent, and the file of the client certificate it presents.
#[derive(Clone)]
struct HostAgent {
    agent: Agent,
    client_cert: Option<PathBuf>,
}

/// What certs.d gave for one host: its own agent, none (the shared one), or why not.
type HostAgentEntry = std::result::Result<Option<HostAgent>, String>;

/// The pooled HTTP agents plus the retry policy.
pub struct Transport {
    verified: Agent,
    unverified: Agent,
    /// `--ca-file`'s CAs, layered on the system roots.
    extra_roots: Vec<Certificate<'static>>,
    certs_d: Option<PathBuf>,
    /// Agents for hosts with a certs.d directory, by `host[:port]` and `insecure`; `None` =
    /// the shared one.
    per_host: Mutex<HashMap<(String, bool), HostAgentEntry>>,
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

    /// The agent for a request to `url`: the shared one (verified, or not for an
    /// `insecure` registry), or the host's own when certs.d has a directory for it (read
    /// once per run): its CAs for a verified request, its client certificate either way,
    /// as Docker does. Also the file of the client certificate presented, if any.
    fn agent_for(&self, url: &str, insecure: bool) -> Result<HostAgent> {
        let shared = HostAgent {
            agent: if insecure {
                self.unverified.clone()
            } else {
                self.verified.clone()
            },
            client_cert: None,
        };
        let Some(root) = &self.certs_d else {
            return Ok(shared);
        };
        let authority = authority_of(url);
        let mut per_host = self.per_host.lock().unwrap();
        let entry = per_host
            .entry((authority.clone(), insecure))
            .or_insert_with(|| {
                let Some(trust) = tls::host_trust(root, &authority)? else {
                    return Ok(None);
                };
                let roots = if insecure {
                    if trust.identity.is_none() {
                        return Ok(None);
                    }
                    Roots::Unverified
                } else {
                    let mut roots = self.extra_roots.clone();
                    roots.extend(trust.cas);
                    Roots::System(roots)
                };
                Ok(Some(HostAgent {
                    agent: pooled_agent(
                        tls::tls_config(&roots, trust.identity.as_ref()),
                        self.max_idle_per_host,
                        &self.time,
                    ),
                    client_cert: trust.identity_file,
                }))
            });
        match entry {
            Ok(Some(agent)) => Ok(agent.clone()),
            Ok(None) => Ok(shared),
            Err(e) => Err(Error::protocol(format!(
                "{authority}: Docker's certs.d: {e}"
            ))),
        }
    }

    /// Where certs.d has (or would have) the directory of `url`'s registry.
    fn certs_d_dir(&self, url: &str) -> PathBuf {
        let root = self
            .certs_d
            .clone()
            .unwrap_or_else(|| PathBuf::from(DOCKER_CERTS_D));
        root.join(authority_of(url))
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
        let HostAgent { agent, client_cert } = self.agent_for(url, exchange.insecure)?;
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
            .map_err(|e| {
                let certs_d_dir = self.certs_d_dir(url);
                classify_transport_error(&method, url, e, &certs_d_dir, client_cert.as_deref())
            })?;
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

/// A transport failure as an error with its hint. `certs_d_dir` is the registry's
/// directory in Docker's certs.d and `client_cert` the client certificate presented, for
/// when the server refused the connection over it.
fn classify_transport_error(
    method: &Method,
    url: &str,
    error: ureq::Error,
    certs_d_dir: &std::path::Path,
    client_cert: Option<&std::path::Path>,
) -> Error {
    let message = format!("{method} {}: {error}", redact_url(url));
    // The server refused our certificate, or its absence: trusting its CA is no help.
    let refusal = match (tls::client_cert_alert(&error), client_cert) {
        (Some(tls::ClientCertAlert::AboutCertificate(alert)), sent) => Some((alert, true, sent)),
        (Some(tls::ClientCertAlert::HandshakeFailure), sent) => {
            Some(("handshake_failure", false, sent))
        }
        (Some(tls::ClientCertAlert::DecryptError), Some(sent)) => {
            Some(("decrypt_error", false, Some(sent)))
        }
        _ => None,
    };
    if let Some((alert, certain, sent)) = refusal {
        let dir = certs_d_dir.display().to_string();
        let hint = match sent {
            None => crate::hints::client_certificate_missing(&dir, alert, certain),
            Some(sent) => crate::hints::client_certificate_refused(
                &dir,
                &sent.display().to_string(),
                alert,
                certain,
            ),
        };
        return Error::new(
            crate::error::ErrorKind::Network,
            format!("{message} ({hint})"),
        );
    }
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

/// `host[:port]` of `url`, lowercased: the name of its directory in certs.d.
fn authority_of(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
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

    /// A server on loopback that answers one GET with `Content-Length: 1000000`, sends
    /// `sent` bytes of it and then nothing, holding the connection open for a minute.
    fn falls_silent_after(sent: usize) -> String {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/blob", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut out = reader.into_inner();
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&vec![b'x'; sent]);
            let _ = out.flush();
            std::thread::sleep(Duration::from_secs(60));
        });
        url
    }

    /// Reads the body of a GET to `url` with a 30 s per-read timeout and a floor of
    /// 1 KiB/s over 0.5 s; the error and how long it took.
    fn read_silent_body(url: &str) -> (std::io::Error, u64, Duration) {
        let options = TransportOptions {
            retries: 0,
            ca_file: None,
            max_idle_per_host: 1,
            certs_d: None,
            time: TimeBounds {
                request_timeout: Duration::from_secs(30),
                min_speed: 1024,
                min_speed_window: Duration::from_millis(500),
            },
        };
        let transport = Transport::new(&options, Arc::new(AtomicBool::new(false))).unwrap();
        let response = transport
            .send(
                Method::GET,
                url,
                &[],
                Body::Empty,
                Exchange::streamed(true),
                &RequestStats::default(),
            )
            .unwrap();
        let started = std::time::Instant::now();
        let mut reader = response.into_reader();
        let mut got = 0u64;
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => panic!("the body ended after {got} bytes"),
                Ok(n) => got += n as u64,
                Err(e) => return (e, got, started.elapsed()),
            }
        }
    }

    #[test]
    fn a_body_that_falls_silent_is_cut_when_the_floor_is_missed() {
        // 100 bytes, short of the window's 512: cut at the window's end.
        let (error, got, took) = read_silent_body(&falls_silent_after(100));
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        let text = error.to_string();
        assert!(text.contains("slower than the floor of 1024 B/s"), "{text}");
        assert!(text.contains("100 byte(s)"), "{text}");
        assert_eq!(got, 100);
        assert!(
            took < Duration::from_secs(10),
            "{took:?}, not the 30 s per read"
        );

        // 8000 bytes, the window's floor met at once: cut a window after the last byte.
        let (error, got, took) = read_silent_body(&falls_silent_after(8000));
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        let text = error.to_string();
        assert!(text.contains("slower than the floor of 1024 B/s"), "{text}");
        assert!(text.contains(": 0 byte(s) in"), "{text}");
        assert_eq!(got, 8000);
        assert!(
            took < Duration::from_secs(10),
            "{took:?}, not the 30 s per read"
        );
    }

    #[test]
    fn a_socks_proxy_is_an_error_not_a_panic() {
        let (transport, _) = transport(0);
        transport
            .proxies()
            .set_for_host("127.0.0.1:9", "socks5://127.0.0.1:1")
            .unwrap();
        let error = transport
            .send(
                Method::GET,
                "http://127.0.0.1:9/v2/",
                &[],
                Body::Empty,
                Exchange::whole(true),
                &RequestStats::default(),
            )
            .err()
            .expect("no connection through a SOCKS proxy");
        assert!(
            error.message.contains("SOCKS proxies are not supported"),
            "{error}"
        );
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
