//! A counting semaphore: the cap on concurrent requests to one registry.

use std::sync::{Condvar, Mutex};

/// A counting semaphore capping concurrent requests to one registry.
pub(super) struct Semaphore {
    available: Mutex<usize>,
    freed: Condvar,
}

impl Semaphore {
    pub(super) fn new(count: usize) -> Self {
        Semaphore {
            available: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    pub(super) fn acquire(&self) -> Permit<'_> {
        let mut available = self.available.lock().unwrap();
        while *available == 0 {
            available = self.freed.wait(available).unwrap();
        }
        *available -= 1;
        Permit(self)
    }
}

pub(super) struct Permit<'a>(&'a Semaphore);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.available.lock().unwrap() += 1;
        self.0.freed.notify_one();
    }
}
