//! A fault-injecting HTTP/1.1 reverse proxy in front of a real registry, on real sockets
//! (`127.0.0.1:0`, a thread per connection). It streams bodies, keeps connections alive,
//! rewrites `Location` headers so that every follow-up request comes back through it, and
//! injects faults on a deterministic schedule: rules match a method and a path substring
//! and fire on chosen occurrences (1st, 3rd, …), always, or on a seeded pseudo-random
//! subset. Every request is recorded (method, path, time, headers, fault, status, and
//! the response body bytes sent, to measure what a transfer cost the source).
//!
//! [`FaultProxy::start_with_referrers_api`] makes it also answer the OCI 1.1 referrers API
//! (`GET /v2/<name>/referrers/<digest>`), which the test registry (distribution 2.8) lacks:
//! it remembers each manifest with a `subject` pushed through it, and answers its `PUT`
//! with `OCI-Subject` as a registry with the API does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What to do to a matching request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Read the request, then reset the connection without answering.
    ResetBeforeResponse,
    /// Forward; send the response head and half of the body, then reset.
    ResetMidBody,
    /// Answer with this status (the registry is not asked).
    Status(u16),
    /// Answer with this status and a registry error body with this code (the registry is
    /// not asked).
    RegistryError { status: u16, code: &'static str },
    /// Answer `429 Too Many Requests` with `Retry-After: <secs>` (and Docker Hub's
    /// `RateLimit-Remaining: 0;w=21600`).
    RateLimit { retry_after_secs: u64 },
    /// Forward; send the full `Content-Length` but a few bytes less body, then close.
    ShortBody,
    /// Forward; send the response head and this percentage of the body, then close the
    /// connection (a link that breaks mid-transfer).
    CutAtPercent(u64),
    /// Forward without the request's `Range` header: the registry answers the whole
    /// body with 200, as a server or redirect target that ignores ranges does.
    DropRange,
    /// Forward; flip one byte (the middle one) of the body.
    FlipByte,
    /// Answer `307` with `Location: <base><path>` (e.g. another server); a query in
    /// `base` (`http://h:p?sig=…`) is put after the path, as in a signed URL.
    Redirect(String),
    /// Hold the request this long, then forward it unchanged (a slow hop).
    Delay(Duration),
    /// Answer a tag list request with at most `page` tags, after the request's `last`,
    /// and a `Link: <…>; rel="next"` header while more remain — the pagination of the
    /// distribution spec, which the test registry (distribution 2.8) does not implement.
    PaginateTags { page: usize },
}

/// When a rule fires, counted over the requests the rule matches.
#[derive(Clone, Debug)]
pub enum When {
    /// These occurrences, 1-based.
    Nth(Vec<usize>),
    Always,
    /// Occurrence k fires when splitmix64(seed + k) % one_in == 0, at most `max` times.
    Seeded {
        seed: u64,
        one_in: u64,
        max: usize,
    },
}

/// A fault for requests whose method is `method` (any when `None`) and whose path
/// (with query) contains `path_contains`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: Option<String>,
    pub path_contains: String,
    pub when: When,
    pub fault: Fault,
    /// Only requests whose `Content-Length` is at least this match (0 = any).
    pub min_body: u64,
    /// Only requests carrying this header match (any when `None`).
    pub with_header: Option<String>,
    matched: usize,
    fired: usize,
}

impl Rule {
    pub fn new(method: Option<&str>, path_contains: &str, when: When, fault: Fault) -> Rule {
        Rule {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            when,
            fault,
            min_body: 0,
            with_header: None,
            matched: 0,
            fired: 0,
        }
    }

    /// Matches only requests carrying a body of at least `bytes` (by `Content-Length`).
    pub fn with_min_body(mut self, bytes: u64) -> Rule {
        self.min_body = bytes;
        self
    }

    /// Matches only requests that carry header `name` (e.g. `range`).
    pub fn with_header(mut self, name: &str) -> Rule {
        self.with_header = Some(name.to_string());
        self
    }

    /// Counts a matching request; whether the fault fires for it.
    fn fires(&mut self, head: &Head, content_length: u64) -> bool {
        let (method, path) = (head.method.as_str(), head.path.as_str());
        if self.method.as_deref().is_some_and(|m| m != method)
            || !path.contains(&self.path_contains)
            || content_length < self.min_body
            || (self.with_header.as_ref()).is_some_and(|h| header(&head.headers, h).is_none())
        {
            return false;
        }
        self.matched += 1;
        let fire = match &self.when {
            When::Nth(list) => list.contains(&self.matched),
            When::Always => true,
            When::Seeded { seed, one_in, max } => {
                self.fired < *max
                    && splitmix64(seed.wrapping_add(self.matched as u64)) % one_in == 0
            }
        };
        if fire {
            self.fired += 1;
        }
        fire
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// When the request head had been read.
    pub at: Instant,
    pub headers: Vec<(String, String)>,
    pub fault: Option<Fault>,
    /// The status sent to the client (None when the connection was reset first).
    pub status: Option<u16>,
    /// Bytes of response body sent to the client.
    pub body_sent: u64,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    upstream: String,
    host: String,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
    delay: Mutex<Duration>,
    /// Requests between their head being read and their response head being sent.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Client connections accepted so far.
    connections: AtomicUsize,
    /// Docker Hub's pull quota, when set: (pulls per window, manifest GETs counted so far).
    quota: Mutex<Option<(u64, u64)>>,
    /// With the referrers API: the descriptors of the manifests pushed with a `subject`,
    /// by (repository, subject digest).
    referrers: Option<Mutex<ReferrerMap>>,
    /// Answers requests before the registry sees them ([`FaultProxy::intercept`]).
    intercept: Mutex<Option<Arc<Intercept>>>,
}

type ReferrerMap = std::collections::HashMap<(String, String), Vec<serde_json::Value>>;

/// A request offered to an [`Intercept`]: its head, and its body unless it goes to the
/// registry API (`/v2/…`, whose bodies are streamed through and never held).
pub struct Intercepted<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Intercepted<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.headers, name)
    }
}

/// An answer an [`Intercept`] gives instead of the registry's: status, headers, body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Answers some requests itself (an API beside the registry's, a refusal); `None` passes
/// the request on to the registry.
pub type Intercept = dyn Fn(&Intercepted<'_>) -> Option<Answer> + Send + Sync;

/// Counts a request as in flight until dropped.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The proxy; it runs until the test process ends (threads are detached).
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy — use it as the registry in image references.
    pub host: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str) -> FaultProxy {
        Self::start_as(upstream, false)
    }

    /// A proxy that answers the OCI 1.1 referrers API in front of `upstream`; push the
    /// referrers through it (its [`FaultProxy::host`]) so that it knows them.
    pub fn start_with_referrers_api(upstream: &str) -> FaultProxy {
        Self::start_as(upstream, true)
    }

    fn start_as(upstream: &str, referrers_api: bool) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let host = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            host: host.clone(),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::ZERO),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            quota: Mutex::new(None),
            referrers: referrers_api.then(Default::default),
            intercept: Mutex::new(None),
        });
        let accept_shared = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                accept_shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = accept_shared.clone();
                thread::spawn(move || {
                    let _ = handle(stream, &shared);
                });
            }
        });
        FaultProxy { host, shared }
    }

    /// Adds a rule; the first rule that fires for a request decides its fault.
    pub fn add(&self, rule: Rule) -> &Self {
        self.shared.rules.lock().unwrap().push(rule);
        self
    }

    /// Shorthand for [`FaultProxy::add`].
    pub fn inject(&self, method: Option<&str>, path: &str, when: When, fault: Fault) -> &Self {
        self.add(Rule::new(method, path, when, fault))
    }

    /// Lets `intercept` answer requests before the registry sees them (after the faults:
    /// a request that meets a fault is not offered to it).
    pub fn intercept(&self, intercept: Arc<Intercept>) {
        *self.shared.intercept.lock().unwrap() = Some(intercept);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Plays Docker Hub's pull quota from now on (a new window): manifest `GET`s count,
    /// `HEAD`s are free, every manifest answer carries `RateLimit-Limit: <pulls>;w=21600`
    /// and `RateLimit-Remaining`, and the `GET` after the last pull is answered 429
    /// `TOOMANYREQUESTS` without `Retry-After`, as Docker Hub does.
    pub fn set_pull_quota(&self, pulls: u64) {
        *self.shared.quota.lock().unwrap() = Some((pulls, 0));
    }

    /// Manifest `GET`s the proxy received (answered or refused).
    pub fn manifest_gets(&self) -> usize {
        self.log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
            .count()
    }

    /// Manifest `GET`s answered 429.
    pub fn refused_pulls(&self) -> usize {
        self.log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
            .filter(|r| r.status == Some(429))
            .count()
    }

    /// Waits this long before handling each request (a slow registry).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// The most requests that were ever waiting at once for their answer (from the
    /// request head until the response head; a streamed body does not count).
    /// Client connections accepted so far (kept-alive connections count once).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The requests that met a fault.
    pub fn faulted(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|r| r.fault.is_some())
            .collect()
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    header(headers, "content-length").and_then(|v| v.parse().ok())
}

/// Reads lines up to the empty line; `None` at a clean end of stream.
fn read_head_lines(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(line);
        if lines.len() > 200 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

fn parse_headers(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Both);
}

fn copy_exact(from: &mut impl Read, to: &mut impl Write, mut n: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while n > 0 {
        let want = buf.len().min(n as usize);
        let got = from.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&buf[..got])?;
        n -= got as u64;
    }
    Ok(())
}

struct Upstream {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Upstream {
    fn connect(addr: &str) -> std::io::Result<Upstream> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Upstream {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }
}

fn handle(client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client.try_clone()?;
    let mut upstream: Option<Upstream> = None;
    loop {
        // A TLS ClientHello (an `insecure` client probing for HTTPS): not HTTP, hang up.
        if reader.fill_buf()?.first() == Some(&0x16) {
            reset(&client);
            return Ok(());
        }
        let Some(lines) = read_head_lines(&mut reader)? else {
            return Ok(());
        };
        let mut parts = lines[0].split_whitespace();
        let head = Head {
            method: parts.next().unwrap_or_default().to_string(),
            path: parts.next().unwrap_or_default().to_string(),
            headers: parse_headers(&lines[1..]),
        };
        let body_length = content_length(&head.headers).unwrap_or(0);
        let in_flight = InFlight::enter(shared);
        let delay = *shared.delay.lock().unwrap();
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        let fault = shared
            .rules
            .lock()
            .unwrap()
            .iter_mut()
            .find_map(|r| r.fires(&head, body_length).then(|| r.fault.clone()));
        let index = {
            let mut log = shared.log.lock().unwrap();
            log.push(Logged {
                method: head.method.clone(),
                path: head.path.clone(),
                at: Instant::now(),
                headers: head.headers.clone(),
                fault: fault.clone(),
                status: None,
                body_sent: 0,
            });
            log.len() - 1
        };
        let set_status = |status: u16| {
            if std::env::var_os("FAULT_PROXY_TRACE").is_some() {
                eprintln!(
                    "[proxy {}] {} {} -> {status}",
                    shared.host, head.method, head.path
                );
            }
            shared.log.lock().unwrap()[index].status = Some(status)
        };
        let request_body = content_length(&head.headers).unwrap_or(0);
        let request_chunked = header(&head.headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        // Reads (and forwards, or drops) the request body, whichever framing it has.
        let relay_request = |from: &mut BufReader<TcpStream>, to: &mut dyn Write| {
            if request_chunked {
                relay_chunked(from, &mut &mut *to)
            } else {
                copy_exact(from, &mut &mut *to, request_body)
            }
        };

        // Docker Hub's pull quota: the headers every manifest answer carries, or the 429.
        let mut quota_headers = Vec::new();
        if head.path.contains("/manifests/")
            && let Some((pulls, used)) = shared.quota.lock().unwrap().as_mut()
        {
            let counted = head.method == "GET";
            if counted {
                *used += 1;
            }
            let limit = format!("{pulls};w=21600");
            if counted && *used > *pulls {
                relay_request(&mut reader, &mut std::io::sink())?;
                let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit"}]}"#;
                let out = format!(
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
                     RateLimit-Limit: {limit}\r\nRateLimit-Remaining: 0;w=21600\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                writer.write_all(out.as_bytes())?;
                set_status(429);
                continue;
            }
            quota_headers.push(("RateLimit-Limit".to_string(), limit));
            quota_headers.push((
                "RateLimit-Remaining".to_string(),
                format!("{};w=21600", pulls.saturating_sub(*used)),
            ));
        }

        let intercept = shared.intercept.lock().unwrap().clone();
        if let Some(intercept) = intercept.filter(|_| fault.is_none()) {
            let api = !head.path.starts_with("/v2/");
            let mut body = Vec::new();
            if api {
                relay_request(&mut reader, &mut body)?;
            }
            let request = Intercepted {
                method: &head.method,
                path: &head.path,
                headers: &head.headers,
                body: &body,
            };
            match intercept(&request) {
                Some((status, headers, answer)) => {
                    if !api {
                        relay_request(&mut reader, &mut std::io::sink())?;
                    }
                    let mut out = format!(
                        "HTTP/1.1 {status} Intercepted\r\nContent-Length: {}\r\n",
                        answer.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    writer.write_all(out.as_bytes())?;
                    if head.method != "HEAD" {
                        writer.write_all(&answer)?;
                    }
                    set_status(status);
                    continue;
                }
                None if api => {
                    // An API path nobody answers: as a registry would.
                    writer.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
                    set_status(404);
                    continue;
                }
                None => {}
            }
        }
        if let Some(Fault::PaginateTags { page }) = &fault {
            relay_request(&mut reader, &mut std::io::sink())?;
            let (headers, body) = tag_page(&shared.upstream, &head.path, *page);
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            writer.write_all(out.as_bytes())?;
            set_status(200);
            continue;
        }
        if let Some(referrers) = &shared.referrers
            && head.method == "GET"
            && fault.is_none()
            && let Some((repo, subject)) = referrers_path(&head.path)
        {
            relay_request(&mut reader, &mut std::io::sink())?;
            let manifests = referrers
                .lock()
                .unwrap()
                .get(&(repo, subject))
                .cloned()
                .unwrap_or_default();
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            })
            .to_string();
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            writer.write_all(out.as_bytes())?;
            set_status(200);
            continue;
        }
        let synthetic = match &fault {
            Some(Fault::Delay(hold)) => {
                thread::sleep(*hold);
                None
            }
            Some(Fault::ResetBeforeResponse) => {
                relay_request(&mut reader, &mut std::io::sink())?;
                reset(&client);
                return Ok(());
            }
            Some(Fault::Status(status)) => Some((*status, Vec::new(), "INJECTED")),
            Some(Fault::RegistryError { status, code }) => Some((*status, Vec::new(), *code)),
            Some(Fault::RateLimit { retry_after_secs }) => Some((
                429,
                vec![
                    ("Retry-After".to_string(), retry_after_secs.to_string()),
                    // As Docker Hub does: the pull quota left in the window.
                    ("RateLimit-Remaining".to_string(), "0;w=21600".to_string()),
                ],
                "INJECTED",
            )),
            Some(Fault::Redirect(base)) => {
                // `base` may carry a query (a signed URL): it goes after the path.
                let path = head.path.split('?').next().unwrap_or_default();
                let location = match base.split_once('?') {
                    Some((origin, query)) => format!("{origin}{path}?{query}"),
                    None => format!("{base}{path}"),
                };
                Some((307, vec![("Location".to_string(), location)], "INJECTED"))
            }
            _ => None,
        };
        if let Some((status, extra, code)) = synthetic {
            relay_request(&mut reader, &mut std::io::sink())?;
            let body = format!(
                r#"{{"errors":[{{"code":"{code}","message":"fault proxy: HTTP {status}"}}]}}"#
            );
            let mut out = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            if head.method != "HEAD" {
                out.push_str(&body);
            }
            writer.write_all(out.as_bytes())?;
            set_status(status);
            continue;
        }

        // Forward the request, with Host naming the registry itself.
        let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.path);
        for (k, v) in &head.headers {
            if k.eq_ignore_ascii_case("range") && fault == Some(Fault::DropRange) {
                continue;
            }
            if k.eq_ignore_ascii_case("host") {
                out.push_str(&format!("Host: {}\r\n", shared.upstream));
            } else {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("\r\n");
        let mut sent = false;
        for _ in 0..2 {
            if upstream.is_none() {
                upstream = Some(Upstream::connect(&shared.upstream)?);
            }
            let up = upstream.as_mut().unwrap();
            if up.writer.write_all(out.as_bytes()).is_ok() {
                sent = true;
                break;
            }
            upstream = None;
        }
        if !sent {
            reset(&client);
            return Ok(());
        }
        let up = upstream.as_mut().unwrap();
        // A manifest pushed to a proxy with the referrers API: its body is kept, to be
        // listed under its subject once the registry has taken it.
        let pushed_manifest =
            shared.referrers.is_some() && head.method == "PUT" && head.path.contains("/manifests/");
        let mut manifest_body = Vec::new();
        if pushed_manifest {
            relay_request(&mut reader, &mut manifest_body)?;
            up.writer.write_all(&manifest_body)?;
        } else {
            relay_request(&mut reader, &mut up.writer)?;
        }

        // The response.
        let Some(response_lines) = read_head_lines(&mut up.reader)? else {
            reset(&client);
            return Ok(());
        };
        let status: u16 = response_lines[0]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(502);
        let headers = parse_headers(&response_lines[1..]);
        let mut out = format!("{}\r\n", response_lines[0]);
        for (k, v) in &headers {
            let v = if k.eq_ignore_ascii_case("location") {
                v.replace(
                    &format!("//{}/", shared.upstream),
                    &format!("//{}/", shared.host),
                )
            } else {
                v.clone()
            };
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in &quota_headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if pushed_manifest
            && status == 201
            && let Some(referrers) = &shared.referrers
            && let Some((repo, subject, descriptor)) = referrer_of(&head.path, &manifest_body)
        {
            out.push_str(&format!("OCI-Subject: {subject}\r\n"));
            let mut referrers = referrers.lock().unwrap();
            let list = referrers.entry((repo, subject)).or_default();
            if !list.iter().any(|d| d["digest"] == descriptor["digest"]) {
                list.push(descriptor);
            }
        }
        out.push_str("\r\n");
        // Answered (counted just before the answer leaves, so that the interval lies
        // inside the client's wait for it): the body that follows is a stream.
        drop(in_flight);
        writer.write_all(out.as_bytes())?;
        set_status(status);

        let no_body = head.method == "HEAD" || status == 204 || status == 304 || status < 200;
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if no_body {
            // Nothing to relay.
        } else if chunked {
            relay_chunked(&mut up.reader, &mut writer)?;
        } else if let Some(len) = content_length(&headers) {
            let sent = |n: u64| shared.log.lock().unwrap()[index].body_sent = n;
            match fault {
                Some(Fault::CutAtPercent(percent)) => {
                    let part = len * percent.min(100) / 100;
                    copy_exact(&mut up.reader, &mut writer, part)?;
                    writer.flush()?;
                    sent(part);
                    let _ = client.shutdown(Shutdown::Both);
                    return Ok(());
                }
                Some(Fault::ResetMidBody) => {
                    copy_exact(&mut up.reader, &mut writer, len / 2)?;
                    writer.flush()?;
                    sent(len / 2);
                    thread::sleep(Duration::from_millis(20));
                    reset(&client);
                    return Ok(());
                }
                Some(Fault::ShortBody) => {
                    let short = len.saturating_sub(len.clamp(1, 7));
                    copy_exact(&mut up.reader, &mut writer, short)?;
                    writer.flush()?;
                    let _ = client.shutdown(Shutdown::Both);
                    return Ok(());
                }
                Some(Fault::FlipByte) if len > 0 => {
                    let middle = len / 2;
                    copy_exact(&mut up.reader, &mut writer, middle)?;
                    let mut byte = [0u8; 1];
                    up.reader.read_exact(&mut byte)?;
                    byte[0] ^= 0xff;
                    writer.write_all(&byte)?;
                    copy_exact(&mut up.reader, &mut writer, len - middle - 1)?;
                }
                _ => copy_exact(&mut up.reader, &mut writer, len)?,
            }
            sent(len);
        } else {
            std::io::copy(&mut up.reader, &mut writer)?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        writer.flush()?;
        if close {
            upstream = None;
        }
    }
}

fn relay_chunked(from: &mut impl BufRead, to: &mut impl Write) -> std::io::Result<()> {
    loop {
        let mut line = String::new();
        if from.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(line.as_bytes())?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        if size == 0 {
            // Trailers up to the empty line.
            loop {
                let mut trailer = String::new();
                if from.read_line(&mut trailer)? == 0 {
                    return Ok(());
                }
                to.write_all(trailer.as_bytes())?;
                if trailer.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        copy_exact(from, to, size + 2)?;
    }
}

/// One page of `GET /v2/<repo>/tags/list[?n=&last=]`, cut from the upstream's full list.
fn tag_page(upstream: &str, path_and_query: &str, page: usize) -> (Vec<(String, String)>, String) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let repo = path
        .trim_start_matches("/v2/")
        .trim_end_matches("/tags/list")
        .to_string();
    let text = ureq::get(&format!("http://{upstream}{path}"))
        .call()
        .expect("upstream tag list")
        .body_mut()
        .read_to_string()
        .expect("tag list body");
    let full: serde_json::Value = serde_json::from_str(&text).expect("tag list JSON");
    let mut tags: Vec<String> = full["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    let last = param("last");
    let n = param("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(page)
        .min(page);
    let rest: Vec<String> = tags
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let this_page: Vec<String> = rest.iter().take(n).cloned().collect();
    let mut headers = Vec::new();
    if rest.len() > this_page.len()
        && let Some(last) = this_page.last()
    {
        headers.push((
            "Link".to_string(),
            format!("<{path}?n={n}&last={last}>; rel=\"next\""),
        ));
    }
    let body = serde_json::json!({ "name": repo, "tags": this_page }).to_string();
    (headers, body)
}

/// `(repository, subject)` of `/v2/<repository>/referrers/<digest>[?…]`.
fn referrers_path(path: &str) -> Option<(String, String)> {
    let path = path.split('?').next()?;
    let (repo, subject) = path.strip_prefix("/v2/")?.rsplit_once("/referrers/")?;
    Some((repo.to_string(), subject.to_string()))
}

/// `(repository, subject, descriptor)` of a pushed manifest that has a `subject`, the
/// descriptor as the referrers API lists it (`artifactType` falling back to the config's
/// media type, as the distribution spec says).
fn referrer_of(path: &str, body: &[u8]) -> Option<(String, String, serde_json::Value)> {
    let repo = path.strip_prefix("/v2/")?.rsplit_once("/manifests/")?.0;
    let manifest: serde_json::Value = serde_json::from_slice(body).ok()?;
    let subject = manifest["subject"]["digest"].as_str()?.to_string();
    let artifact_type = manifest["artifactType"]
        .as_str()
        .or(manifest["config"]["mediaType"].as_str())
        .unwrap_or_default();
    let mut descriptor = serde_json::json!({
        "mediaType": manifest["mediaType"],
        "digest": super::seed::sha256_digest(body),
        "size": body.len(),
        "artifactType": artifact_type,
    });
    if manifest.get("annotations").is_some() {
        descriptor["annotations"] = manifest["annotations"].clone();
    }
    Some((repo.to_string(), subject, descriptor))
}
