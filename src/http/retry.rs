//! The one retry loop ([`Transport::retrying`]) and its budget. The budget is what the
//! loop spends on each new try: a try counted in the job's stats, and a wait (backoff
//! doubling from 0.1 s up to 30 s with jitter; `Retry-After` wins when given). A blob
//! download that breaks mid-way continues from the byte reached inside the same attempt
//! (`resume`), and that continuation spends from the same budget: a resume is a try, so
//! `--retries` bounds every repeated request of one transfer, whatever repeats it.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{RequestStats, Transport};
use crate::error::{Error, Result};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The tries left to one operation of the retry loop, and the next wait.
pub struct RetryBudget<'a> {
    transport: &'a Transport,
    stats: &'a RequestStats,
    tries_left: Cell<u32>,
    backoff: Cell<Duration>,
}

impl<'a> RetryBudget<'a> {
    fn new(transport: &'a Transport, stats: &'a RequestStats) -> Self {
        RetryBudget {
            transport,
            stats,
            tries_left: Cell::new(transport.retries),
            backoff: Cell::new(BACKOFF_START),
        }
    }

    /// Whether `error` may be tried again: it is transient, tries are left and the run
    /// goes on. If so the try is counted and its wait slept before this returns.
    pub fn spend(&self, error: &Error) -> bool {
        let left = self.tries_left.get();
        if !error.retryable || left == 0 || self.transport.is_cancelled() {
            return false;
        }
        self.tries_left.set(left - 1);
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        let backoff = self.backoff.get();
        let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
        self.transport
            .sleep_unless_cancelled(error.retry_after.unwrap_or(jittered));
        self.backoff.set((backoff * 2).min(BACKOFF_MAX));
        !self.transport.is_cancelled()
    }
}

impl Transport {
    /// Runs `attempt` until it succeeds, fails permanently, or the retries are spent.
    pub fn retrying<T>(
        &self,
        stats: &RequestStats,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        self.retrying_within(stats, |_| attempt())
    }

    /// [`Transport::retrying`], with the budget lent to each attempt so that what the
    /// attempt repeats inside itself (a resumed download) spends from it too.
    pub fn retrying_within<T>(
        &self,
        stats: &RequestStats,
        mut attempt: impl FnMut(&RetryBudget<'_>) -> Result<T>,
    ) -> Result<T> {
        let budget = RetryBudget::new(self, stats);
        loop {
            if self.is_cancelled() {
                return Err(Error::cancelled());
            }
            match attempt(&budget) {
                Err(e) if budget.spend(&e) => {}
                Err(e) if self.is_cancelled() && e.retryable => return Err(Error::cancelled()),
                other => return other,
            }
        }
    }

    /// Sleeps in small steps so a cancellation is noticed quickly.
    pub(super) fn sleep_unless_cancelled(&self, wait: Duration) {
        let step = Duration::from_millis(50);
        let mut left = wait;
        while !left.is_zero() && !self.is_cancelled() {
            let now = left.min(step);
            std::thread::sleep(now);
            left -= now;
        }
    }
}
