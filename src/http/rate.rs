//! `--limit-rate`: one bandwidth cap for the whole process, over the blob bytes read from
//! sources, whatever thread reads them. Each read books its bytes on one shared schedule
//! (the moment the bytes booked so far may have arrived at the rate, counted from the
//! cap's creation) and sleeps until its booking is due, so a copy of N bytes takes at
//! least N / rate, the threads share the rate between them, and a thread waiting for its
//! turn sleeps (no spinning). Time spent between reads (hashing, writing the upload) is
//! credited up to [`SLACK`], so the work around the reads does not slow the copy below the
//! rate; a longer pause is not, so no burst of more than that follows it.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest stretch behind the schedule that later reads may make up.
const SLACK: Duration = Duration::from_secs(1);

/// The shared schedule of one bandwidth cap.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: u64,
    /// When the bytes booked so far are due: never before the cap was made, nor more
    /// than [`SLACK`] before a booking.
    due: Mutex<Instant>,
}

impl Throttle {
    pub fn new(bytes_per_second: u64) -> Arc<Self> {
        Arc::new(Throttle {
            bytes_per_second: bytes_per_second.max(1),
            due: Mutex::new(Instant::now()),
        })
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Largest read worth booking at once: a tenth of a second of the rate (at least
    /// 1 KiB), so that waits stay short and threads take turns.
    fn largest_read(&self) -> usize {
        (self.bytes_per_second / 10).clamp(1024, 1 << 20) as usize
    }

    /// Books `bytes` that were just read; returns when they are due.
    fn book(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let due = {
            let mut due = self.due.lock().unwrap();
            let behind = Instant::now().checked_sub(SLACK);
            *due = behind.map_or(*due, |behind| (*due).max(behind)) + cost;
            *due
        };
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// `inner`, read at no more than the rate (together with every other reader of it).
    pub fn reader<R: Read>(self: &Arc<Self>, inner: R) -> Throttled<R> {
        Throttled {
            inner,
            throttle: self.clone(),
        }
    }
}

/// A reader under a [`Throttle`].
pub struct Throttled<R> {
    inner: R,
    throttle: Arc<Throttle>,
}

impl<R: Read> Read for Throttled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let most = buf.len().min(self.throttle.largest_read());
        let n = self.inner.read(&mut buf[..most])?;
        if n > 0 {
            self.throttle.book(n);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_on_several_threads_share_one_rate() {
        // 4 threads × 64 KiB at 512 KiB/s: at least half a second, all together.
        let throttle = Throttle::new(512 * 1024);
        let started = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let throttle = throttle.clone();
                std::thread::spawn(move || {
                    let data = vec![7u8; 64 * 1024];
                    let mut out = Vec::new();
                    throttle.reader(&data[..]).read_to_end(&mut out).unwrap();
                    assert_eq!(out, data);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}
