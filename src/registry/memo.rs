//! What a registry was found to support (a mount from the repository itself, the
//! referrers API), learnt at run time from its answers and then read by every job without
//! a lock. One caller may claim the probe that settles it, so it is asked once.

use std::sync::atomic::{AtomicU8, Ordering};

/// What is known of one capability of a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Capability {
    Unknown,
    /// One caller is finding out.
    Probing,
    Yes,
    No,
}

impl Capability {
    const ALL: [Capability; 4] = [
        Capability::Unknown,
        Capability::Probing,
        Capability::Yes,
        Capability::No,
    ];

    fn from_u8(value: u8) -> Capability {
        Capability::ALL[usize::from(value)]
    }
}

/// A [`Capability`], shared between threads.
pub(super) struct Memo(AtomicU8);

impl Memo {
    pub(super) fn new() -> Memo {
        Memo(AtomicU8::new(Capability::Unknown as u8))
    }

    pub(super) fn get(&self) -> Capability {
        Capability::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Records what the registry's answer showed (a later answer overwrites it).
    pub(super) fn settle(&self, supported: bool) {
        let known = if supported {
            Capability::Yes
        } else {
            Capability::No
        };
        self.0.store(known as u8, Ordering::Relaxed);
    }

    /// Claims the probe: true for the one caller that finds the capability unknown, which
    /// must then [`Memo::settle`] it; false for every other (it is known, or being probed).
    pub(super) fn start_probe(&self) -> bool {
        self.0
            .compare_exchange(
                Capability::Unknown as u8,
                Capability::Probing as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_is_probed_once_and_settled() {
        let memo = Memo::new();
        assert_eq!(memo.get(), Capability::Unknown);
        assert!(memo.start_probe());
        assert_eq!(memo.get(), Capability::Probing);
        assert!(!memo.start_probe(), "one probe at a time");
        memo.settle(true);
        assert_eq!(memo.get(), Capability::Yes);
        assert!(!memo.start_probe(), "known: never probed again");
        memo.settle(false);
        assert_eq!(memo.get(), Capability::No);
    }

    #[test]
    fn of_many_threads_one_wins_the_probe() {
        let memo = Memo::new();
        let winners = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    if memo.start_probe() {
                        winners.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(winners.into_inner(), 1);
        assert_eq!(memo.get(), Capability::Probing);
    }
}
