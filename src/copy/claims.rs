//! Work that several jobs can reach at the same time — a child manifest of an index, the
//! referrers of a subject — done by one of them while the others wait for its result.
//! rayon runs other jobs on a thread while it waits inside a job, so a claim may be met
//! again on the thread that holds it (which must never wait for itself), and two threads
//! that each hold a claim could wait on each other: a thread that holds one waits a
//! bounded time, then does the work too. A thread that holds none can wait as long as it
//! takes, since nobody waits on it.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::WAIT_POLL;

/// How long a thread that holds a claim of its own waits for another thread's work.
const NESTED_WAIT: Duration = Duration::from_secs(5);

thread_local! {
    /// Claims this thread holds, of every kind.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// What a caller does about a key.
#[derive(Debug, PartialEq)]
pub(super) enum Claim<V> {
    /// Done already (by this run, or found done), with its result.
    Done(V),
    /// This caller does it, and reports back with [`Claims::finish`].
    Owner,
    /// Another caller is doing it and this one may not wait: it does the work too.
    Duplicate,
}

enum State<V> {
    Working(ThreadId),
    Done(V),
}

pub(super) struct Claims<K, V> {
    states: Mutex<HashMap<K, State<V>>>,
    finished: Condvar,
}

impl<K, V> Default for Claims<K, V> {
    fn default() -> Self {
        Claims {
            states: Mutex::new(HashMap::new()),
            finished: Condvar::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Claims<K, V> {
    pub(super) fn claim(&self, key: &K) -> Claim<V> {
        let me = std::thread::current().id();
        let nested = HELD.with(Cell::get) > 0;
        let started = Instant::now();
        let mut states = self.states.lock().unwrap();
        loop {
            match states.get(key) {
                Some(State::Done(value)) => return Claim::Done(value.clone()),
                Some(State::Working(owner)) if *owner == me => return Claim::Duplicate,
                Some(State::Working(_)) if nested && started.elapsed() > NESTED_WAIT => {
                    return Claim::Duplicate;
                }
                Some(State::Working(_)) => {
                    states = self.finished.wait_timeout(states, WAIT_POLL).unwrap().0;
                }
                None => {
                    states.insert(key.clone(), State::Working(me));
                    HELD.with(|held| held.set(held.get() + 1));
                    return Claim::Owner;
                }
            }
        }
    }

    /// Whether `key` is done.
    pub(super) fn is_done(&self, key: &K) -> bool {
        matches!(self.states.lock().unwrap().get(key), Some(State::Done(_)))
    }

    /// Ends a claim: `done` is the result, `None` a failure (another caller may try);
    /// `owner` when the claim was [`Claim::Owner`].
    pub(super) fn finish(&self, key: &K, owner: bool, done: Option<V>) {
        let mut states = self.states.lock().unwrap();
        match done {
            Some(value) => {
                states.insert(key.clone(), State::Done(value));
            }
            None if owner && matches!(states.get(key), Some(State::Working(_))) => {
                states.remove(key);
            }
            None => {}
        }
        if owner {
            HELD.with(|held| held.set(held.get() - 1));
        }
        self.finished.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_owner_others_wait_for_its_result_and_a_failure_frees_the_key() {
        let claims: Arc<Claims<u8, u32>> = Arc::default();
        assert_eq!(claims.claim(&1), Claim::Owner);
        // The owner's own thread meets it again: it does not wait for itself.
        assert_eq!(claims.claim(&1), Claim::Duplicate);
        let waiter = {
            let claims = claims.clone();
            std::thread::spawn(move || claims.claim(&1))
        };
        std::thread::sleep(Duration::from_millis(60));
        assert!(!waiter.is_finished(), "a thread holding nothing waits");
        claims.finish(&1, true, Some(7));
        assert_eq!(waiter.join().unwrap(), Claim::Done(7));
        assert!(claims.is_done(&1));

        assert_eq!(claims.claim(&2), Claim::Owner);
        claims.finish(&2, true, None);
        assert_eq!(
            claims.claim(&2),
            Claim::Owner,
            "after a failure another may try"
        );
        claims.finish(&2, true, None);
    }
}
