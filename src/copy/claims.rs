//! Work that several jobs can reach at the same time, done once: a blob for a target
//! registry (the blob ledger), a child manifest of an index, the referrers of a subject.
//! The first job to reach it owns it and holds a guard; the others wait for its result.
//! The guard's `Drop` gives up a claim that was not completed (a failure, an early
//! return, a panic), so that a waiting job takes over.
//!
//! Waiting is safe because the copy's threads never steal work (see [`super::threads`]):
//! a thread's stack holds only its own job's path through the content graph. An owner
//! waits only for what lies below the work it owns — a child manifest for its own
//! children and blobs, a subject for its referrers — and a blob upload waits for nothing,
//! so waits follow a graph without cycles and every owner ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Condvar, Mutex};

use crate::digest::Digest;

/// What a caller does about a key.
pub(super) enum Claim<'c, K: Eq + Hash + Clone, V: Clone> {
    /// Done already (by this run, or found done), with its result.
    Done(V),
    /// This caller does it, and reports the result through the guard.
    Owner(ClaimGuard<'c, K, V>),
}

enum State<V> {
    Working,
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
    /// The result when done; else ownership, or (while another owns it) the wait for
    /// its outcome.
    pub(super) fn claim(&self, key: &K) -> Claim<'_, K, V> {
        let mut states = self.states.lock().unwrap();
        loop {
            match states.get(key) {
                Some(State::Done(value)) => return Claim::Done(value.clone()),
                Some(State::Working) => states = self.finished.wait(states).unwrap(),
                None => {
                    states.insert(key.clone(), State::Working);
                    return Claim::Owner(ClaimGuard {
                        claims: self,
                        key: Some(key.clone()),
                    });
                }
            }
        }
    }

    fn end(&self, key: &K, done: Option<V>) {
        let mut states = self.states.lock().unwrap();
        match done {
            Some(value) => {
                states.insert(key.clone(), State::Done(value));
            }
            None => {
                states.remove(key);
            }
        }
        self.finished.notify_all();
    }
}

/// An owned claim; dropped without [`ClaimGuard::done`], it is given up.
pub(super) struct ClaimGuard<'c, K: Eq + Hash + Clone, V: Clone> {
    claims: &'c Claims<K, V>,
    key: Option<K>,
}

impl<K: Eq + Hash + Clone, V: Clone> ClaimGuard<'_, K, V> {
    /// The work is done, with this result for every later caller.
    pub(super) fn done(mut self, value: V) {
        if let Some(key) = self.key.take() {
            self.claims.end(&key, Some(value));
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for ClaimGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.claims.end(&key, None);
        }
    }
}

/// Where blobs are known to be in each target registry, and where jobs are placing them
/// right now, so that each blob crosses the wire at most once per target registry and is
/// placed in each repository once: two concurrent mounts of one blob into one repository
/// can make a registry (distribution 2.8) answer `MANIFEST_BLOB_UNKNOWN` to a manifest
/// pushed meanwhile.
#[derive(Default)]
pub(super) struct BlobLedger {
    state: Mutex<HashMap<(String, Digest), BlobPlaces>>,
    changed: Condvar,
}

/// Where one blob is in one registry.
#[derive(Default)]
struct BlobPlaces {
    /// Repositories that hold it.
    held: Vec<String>,
    /// Repositories a job is putting it in (an upload, or a mount from a holder).
    placing: Vec<String>,
}

/// What a job does about one blob.
pub(super) enum BlobClaim<'l> {
    /// Known to be in the target repository already.
    Present,
    /// Known in another repository of the same registry: the caller mounts it from there
    /// and says so with the guard.
    MountFrom(String, BlobGuard<'l>),
    /// Nobody has it or is uploading it: the caller must, and says so with the guard.
    Owner(BlobGuard<'l>),
    /// Another job is placing it (only when the caller asked not to wait).
    Busy,
}

impl BlobLedger {
    /// Where the blob stands for `repo`; with `wait`, another job placing it (into this
    /// repository, or uploading it anywhere in the registry) is waited for, else it is
    /// answered [`BlobClaim::Busy`].
    pub(super) fn claim(
        &self,
        registry: &str,
        digest: &Digest,
        repo: &str,
        wait: bool,
    ) -> BlobClaim<'_> {
        let key = (registry.to_string(), digest.clone());
        let mut state = self.state.lock().unwrap();
        loop {
            let places = state.entry(key.clone()).or_default();
            let busy = places.placing.iter().any(|r| r == repo)
                || (places.held.is_empty() && !places.placing.is_empty());
            if places.held.iter().any(|r| r == repo) {
                return BlobClaim::Present;
            }
            if busy && !wait {
                return BlobClaim::Busy;
            }
            if busy {
                state = self.changed.wait(state).unwrap();
                continue;
            }
            places.placing.push(repo.to_string());
            let guard = BlobGuard {
                ledger: self,
                key: Some(key),
                repo: repo.to_string(),
            };
            return match places.held.first() {
                Some(holder) => BlobClaim::MountFrom(holder.clone(), guard),
                None => BlobClaim::Owner(guard),
            };
        }
    }

    /// Ends a placement: the blob is in `repo` now (`placed`), or the job gave up.
    fn end(&self, key: &(String, Digest), repo: &str, placed: bool) {
        let mut state = self.state.lock().unwrap();
        if let Some(places) = state.get_mut(key) {
            places.placing.retain(|r| r != repo);
            if placed && !places.held.iter().any(|r| r == repo) {
                places.held.push(repo.to_string());
            }
        }
        self.changed.notify_all();
    }
}

/// A placement this job owns; dropped without [`BlobGuard::placed`], it is given up and
/// a waiting job may try.
pub(super) struct BlobGuard<'l> {
    ledger: &'l BlobLedger,
    key: Option<(String, Digest)>,
    repo: String,
}

impl BlobGuard<'_> {
    /// The blob is now in the repository it was claimed for.
    pub(super) fn placed(mut self) {
        if let Some(key) = self.key.take() {
            self.ledger.end(&key, &self.repo, true);
        }
    }
}

impl Drop for BlobGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.ledger.end(&key, &self.repo, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    /// Runs `claim` on another thread; the receiver gets its answer. Whether it waits is
    /// seen by asking the ledger or claims for the state the waiter must be blocked on.
    fn on_thread<R: Send + 'static>(
        claim: impl FnOnce() -> R + Send + 'static,
    ) -> mpsc::Receiver<R> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(claim()).unwrap());
        rx
    }

    #[test]
    fn one_owner_others_wait_for_its_result_and_a_dropped_guard_frees_the_key() {
        let claims: Arc<Claims<u8, u32>> = Arc::default();
        let Claim::Owner(guard) = claims.claim(&1) else {
            panic!("the first caller owns it")
        };
        let waiter = on_thread({
            let claims = claims.clone();
            move || match claims.claim(&1) {
                Claim::Done(v) => Some(v),
                Claim::Owner(_) => None,
            }
        });
        assert!(
            waiter.try_recv().is_err(),
            "a second caller waits while it is owned"
        );
        guard.done(7);
        assert_eq!(waiter.recv().unwrap(), Some(7));
        assert!(matches!(claims.claim(&1), Claim::Done(7)));

        let Claim::Owner(guard) = claims.claim(&2) else {
            panic!("a new key is owned")
        };
        let waiter = on_thread({
            let claims = claims.clone();
            move || matches!(claims.claim(&2), Claim::Owner(_))
        });
        drop(guard);
        assert!(waiter.recv().unwrap(), "after a failure the waiter owns it");
    }

    #[test]
    fn the_ledger_gives_one_owner_then_one_mount_per_repository_then_presence() {
        let ledger = BlobLedger::default();
        let blob = digest(1);
        let BlobClaim::Owner(guard) = ledger.claim("r.io", &blob, "a/one", true) else {
            panic!("the first job owns the upload")
        };
        assert!(
            matches!(ledger.claim("r.io", &blob, "b/two", false), BlobClaim::Busy),
            "uploaded once per registry: another repository waits for it"
        );
        guard.placed();
        assert!(matches!(
            ledger.claim("r.io", &blob, "a/one", true),
            BlobClaim::Present
        ));
        let BlobClaim::MountFrom(from, mount) = ledger.claim("r.io", &blob, "b/two", true) else {
            panic!("another repository of the same registry mounts")
        };
        assert_eq!(from, "a/one");
        assert!(
            matches!(ledger.claim("r.io", &blob, "b/two", false), BlobClaim::Busy),
            "one mount per repository at a time"
        );
        assert!(
            matches!(
                ledger.claim("r.io", &blob, "c/three", false),
                BlobClaim::MountFrom(..)
            ),
            "other repositories mount meanwhile"
        );
        mount.placed();
        assert!(matches!(
            ledger.claim("r.io", &blob, "b/two", false),
            BlobClaim::Present
        ));
        // Another registry knows nothing of it.
        assert!(matches!(
            ledger.claim("s.io", &blob, "a/one", true),
            BlobClaim::Owner(_)
        ));
    }

    #[test]
    fn a_waiter_takes_over_a_failed_upload_and_sees_a_finished_one() {
        let ledger = Arc::new(BlobLedger::default());
        let blob = digest(2);
        let BlobClaim::Owner(guard) = ledger.claim("r.io", &blob, "a/one", true) else {
            panic!("the first job owns the upload")
        };
        let waiter = on_thread({
            let (ledger, blob) = (ledger.clone(), blob.clone());
            move || match ledger.claim("r.io", &blob, "a/two", true) {
                BlobClaim::Owner(_) => "owner".to_string(),
                BlobClaim::MountFrom(repo, _) => repo,
                _ => "other".to_string(),
            }
        });
        assert!(
            waiter.try_recv().is_err(),
            "the waiter waits for the upload"
        );
        drop(guard);
        assert_eq!(
            waiter.recv().unwrap(),
            "owner",
            "a failed upload is given up"
        );

        let BlobClaim::Owner(guard) = ledger.claim("r.io", &blob, "a/one", true) else {
            panic!("given up, so owned again")
        };
        let waiter = on_thread({
            let (ledger, blob) = (ledger.clone(), blob.clone());
            move || match ledger.claim("r.io", &blob, "a/two", true) {
                BlobClaim::MountFrom(repo, _) => repo,
                _ => "not a mount".to_string(),
            }
        });
        guard.placed();
        assert_eq!(waiter.recv().unwrap(), "a/one");
    }
}
