//! Each source manifest is fetched at most once per run, whichever jobs, tags or indexes
//! share it: Docker Hub counts every manifest `GET` against its pull quota, and tags that
//! alias each other (`1.27` = `mainline` = `latest`) or indexes that share children would
//! otherwise spend it several times. Jobs that need the same manifest at the same time wait
//! for the one fetch (it does no rayon work, so waiting cannot deadlock). The bytes are
//! kept up to a budget; past it, a manifest is still fetched once at a time, but a later
//! job asks again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::digest::Digest;
use crate::error::Result;
use crate::http::RequestStats;
use crate::manifest::Manifest;
use crate::registry::Repo;

/// Manifest bytes kept for the run (a manifest is typically 1–10 KiB; the 4 MiB ones are
/// rare): enough for tens of thousands of tags.
const BUDGET_BYTES: usize = 256 * 1024 * 1024;

type Key = (String, String, Digest);
type Slot = Arc<OnceLock<Result<Arc<Manifest>>>>;

#[derive(Default)]
pub(super) struct SourceManifests {
    slots: Mutex<HashMap<Key, Slot>>,
    kept_bytes: AtomicUsize,
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
        let slot = self
            .slots
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let result = slot
            .get_or_init(|| source.get_manifest(digest.as_str(), stats).map(Arc::new))
            .clone();
        match &result {
            // Failures are not kept: a later job may try again (within its own retries).
            Err(_) => self.forget(&key, &slot),
            Ok(manifest) => {
                let kept = self
                    .kept_bytes
                    .fetch_add(manifest.bytes.len(), Ordering::Relaxed);
                if kept + manifest.bytes.len() > BUDGET_BYTES {
                    self.kept_bytes
                        .fetch_sub(manifest.bytes.len(), Ordering::Relaxed);
                    self.forget(&key, &slot);
                }
            }
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
        let slot = self.slots.lock().unwrap().entry(key).or_default().clone();
        let _ = slot.set(Ok(manifest.clone()));
        manifest
    }

    fn forget(&self, key: &Key, slot: &Slot) {
        let mut slots = self.slots.lock().unwrap();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }
}
