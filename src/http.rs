//! The only module that uses ureq (its callers see types of ours: [`Method`], [`Body`],
//! [`Response`], [`ApiClient`]): the one agent builder (User-Agent, timeouts, TLS, proxy)
//! for registries and the Kubernetes API, the pooled agents (verified TLS, `insecure`
//! registries, hosts with their own CAs or client certificate in certs.d), the retry
//! loop with exponential backoff, jitter and `Retry-After` (`retry`), the blob body that
//! continues after a break within that loop's budget (`resume`), and the process's
//! bandwidth cap (`rate`). Redirects are not followed
//! here: the registry client follows them itself so that credentials never leave the
//! registry host. Every response is read within the bounds of [`bounds`]: a deadline per
//! request, a floor on speed (a timer on each connection's reads), and a size limit for
//! each body read into memory. A transport failure becomes an error with its hint; a TLS
//! server's refusal of the client certificate (or its absence) is told from a failure to
//! verify the server.

mod agent;
mod api;
pub mod bounds;
mod message;
mod proxy;
mod rate;
mod resolver;
mod resume;
mod retry;
mod tls;
mod tls_connector;
mod tls_resumption;
mod tls_verifiers;

pub use api::{ApiClient, ApiError, ApiResponse, ApiTrust};
pub use bounds::TimeBounds;
pub use message::{Body, Method, Response, parse_retry_after};
pub use proxy::ProxyPolicy;
pub use rate::Throttle;
pub use resume::{BlobBody, ResumingReader};
pub use retry::RetryBudget;
pub use tls::DOCKER_CERTS_D;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};
use agent::{Agents, HostAgent, run_via};

/// `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("image-migrator/", env!("CARGO_PKG_VERSION"));

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
    /// `--limit-rate`: bytes per second read from sources, for the whole process.
    pub limit_rate: Option<u64>,
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

/// The pooled HTTP agents plus the retry policy.
pub struct Transport {
    agents: Agents,
    proxies: ProxyPolicy,
    retries: u32,
    time: TimeBounds,
    throttle: Option<Arc<Throttle>>,
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
            agents: Agents::new(
                extra_roots,
                options.certs_d.clone(),
                max_idle_per_host,
                options.time,
            ),
            proxies,
            retries: options.retries,
            time: options.time,
            throttle: options.limit_rate.map(Throttle::new),
            cancelled,
        })
    }

    /// Where requests go through a proxy, and per-host exceptions to it.
    pub fn proxies(&self) -> &ProxyPolicy {
        &self.proxies
    }

    /// The process's bandwidth cap over what is read from sources, if any.
    pub fn throttle(&self) -> Option<&Arc<Throttle>> {
        self.throttle.as_ref()
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
        let HostAgent { agent, client_cert } = self.agents.for_url(url, exchange.insecure)?;
        let proxy = self.proxies.for_url(url);
        let streamed = exchange.streamed || matches!(body, Body::Stream(..));
        let deadline = (!streamed).then_some(self.time.request_timeout);
        let run = |request| run_via(&agent, proxy.clone(), deadline, request);
        let run_stream = |request| run_via(&agent, proxy.clone(), deadline, request);
        let run_empty = |request| run_via(&agent, proxy.clone(), deadline, request);
        let mut builder = ureq::http::Request::builder()
            .method(method.to_ureq())
            .uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let result = match body {
            // POST/PUT/PATCH without content still say `Content-Length: 0`: without it ureq
            // sends an empty chunked body, which some registries and proxies refuse.
            Body::Empty if method.sends_content() => {
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
                let certs_d_dir = self.agents.certs_d_dir(url);
                classify_transport_error(method, url, e, &certs_d_dir, client_cert.as_deref())
            })?;
        Ok(Response::new(response, self.time))
    }
}

/// A transport failure as an error with its hint. `certs_d_dir` is the registry's
/// directory in Docker's certs.d and `client_cert` the client certificate presented, for
/// when the server refused the connection over it.
fn classify_transport_error(
    method: Method,
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
    if tls::is_tls_failure(&error) {
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
    use std::io::Read;
    use std::time::Duration;

    use super::*;

    fn transport(retries: u32) -> (Transport, Arc<AtomicBool>) {
        let cancelled = Arc::new(AtomicBool::new(false));
        let options = TransportOptions {
            retries,
            ca_file: None,
            max_idle_per_host: 1,
            certs_d: None,
            time: bounds::TimeBounds::default(),
            limit_rate: None,
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
            limit_rate: None,
        };
        let transport = Transport::new(&options, Arc::new(AtomicBool::new(false))).unwrap();
        let response = transport
            .send(
                Method::Get,
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
                Method::Get,
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
