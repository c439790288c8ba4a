//! Each source manifest is fetched at most once per run, whichever jobs, tags or indexes
//! share it: Docker Hub counts every manifest `GET` against its pull quota, and tags that
//! alias each other (`1.27` = `mainline` = `latest`) or indexes that share children would
//! otherwise spend it several times. Jobs that need the same manifest at the same time wait
//! for the one fetch (it does no rayon work, so waiting cannot deadlock). The bytes are
//! kept up to a budget, the oldest dropped first (tags that share a manifest are usually
//! copied close together), so that a 20,000-tag run stays small in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use crate::digest::Digest;
use crate::error::Result;
use crate::http::RequestStats;
use crate::manifest::Manifest;
use crate::registry::Repo;

/// Manifest bytes kept (a manifest is typically 1–10 KiB): thousands of recent manifests.
const BUDGET_BYTES: usize = 8 * 1024 * 1024;

type Key = (String, String, Digest);
type Slot = Arc<OnceLock<Result<Arc<Manifest>>>>;

#[derive(Default)]
pub(super) struct SourceManifests {
    slots: Mutex<HashMap<Key, Slot>>,
    /// Manifests kept, oldest first, and their total size.
    kept: Mutex<(VecDeque<(Key, usize)>, usize)>,
}

impl SourceManifests {
    /// The manifest `digest` of `source`, fetched on first use.
    pub(super) fn get(
        &self,
        source: &Repo,
        digest: &Digest,
        stats: &RequestStats,
    ) -> Result<Arc<Manifest>> {
        let key = (
            source.registry().to_string(),
            source.name().to_string(),
            digest.clone(),
        );
        let slot = self.slot(&key);
        let mut fetched_here = false;
        let result = slot
            .get_or_init(|| {
                fetched_here = true;
                source.get_manifest(digest.as_str(), stats).map(Arc::new)
            })
            .clone();
        match &result {
            // Failures are not kept: a later job may try again (within its own retries).
            Err(_) => self.forget(&key, &slot),
            Ok(manifest) if fetched_here => self.account(key, manifest.bytes.len()),
            Ok(_) => {}
        }
        result
    }

    /// Keeps a manifest fetched by tag, so that its digest is not fetched again.
    pub(super) fn keep(&self, source: &Repo, manifest: Manifest) -> Arc<Manifest> {
        let key = (
            source.registry().to_string(),
            source.name().to_string(),
            manifest.digest.clone(),
        );
        let manifest = Arc::new(manifest);
        let slot = self.slot(&key);
        if slot.set(Ok(manifest.clone())).is_ok() {
            self.account(key, manifest.bytes.len());
        }
        manifest
    }

    /// Counts a newly kept manifest, and drops the oldest past the budget.
    fn account(&self, key: Key, size: usize) {
        let mut kept = self.kept.lock().unwrap();
        kept.0.push_back((key, size));
        kept.1 += size;
        while kept.1 > BUDGET_BYTES {
            let Some((old, old_size)) = kept.0.pop_front() else {
                break;
            };
            kept.1 -= old_size;
            self.slots.lock().unwrap().remove(&old);
        }
    }

    fn slot(&self, key: &Key) -> Slot {
        self.slots
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone()
    }

    fn forget(&self, key: &Key, slot: &Slot) {
        let mut slots = self.slots.lock().unwrap();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }
}
