//! What the run knows of each target repository's manifests, to skip `HEAD`s whose answer
//! is known (its tags, listed once a tag is found missing) and to copy each child manifest
//! of an index once, even when several jobs reach the same index at the same time (tags
//! that alias each other): a registry may lose one of two concurrent `PUT`s of one
//! manifest. Each repository has a number, the short name of the claims keyed by it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::claims::{Claims, DigestKey};
use crate::end::End;
use crate::http::RequestStats;
use crate::reference::RepoId;

#[derive(Default)]
pub(super) struct TargetRepos {
    repos: Mutex<HashMap<RepoId, Arc<TargetRepo>>>,
    /// Child manifests of indexes, by repository number: known there, or being copied
    /// by a job. Those done are remembered while used lately; one forgotten is looked at
    /// again (`HEAD`, or copied again after the first copy ended: `PUT`s of one manifest
    /// one after the other are safe).
    pub(super) children: Claims<(u32, DigestKey), ()>,
}

pub(super) struct TargetRepo {
    /// Its number in this run.
    pub(super) number: u32,
    /// Listed after the first `HEAD` that found a tag missing; `None` inside when the
    /// list could not be read (every tag is then checked with `HEAD`).
    tags: OnceLock<Option<HashSet<String>>>,
    /// How long the fastest manifest `HEAD` answered here took, in microseconds (0: none
    /// yet): the distance, without what a first request also waits for (a connection, a
    /// TLS handshake, the trust store, two cores shared with local registries).
    fastest_head_micros: AtomicU64,
}

/// A fastest `HEAD` at least this slow marks a far repository: a round trip there costs more
/// than the helper thread (~0.1 ms of CPU) that asks the target beside the source (see
/// `Copier::heads`). A registry on the same host or LAN answers in a few milliseconds.
const FAR: Duration = Duration::from_millis(25);

impl TargetRepos {
    pub(super) fn get(&self, target: &dyn End) -> Arc<TargetRepo> {
        let key = RepoId::new(target.registry(), target.name());
        let mut repos = self.repos.lock().unwrap();
        let number = u32::try_from(repos.len()).expect("fewer than 2^32 repositories");
        (repos.entry(key))
            .or_insert_with(|| {
                Arc::new(TargetRepo {
                    number,
                    tags: OnceLock::new(),
                    fastest_head_micros: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// The repository's tags, listed on first use (`None` when they cannot be listed:
    /// then every tag is asked for).
    pub(super) fn tags(&self, repo: &dyn End, stats: &RequestStats) -> Option<HashSet<String>> {
        let known = self.get(repo);
        known.list(repo, stats);
        known.tags.get().cloned().flatten()
    }
}

impl TargetRepo {
    /// Whether the tag list was read (or could not be).
    pub(super) fn listed(&self) -> bool {
        self.tags.get().is_some()
    }

    /// Whether the tag list, if read, shows `tag` absent (then no `HEAD` is needed).
    pub(super) fn listed_absent(&self, tag: &str) -> bool {
        matches!(self.tags.get(), Some(Some(tags)) if !tags.contains(tag))
    }

    /// Whether the tag list (read now if it was not yet) shows `tag` present.
    pub(super) fn listed_present(&self, target: &dyn End, tag: &str, stats: &RequestStats) -> bool {
        self.list(target, stats);
        matches!(self.tags.get(), Some(Some(tags)) if tags.contains(tag))
    }

    /// After a `HEAD` found a tag missing: reads the tag list of `target` (this
    /// repository), once.
    pub(super) fn list(&self, target: &dyn End, stats: &RequestStats) {
        self.tags.get_or_init(|| match target.list_tags(stats) {
            Ok(tags) => Some(tags.unwrap_or_default().into_iter().collect()),
            Err(_) => None,
        });
    }

    /// Whether a manifest `HEAD` here has been answered (the registry and the credentials
    /// work), and even the fastest so slowly that asking ahead pays.
    pub(super) fn far(&self) -> bool {
        self.fastest_head_micros.load(Ordering::Relaxed) >= FAR.as_micros() as u64
    }

    /// A manifest `HEAD` here was answered in `elapsed`, at its first try; the fastest
    /// counts, so a first answer slowed by the connection's setup is corrected by the
    /// next one.
    pub(super) fn answered_in(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = (self.fastest_head_micros).fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |fastest| (fastest == 0 || micros < fastest).then_some(micros),
        );
    }

    /// Whether a child manifest must be asked for before it is copied: not when the
    /// repository had no tag when listed (at worst an interrupted run's child is pushed
    /// again).
    pub(super) fn may_hold_children(&self) -> bool {
        !matches!(self.tags.get(), Some(Some(tags)) if tags.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> TargetRepo {
        TargetRepo {
            number: 0,
            tags: OnceLock::new(),
            fastest_head_micros: AtomicU64::new(0),
        }
    }

    #[test]
    fn the_fastest_answer_tells_the_distance() {
        let near = repo();
        assert!(!near.far(), "nothing answered yet");
        // A first HEAD that also waited for its connection (a handshake on two busy
        // cores), then one on that connection.
        near.answered_in(Duration::from_millis(31));
        assert!(near.far());
        near.answered_in(Duration::from_millis(2));
        assert!(!near.far());
        near.answered_in(Duration::from_millis(40));
        assert!(!near.far(), "a slower answer later does not make it far");

        let far = repo();
        for millis in [130, 101, 118] {
            far.answered_in(Duration::from_millis(millis));
        }
        assert!(far.far());
    }
}
