//! Bounds against broken or hostile servers: how large a response the tool reads into
//! memory, how many redirects and tags it follows, and how long and how slowly a response
//! may take (the manifest's own bounds, size and fan-out, are in `manifest`). A server
//! that breaks one of them fails that image or rule with an error saying which bound; the
//! other rules go on. The speed floor is kept by a timer as well as after each read: every
//! registry connection's reads wait no longer than the floor allows ([`FloorClock`]).

use std::cell::Cell;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Largest token-service answer read.
pub const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
/// Largest tag-list page read.
pub const MAX_TAG_PAGE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest error body read (for the registry's error message; the rest is ignored).
pub const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Redirect hops followed for one request.
pub const MAX_REDIRECTS: usize = 10;
/// Tags listed for one repository; more is an error, never a silent truncation.
pub const MAX_TAGS_PER_REPOSITORY: usize = 100_000;

/// Default of `--request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of `--min-speed`, bytes per second.
pub const DEFAULT_MIN_SPEED: u64 = 1024;
/// Default of `--min-speed-window`.
pub const DEFAULT_MIN_SPEED_WINDOW: Duration = Duration::from_secs(60);

/// How long and how slowly a response may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// Deadline of one request: until its answer's headers for blob transfers, until the
    /// end of the body for everything else (manifests, tokens, tag lists).
    pub request_timeout: Duration,
    /// A body slower than this (bytes per second) over a whole window is aborted; 0 = never.
    pub min_speed: u64,
    pub min_speed_window: Duration,
}

impl Default for TimeBounds {
    fn default() -> Self {
        TimeBounds {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            min_speed: DEFAULT_MIN_SPEED,
            min_speed_window: DEFAULT_MIN_SPEED_WINDOW,
        }
    }
}

/// A reader that fails (as a timeout, which the retry loop treats as transient) once
/// fewer than `min_speed × window` bytes arrived during a whole window, or no byte at all
/// for a whole window. The floor is a timer, not only a check after each read: every read
/// is given until the moment the floor would be missed (see [`FloorClock`]), so a body
/// that goes silent is cut then, not after the transport's per-read timeout.
pub struct SpeedFloor<R> {
    inner: R,
    min_speed: u64,
    window: Duration,
    window_start: Instant,
    window_bytes: u64,
    /// When the last byte arrived (or the body started).
    last_byte: Instant,
}

impl<R> SpeedFloor<R> {
    pub fn new(inner: R, bounds: &TimeBounds) -> Self {
        let now = Instant::now();
        SpeedFloor {
            inner,
            min_speed: bounds.min_speed,
            window: bounds.min_speed_window,
            window_start: now,
            window_bytes: 0,
            last_byte: now,
        }
    }

    /// The moment the floor is missed if no byte arrives before it: the end of the current
    /// window while it is short of its bytes, else a whole window after the last byte.
    fn deadline(&self) -> Instant {
        if self.window_is_short() {
            self.window_start + self.window
        } else {
            self.last_byte + self.window
        }
    }

    /// Whether the current window still lacks bytes to meet the floor over its length.
    fn window_is_short(&self) -> bool {
        (self.window_bytes as f64) < self.min_speed as f64 * self.window.as_secs_f64()
    }

    /// The error for `bytes` in the time since `since`.
    fn too_slow(&self, bytes: u64, since: Instant) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the response is slower than the floor of {} B/s: {} byte(s) in {:.1}s \
                 (--min-speed, --min-speed-window)",
                self.min_speed,
                bytes,
                since.elapsed().as_secs_f64()
            ),
        )
    }
}

impl<R: Read> Read for SpeedFloor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.min_speed == 0 || self.window.is_zero() {
            return self.inner.read(buf);
        }
        let deadline = self.deadline();
        let result = {
            let _clock = ArmedDeadline::set(deadline);
            self.inner.read(buf)
        };
        let n = match result {
            Ok(n) => n,
            // The clock ran out: no byte arrived before the floor was missed.
            Err(_) if DEADLINE_HIT.take() => {
                return Err(if self.window_is_short() {
                    self.too_slow(self.window_bytes, self.window_start)
                } else {
                    self.too_slow(0, self.last_byte)
                });
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(0);
        }
        let now = Instant::now();
        self.last_byte = now;
        self.window_bytes += n as u64;
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= self.window {
            let floor = (self.min_speed as f64 * elapsed.as_secs_f64()) as u64;
            if self.window_bytes < floor {
                return Err(self.too_slow(self.window_bytes, self.window_start));
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

thread_local! {
    /// While a [`SpeedFloor`] reads on this thread: the moment its floor is missed.
    static BODY_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Set when a read was cut at [`BODY_DEADLINE`] (rather than by the transport's own
    /// timeouts or an error of the connection).
    static DEADLINE_HIT: Cell<bool> = const { Cell::new(false) };
}

/// [`BODY_DEADLINE`] for the duration of one read; the previous value comes back after.
struct ArmedDeadline(Option<Instant>);

impl ArmedDeadline {
    fn set(deadline: Instant) -> Self {
        DEADLINE_HIT.set(false);
        ArmedDeadline(BODY_DEADLINE.replace(Some(deadline)))
    }
}

impl Drop for ArmedDeadline {
    fn drop(&mut self) {
        BODY_DEADLINE.set(self.0);
    }
}

/// The last link of every registry agent's connector chain: each connection's reads wait
/// no longer than the [`SpeedFloor`] reading on the calling thread allows. The body's
/// reads happen on the thread that reads the body (also when it is the upload body of
/// another request), so the thread carries the deadline down to the socket; other reads
/// keep ureq's timeouts.
#[derive(Debug)]
pub struct FloorClock;

impl<In: Transport> Connector<In> for FloorClock {
    type Out = ClockedTransport<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(ClockedTransport))
    }
}

/// A connection whose reads obey [`BODY_DEADLINE`].
#[derive(Debug)]
pub struct ClockedTransport<T>(T);

impl<T: Transport> Transport for ClockedTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.0.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(deadline) = BODY_DEADLINE.get() else {
            return self.0.await_input(timeout);
        };
        let left = UreqDuration::from(deadline.saturating_duration_since(Instant::now()));
        if left >= timeout.after {
            return self.0.await_input(timeout);
        }
        let clamped = NextTimeout {
            after: left,
            ..timeout
        };
        // The per-read timeout may still be shorter; then that one is what ran out.
        let binding = clamped.for_read().after == left;
        let result = self.0.await_input(clamped);
        if binding && matches!(result, Err(ureq::Error::Timeout(_))) {
            DEADLINE_HIT.set(true);
        }
        result
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}

/// Reads `reader` to its end if that is at most `limit` bytes; `None` as soon as one byte
/// more arrives (nothing further is read).
pub fn read_at_most(reader: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// The error for a response over its size bound.
pub fn too_large(what: &str, limit: u64) -> String {
    format!(
        "{what} is larger than {}, the most this tool reads; the server is broken or is not \
         a registry",
        human_limit(limit)
    )
}

/// `4 MiB`, `64 KiB`, `100 B`.
fn human_limit(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// A name from the wire made safe for a log line: control characters and quotes
/// escaped, at most `max` characters kept.
pub fn escaped(name: &str, max: usize) -> String {
    let mut short: String = name.chars().take(max).collect();
    if name.chars().count() > max {
        short.push('…');
    }
    format!("{short:?}")
}

/// Text from the wire made safe for a log line without quoting it: control characters
/// escaped (`\u{1b}`), at most `max` characters kept.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `chunk` bytes per read, sleeping `pause` before each.
    struct Trickle {
        left: usize,
        chunk: usize,
        pause: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.pause);
            let n = self.chunk.min(self.left).min(buf.len());
            buf[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    fn bounds(min_speed: u64, window_ms: u64) -> TimeBounds {
        TimeBounds {
            request_timeout: Duration::from_secs(5),
            min_speed,
            min_speed_window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn a_trickle_under_the_floor_is_aborted_as_a_timeout() {
        let trickle = Trickle {
            left: 1000,
            chunk: 1,
            pause: Duration::from_millis(10),
        };
        let started = Instant::now();
        let error = std::io::copy(
            &mut SpeedFloor::new(trickle, &bounds(1000, 100)),
            &mut io::sink(),
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("1000 B/s"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_body_over_the_floor_passes() {
        let fast = Trickle {
            left: 50_000,
            chunk: 1000,
            pause: Duration::from_millis(5),
        };
        let copied = std::io::copy(
            &mut SpeedFloor::new(fast, &bounds(1000, 20)),
            &mut io::sink(),
        )
        .unwrap();
        assert_eq!(copied, 50_000);
        let slow_but_unbounded = Trickle {
            left: 10,
            chunk: 1,
            pause: Duration::from_millis(5),
        };
        let copied = std::io::copy(
            &mut SpeedFloor::new(slow_but_unbounded, &bounds(0, 1)),
            &mut io::sink(),
        )
        .unwrap();
        assert_eq!(copied, 10);
    }

    #[test]
    fn reads_stop_one_byte_past_the_limit() {
        assert_eq!(read_at_most(&b"abcd"[..], 4).unwrap().unwrap(), b"abcd");
        let mut endless = io::repeat(b'a');
        assert_eq!(read_at_most(&mut endless, 4 * 1024 * 1024).unwrap(), None);
        let error = too_large("manifest a:b", 4 * 1024 * 1024);
        assert!(
            error.starts_with("manifest a:b is larger than 4 MiB"),
            "{error}"
        );
        assert!(too_large("x", 64 * 1024).contains("64 KiB"));
        assert!(too_large("x", 100).contains("100 B"));
    }

    #[test]
    fn names_are_escaped_and_shortened() {
        assert_eq!(escaped("a\u{1b}[31mb\n", 80), r#""a\u{1b}[31mb\n""#);
        assert_eq!(escaped(&"x".repeat(100), 3), "\"xxx…\"");
        assert_eq!(
            printable("blob unknown\u{1b}[2J\r\n", 80),
            r"blob unknown\u{1b}[2J\r\n"
        );
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
