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
//!
//! What is done is remembered in a [`Recent`] map: the last [`GENERATION`] keys used at
//! least, at most twice as many, so memory does not grow with the tags. Work in progress
//! is never forgotten. A forgotten result costs requests, never correctness: the work is
//! looked at again, as on a new run (see [`BlobLedger`] and each [`Claims`] user).

mod keys;
mod recent;

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Condvar, Mutex};

use crate::digest::Digest;
pub(super) use keys::DigestKey;
use keys::{NameId, Names};
use recent::{GENERATION, Recent};

/// What a caller does about a key.
pub(super) enum Claim<'c, K: Eq + Hash + Clone, V: Clone> {
    /// Done already (by this run, or found done), with its result.
    Done(V),
    /// This caller does it, and reports the result through the guard.
    Owner(ClaimGuard<'c, K, V>),
}

/// Keys done (the ones used lately) and keys being worked on (all of them).
pub(super) struct Claims<K, V> {
    state: Mutex<ClaimState<K, V>>,
    finished: Condvar,
}

struct ClaimState<K, V> {
    working: HashSet<K>,
    done: Recent<K, V>,
}

impl<K, V> Default for Claims<K, V> {
    fn default() -> Self {
        Self::keeping(GENERATION)
    }
}

impl<K, V> Claims<K, V> {
    /// Claims that forget nothing done, for work that must not be looked at twice.
    pub(super) fn remembering_all() -> Self {
        Self::keeping(usize::MAX)
    }

    /// Claims that remember at least the last `generation` keys done.
    fn keeping(generation: usize) -> Self {
        Claims {
            state: Mutex::new(ClaimState {
                working: HashSet::new(),
                done: Recent::new(generation),
            }),
            finished: Condvar::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Claims<K, V> {
    /// The result when done (and remembered); else ownership, or (while another owns
    /// it) the wait for its outcome.
    pub(super) fn claim(&self, key: &K) -> Claim<'_, K, V> {
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(value) = state.done.get_mut(key) {
                return Claim::Done(value.clone());
            }
            if state.working.contains(key) {
                state = self.finished.wait(state).unwrap();
                continue;
            }
            state.working.insert(key.clone());
            return Claim::Owner(ClaimGuard {
                claims: self,
                key: Some(key.clone()),
            });
        }
    }

    fn end(&self, key: K, done: Option<V>) {
        let mut state = self.state.lock().unwrap();
        state.working.remove(&key);
        if let Some(value) = done {
            state.done.insert(key, value);
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
            self.claims.end(key, Some(value));
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for ClaimGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.claims.end(key, None);
        }
    }
}

/// Where blobs are known to be in each target registry, and where jobs are placing them
/// right now, so that each blob crosses the wire at most once per target registry and is
/// placed in each repository once: two concurrent mounts of one blob into one repository
/// can make a registry (distribution 2.8) answer `MANIFEST_BLOB_UNKNOWN` to a manifest
/// pushed meanwhile.
///
/// Placements in progress are all kept; where blobs are is kept for the blobs used
/// lately (a [`Recent`] map: 56 bytes a blob, two tables of 2^15 slots, 3.6 MiB at
/// most, plus 4 bytes per further repository of a blob held in several). A run whose
/// working set fits (base layers shared by many tags) never looks at those again. A
/// forgotten blob costs requests, never correctness: claimed again, it is owned, and
/// the owner asks the target repository first (a mount from itself, or `HEAD`: see
/// `Copier::owner_copy`), so a blob already there is found and skipped; only a blob
/// held in another repository and forgotten there is sent again instead of mounted.
pub(super) struct BlobLedger {
    state: Mutex<LedgerState>,
    changed: Condvar,
}

struct LedgerState {
    names: Names,
    /// Repositories known to hold each blob, for the blobs used lately.
    held: Recent<BlobKey, Held>,
    /// Repositories jobs are putting each blob in (an upload, or a mount from a
    /// holder); an entry leaves when its last placement ends.
    placing: HashMap<BlobKey, Vec<NameId>>,
}

/// A blob in a registry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BlobKey {
    registry: NameId,
    digest: DigestKey,
}

/// Repositories known to hold a blob, the last one placed or found first: one inline
/// (most blobs are one tag's own), more on the heap, up to [`HOLDERS_KEPT`]. A holder
/// forgotten gets the blob mounted from one remembered: one request the registry answers
/// at once (it holds the blob), tallied as a mount.
enum Held {
    One(NameId),
    Many(Box<[NameId]>),
}

/// The most repositories remembered holding one blob (more than the copy's threads work
/// on at once by default, so a shared base layer stays known in each of them).
const HOLDERS_KEPT: usize = 64;

impl Held {
    fn contains(&self, repo: NameId) -> bool {
        match self {
            Held::One(one) => *one == repo,
            Held::Many(many) => many.contains(&repo),
        }
    }

    fn first(&self) -> NameId {
        match self {
            Held::One(one) => *one,
            Held::Many(many) => many[0],
        }
    }

    /// `repo` holds the blob, as the one known last.
    fn put_first(&mut self, repo: NameId) {
        match self {
            Held::One(one) if *one == repo => {}
            Held::One(one) => *self = Held::Many(Box::new([repo, *one])),
            Held::Many(many) => match many.iter().position(|r| *r == repo) {
                Some(at) => many[..=at].rotate_right(1),
                None => {
                    let kept = many.iter().take(HOLDERS_KEPT - 1).copied();
                    *many = std::iter::once(repo).chain(kept).collect();
                }
            },
        }
    }
}

/// What a job does about one blob.
pub(super) enum BlobClaim<'l> {
    /// Known to be in the target repository already.
    Present,
    /// Known in another repository of the same registry: the caller mounts it from there
    /// and says so with the guard.
    MountFrom(String, BlobGuard<'l>),
    /// Nobody has it or is uploading it, as far as the ledger remembers: the caller
    /// must, and says so with the guard.
    Owner(BlobGuard<'l>),
    /// Another job is placing it (only when the caller asked not to wait).
    Busy,
}

impl Default for BlobLedger {
    fn default() -> Self {
        Self::keeping(GENERATION)
    }
}

impl BlobLedger {
    /// A ledger that remembers at least the last `generation` blobs used.
    fn keeping(generation: usize) -> Self {
        BlobLedger {
            state: Mutex::new(LedgerState {
                names: Names::default(),
                held: Recent::new(generation),
                placing: HashMap::new(),
            }),
            changed: Condvar::new(),
        }
    }

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
        let mut state = self.state.lock().unwrap();
        let key = BlobKey {
            registry: state.names.id(registry),
            digest: DigestKey::from(digest),
        };
        let repo = state.names.id(repo);
        loop {
            let state_now = &mut *state;
            let holder = match state_now.held.get_mut(&key) {
                Some(held) if held.contains(repo) => {
                    held.put_first(repo);
                    return BlobClaim::Present;
                }
                held => held.map(|held| held.first()),
            };
            let busy = (state_now.placing.get(&key))
                .is_some_and(|placing| placing.contains(&repo) || holder.is_none());
            if busy && !wait {
                return BlobClaim::Busy;
            }
            if busy {
                state = self.changed.wait(state).unwrap();
                continue;
            }
            state_now.placing.entry(key).or_default().push(repo);
            let guard = BlobGuard {
                ledger: self,
                key: Some(key),
                repo,
            };
            return match holder {
                Some(holder) => BlobClaim::MountFrom(state.names.name(holder).to_string(), guard),
                None => BlobClaim::Owner(guard),
            };
        }
    }

    /// Ends a placement: the blob is in `repo` now (`placed`), or the job gave up.
    fn end(&self, key: BlobKey, repo: NameId, placed: bool) {
        let mut state = self.state.lock().unwrap();
        if let Some(placing) = state.placing.get_mut(&key) {
            placing.retain(|r| *r != repo);
            if placing.is_empty() {
                state.placing.remove(&key);
            }
        }
        if placed {
            match state.held.get_mut(&key) {
                Some(held) => held.put_first(repo),
                None => {
                    state.held.insert(key, Held::One(repo));
                }
            }
        }
        self.changed.notify_all();
    }
}

/// A placement this job owns; dropped without [`BlobGuard::placed`], it is given up and
/// a waiting job may try.
pub(super) struct BlobGuard<'l> {
    ledger: &'l BlobLedger,
    key: Option<BlobKey>,
    repo: NameId,
}

impl BlobGuard<'_> {
    /// The blob is now in the repository it was claimed for.
    pub(super) fn placed(mut self) {
        if let Some(key) = self.key.take() {
            self.ledger.end(key, self.repo, true);
        }
    }
}

impl Drop for BlobGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.ledger.end(key, self.repo, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    fn digest(n: u32) -> Digest {
        Digest::sha256_of(&n.to_le_bytes())
    }

    /// Blobs remembered where they are, and blobs with a placement in progress.
    fn remembered(ledger: &BlobLedger) -> (usize, usize) {
        let state = ledger.state.lock().unwrap();
        (state.held.len(), state.placing.len())
    }

    /// Uploads blobs `range` into `r.io/a/one`, each placed.
    fn place_many(ledger: &BlobLedger, range: std::ops::Range<u32>) {
        for n in range {
            let BlobClaim::Owner(guard) = ledger.claim("r.io", &digest(n), "a/one", true) else {
                panic!("a new blob is owned")
            };
            guard.placed();
        }
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

    #[test]
    fn the_ledger_forgets_blobs_past_its_bound_least_recently_used_first() {
        let ledger = BlobLedger::keeping(100);
        place_many(&ledger, 0..1);
        for start in (1..10_000).step_by(50) {
            place_many(&ledger, start..start + 50);
            let (held, placing) = remembered(&ledger);
            assert!(
                held <= 200,
                "{held} blobs remembered, at most two generations"
            );
            assert_eq!(placing, 0, "no placement is left behind");
            assert!(
                matches!(
                    ledger.claim("r.io", &digest(0), "a/one", true),
                    BlobClaim::Present
                ),
                "a blob used again and again (a base layer) stays known"
            );
        }
        assert!(
            matches!(
                ledger.claim("r.io", &digest(1), "a/one", true),
                BlobClaim::Owner(_)
            ),
            "a blob not used since is forgotten: its owner asks the registry again"
        );
    }

    #[test]
    fn a_placement_in_progress_is_never_forgotten() {
        let ledger = BlobLedger::keeping(100);
        let (upload, mount) = (digest(u32::MAX), digest(u32::MAX - 1));
        let BlobClaim::Owner(uploading) = ledger.claim("r.io", &upload, "a/one", true) else {
            panic!("the first job owns the upload")
        };
        let BlobClaim::Owner(first) = ledger.claim("r.io", &mount, "a/one", true) else {
            panic!("owned")
        };
        first.placed();
        let BlobClaim::MountFrom(_, mounting) = ledger.claim("r.io", &mount, "b/two", true) else {
            panic!("held in a/one, so mounted into b/two")
        };
        place_many(&ledger, 0..10_000);
        assert_eq!(remembered(&ledger).1, 2, "both placements are still known");
        assert!(
            matches!(
                ledger.claim("r.io", &upload, "c/three", false),
                BlobClaim::Busy
            ),
            "the upload is still known after 10,000 other blobs"
        );
        assert!(
            matches!(
                ledger.claim("r.io", &mount, "b/two", false),
                BlobClaim::Busy
            ),
            "no second mount into b/two while the first is under way, though a/one is forgotten"
        );
        uploading.placed();
        mounting.placed();
        assert!(matches!(
            ledger.claim("r.io", &upload, "a/one", false),
            BlobClaim::Present
        ));
        assert!(matches!(
            ledger.claim("r.io", &mount, "b/two", false),
            BlobClaim::Present
        ));
        assert_eq!(remembered(&ledger).1, 0);
    }

    #[test]
    fn a_blob_held_in_many_repositories_keeps_the_ones_used_last() {
        let ledger = BlobLedger::default();
        let blob = digest(0);
        let BlobClaim::Owner(guard) = ledger.claim("r.io", &blob, "repo/0", true) else {
            panic!("owned")
        };
        guard.placed();
        for n in 1..200 {
            let BlobClaim::MountFrom(from, guard) =
                ledger.claim("r.io", &blob, &format!("repo/{n}"), true)
            else {
                panic!("mounted from a holder")
            };
            assert_eq!(
                from,
                format!("repo/{}", n - 1),
                "from the holder known last"
            );
            guard.placed();
        }
        let present = |n: u32| {
            matches!(
                ledger.claim("r.io", &blob, &format!("repo/{n}"), false),
                BlobClaim::Present
            )
        };
        assert!((200 - HOLDERS_KEPT as u32..200).all(present));
        assert!(
            !present(0),
            "past {HOLDERS_KEPT} holders the oldest is asked again"
        );
    }

    #[test]
    fn claims_forget_done_keys_past_their_bound_never_one_being_worked_on() {
        let claims: Arc<Claims<u32, u32>> = Arc::new(Claims::keeping(100));
        let Claim::Owner(working) = claims.claim(&u32::MAX) else {
            panic!("owned")
        };
        for n in 0..10_000 {
            let Claim::Owner(guard) = claims.claim(&n) else {
                panic!("a new key is owned")
            };
            guard.done(n);
            assert!(claims.state.lock().unwrap().done.len() <= 200);
            assert!(
                matches!(claims.claim(&0), Claim::Done(0)),
                "used lately, kept"
            );
        }
        assert!(matches!(claims.claim(&1), Claim::Owner(_)), "forgotten");
        let waiter = on_thread({
            let claims = claims.clone();
            move || matches!(claims.claim(&u32::MAX), Claim::Done(7))
        });
        assert!(
            waiter.try_recv().is_err(),
            "the key being worked on is still known: a second caller waits"
        );
        working.done(7);
        assert!(waiter.recv().unwrap());
    }

    /// What one blob costs the ledger: its key (registry and repository numbers, a
    /// sha256 digest in 32 bytes) and its holder inline; the map adds one control byte.
    #[test]
    fn a_remembered_blob_takes_56_bytes() {
        assert_eq!(std::mem::size_of::<(BlobKey, Held)>(), 56);
    }
}
