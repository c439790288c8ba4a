//! The human log on stderr: one line per image, a progress bar on a terminal, and a
//! periodic progress line when stderr is not a terminal (CI logs), so long runs show life.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--log FILE`: where the human log is also written.
static LOG_FILE: std::sync::OnceLock<Mutex<std::fs::File>> = std::sync::OnceLock::new();

/// Writes every later log line to `file` too (once per process).
pub fn tee_to(file: std::fs::File) {
    let _ = LOG_FILE.set(Mutex::new(file));
}

/// One line of the human log: stderr, and the `--log` file when there is one.
pub fn log(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
    to_file(text);
}

fn to_file(text: &str) {
    if let Some(file) = LOG_FILE.get()
        && let Ok(mut file) = file.lock()
    {
        let _ = writeln!(file, "{text}");
    }
}

/// How often a progress line is printed when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

struct Counters {
    done: AtomicUsize,
    bytes: AtomicU64,
    finished: AtomicBool,
    total: usize,
    started: Instant,
}

/// The thread printing progress lines, and how to wake it when the run ends.
type Ticker = (JoinHandle<()>, Arc<(Mutex<()>, Condvar)>);

/// Progress of a run over `total` images.
pub struct Progress {
    counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    ticker: Option<Ticker>,
}

impl Progress {
    pub fn start(total: usize) -> Progress {
        let counters = Arc::new(Counters {
            done: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            total,
            started: Instant::now(),
        });
        if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} images {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            return Progress {
                counters,
                bar: Some(bar),
                ticker: None,
            };
        }
        let wake = Arc::new((Mutex::new(()), Condvar::new()));
        let ticker = {
            let counters = counters.clone();
            let wake = wake.clone();
            std::thread::spawn(move || {
                let (lock, condvar) = &*wake;
                let mut guard = lock.lock().unwrap();
                loop {
                    // Checked under the lock before waiting: `finish` may have run before
                    // this thread got here, and its notification is then already gone.
                    if counters.finished.load(Ordering::Relaxed) {
                        return;
                    }
                    guard = condvar.wait_timeout(guard, LOG_INTERVAL).unwrap().0;
                    if counters.finished.load(Ordering::Relaxed) {
                        return;
                    }
                    log(&format!(
                        "progress: {}/{} images done, {} transferred, {}s elapsed",
                        counters.done.load(Ordering::Relaxed),
                        counters.total,
                        human_bytes(counters.bytes.load(Ordering::Relaxed)),
                        counters.started.elapsed().as_secs()
                    ));
                }
            })
        };
        Progress {
            counters,
            bar: None,
            ticker: Some((ticker, wake)),
        }
    }

    /// Prints one log line (above the bar on a terminal).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(text);
                to_file(text);
            }
            None => log(text),
        }
    }

    /// One image finished, having moved `bytes`.
    pub fn image_done(&self, bytes: u64) {
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        let total_bytes = self.counters.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(human_bytes(total_bytes));
        }
    }

    pub fn finish(self) {
        match &self.ticker {
            // Under the ticker's lock, so it cannot miss the flag between its check and
            // its wait.
            Some((_, wake)) => {
                let _guard = wake.0.lock().unwrap();
                self.counters.finished.store(true, Ordering::Relaxed);
            }
            None => self.counters.finished.store(true, Ordering::Relaxed),
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some((handle, wake)) = self.ticker {
            wake.1.notify_all();
            let _ = handle.join();
        }
    }
}

/// `1.5 MiB`-style sizes for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
