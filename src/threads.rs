//! The run's threads, without work-stealing: planning's tag listings run on
//! them, then the copy, so planning's threads have ended (their stacks free for the
//! copy's) before the copy starts. A work-stealing pool (rayon) lets a thread
//! that waits inside one job run an unrelated job on top of it; with the copy's claims (a
//! blob or child manifest that one job copies while others wait for it) that closes
//! cycles: a thread waits for a claim whose owner waits for work stacked under that very
//! wait, and the run stops for ever. Here a thread only runs items of the loop it is in,
//! one after the other, so the only waits are for claims (which follow the content graph:
//! a manifest waits for what it references, never the other way round, and a blob upload
//! waits for nothing) and for the helpers of its own loop. Neither can form a cycle.
//!
//! Parallelism comes from helper threads borrowed from one budget for the run: a loop
//! borrows a spare thread whenever it takes an item and more are left, and never waits for
//! one; a finished helper gives its thread back for other loops to borrow.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Scope;

/// The run's thread budget.
pub struct Threads {
    /// Threads that may still be started, besides those running.
    spare: AtomicUsize,
}

impl Threads {
    /// At most `total` threads work at once, the caller's included.
    pub fn new(total: usize) -> Self {
        Threads {
            spare: AtomicUsize::new(total.saturating_sub(1)),
        }
    }

    /// `work` on every item, on this thread and borrowed helpers; stops taking items at
    /// the first error, which is returned once every item started has ended.
    pub fn for_each<T: Sync, E: Send>(
        &self,
        items: &[T],
        work: impl Fn(&T) -> Result<(), E> + Sync,
    ) -> Result<(), E> {
        let failure = Mutex::new(None);
        self.drive(items.len(), &|i| match work(&items[i]) {
            Ok(()) => true,
            Err(e) => {
                failure.lock().unwrap().get_or_insert(e);
                false
            }
        });
        match failure.into_inner().unwrap() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `work` on every item; the results in the items' order.
    pub fn map<T: Sync, R: Send>(&self, items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
        self.drive(items.len(), &|i| {
            *results[i].lock().unwrap() = Some(work(&items[i]));
            true
        });
        results
            .into_iter()
            .map(|result| result.into_inner().unwrap().expect("every item ran"))
            .collect()
    }

    /// `work` on every item of a slice (which costs nothing per item beyond the slice).
    pub fn each<T: Sync>(&self, items: &[T], work: impl Fn(&T) + Sync) {
        self.drive(items.len(), &|i| {
            work(&items[i]);
            true
        });
    }

    /// Runs `work(i)` for every `i < len` until one returns `false`.
    fn drive(&self, len: usize, work: &(dyn Fn(usize) -> bool + Sync)) {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let shared = Loop {
            threads: self,
            len,
            next: &next,
            stop: &stop,
            work,
        };
        std::thread::scope(|scope| shared.work_on(scope));
    }

    fn borrow(&self) -> bool {
        self.spare
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn give_back(&self) {
        self.spare.fetch_add(1, Ordering::AcqRel);
    }
}

/// One loop's shared state, borrowed by each thread working on it.
#[derive(Clone, Copy)]
struct Loop<'a> {
    threads: &'a Threads,
    len: usize,
    next: &'a AtomicUsize,
    stop: &'a AtomicBool,
    work: &'a (dyn Fn(usize) -> bool + Sync),
}

impl<'a> Loop<'a> {
    /// Takes items until none is left (or one failed), borrowing a helper whenever more
    /// items than this one are left and the budget has a thread.
    fn work_on<'s>(self, scope: &'s Scope<'s, 'a>) {
        while !self.stop.load(Ordering::Acquire) {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= self.len {
                return;
            }
            if i + 1 < self.len && self.threads.borrow() {
                let helper = std::thread::Builder::new()
                    .name("copy".into())
                    .spawn_scoped(scope, move || {
                        self.work_on(scope);
                        self.threads.give_back();
                    });
                if helper.is_err() {
                    self.threads.give_back();
                }
            }
            if !(self.work)(i) {
                self.stop.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Barrier;

    #[test]
    fn every_item_once_and_the_budget_is_whole_again() {
        let threads = Threads::new(4);
        let seen = Mutex::new(Vec::new());
        let items: Vec<u32> = (0..1000).collect();
        threads.each(&items, |&i| seen.lock().unwrap().push(i));
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(threads.spare.load(Ordering::Acquire), 3);
    }

    #[test]
    fn map_keeps_the_items_order() {
        let threads = Threads::new(4);
        let items: Vec<u64> = (0..500).collect();
        let squares = threads.map(&items, |&n| {
            std::thread::yield_now();
            n * n
        });
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert_eq!(threads.spare.load(Ordering::Acquire), 3);
    }

    #[test]
    fn helpers_are_borrowed_up_to_the_budget() {
        // Four items that each wait for the others: they can only finish when four
        // threads run them at once, which a budget of four allows.
        let threads = Threads::new(4);
        let barrier = Barrier::new(4);
        let seen = Mutex::new(HashSet::new());
        threads
            .for_each(&[1, 2, 3, 4], |_| -> Result<(), ()> {
                barrier.wait();
                seen.lock().unwrap().insert(std::thread::current().id());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.into_inner().unwrap().len(), 4);
    }

    #[test]
    fn the_first_error_stops_the_loop() {
        let threads = Threads::new(1);
        let ran = AtomicUsize::new(0);
        let result = threads.for_each(&[1, 2, 3, 4], |&n| {
            ran.fetch_add(1, Ordering::Relaxed);
            if n == 2 { Err(n) } else { Ok(()) }
        });
        assert_eq!(result, Err(2));
        assert_eq!(
            ran.into_inner(),
            2,
            "one thread: items after the error are not taken"
        );
    }

    #[test]
    fn nested_loops_share_the_budget_and_never_exceed_it() {
        let threads = Threads::new(3);
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        threads
            .for_each(&[0; 6], |_| {
                threads.for_each(&[0; 6], |_| -> Result<(), ()> {
                    let now = running.fetch_add(1, Ordering::AcqRel) + 1;
                    most.fetch_max(now, Ordering::AcqRel);
                    std::thread::yield_now();
                    running.fetch_sub(1, Ordering::AcqRel);
                    Ok(())
                })
            })
            .unwrap();
        assert!(most.into_inner() <= 3);
        assert_eq!(threads.spare.load(Ordering::Acquire), 2);
    }
}
