//! Each manifest is fetched at most once per run, whichever jobs, tags, indexes or tag
//! filters need it: Docker Hub counts every manifest `GET` against its pull quota, and tags
//! that alias each other (`1.27` = `mainline` = `latest`) or indexes that share children
//! would otherwise spend it several times. Callers that want the same manifest at the same
//! time wait for the one fetch (a request, which waits for nothing else, so waiting cannot
//! deadlock). The bytes
//! are kept up to a budget of memory, counted with the keys and bookkeeping of each entry
//! (for a small image that is as much as its manifest), the oldest dropped first (tags that
//! share a manifest are usually copied close together), so that a 20,000-tag run stays
//! small in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::reference::{RepoId, Tag};

/// Memory the kept manifests may take (a manifest is typically 0.5–10 KiB): hundreds to
/// thousands of recent manifests.
const BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// What an entry costs beyond its bytes and key strings: the map and queue slots, the
/// `Arc`s, the manifest's fields and the allocator's headers (measured with heaptrack at
/// 20,000 small manifests: about 1.1 KiB per 0.4 KiB manifest).
const ENTRY_OVERHEAD_BYTES: usize = 384;

/// A manifest by its digest in one repository.
pub(super) type Key = (RepoId, Digest);
/// A tag of one repository.
pub(super) type TagKey = (RepoId, Tag);
type Slot = Arc<OnceLock<Result<Arc<Manifest>>>>;

/// What the budget holds: a manifest, or the digest a tag was found to name.
enum Entry {
    Manifest(Key),
    Tag(TagKey),
}

#[derive(Default)]
pub(super) struct ManifestCache {
    slots: Mutex<HashMap<Key, Slot>>,
    /// The digests of manifests fetched by tag, so that the tag is not fetched again.
    tags: Mutex<HashMap<TagKey, Digest>>,
    /// Entries kept, oldest first, and their total size.
    kept: Mutex<(VecDeque<(Entry, usize)>, usize)>,
}

impl ManifestCache {
    /// The manifest under `key`, fetched with `fetch` on first use.
    pub(super) fn get(
        &self,
        key: Key,
        fetch: impl FnOnce() -> Result<Manifest>,
    ) -> Result<Arc<Manifest>> {
        let slot = self.slot(&key);
        let mut fetched_here = false;
        let result = slot
            .get_or_init(|| {
                fetched_here = true;
                fetch().map(Arc::new)
            })
            .clone();
        match &result {
            // Failures are not kept: a later job may try again (within its own retries).
            Err(_) => self.forget(&key, &slot),
            Ok(manifest) if fetched_here => {
                let size = footprint(&key, manifest);
                self.account(Entry::Manifest(key), size);
            }
            Ok(_) => {}
        }
        result
    }

    /// Keeps a manifest fetched by `tag`, so that neither its digest nor the tag is
    /// fetched again.
    pub(super) fn keep(&self, key: Key, tag: TagKey, manifest: Manifest) -> Arc<Manifest> {
        let manifest = Arc::new(manifest);
        let slot = self.slot(&key);
        if slot.set(Ok(manifest.clone())).is_ok() {
            let size = footprint(&key, &manifest);
            self.account(Entry::Manifest(key.clone()), size);
        }
        let size = 2 * (id_len(&tag.0) + tag.1.as_str().len()) + key.1.as_str().len();
        if self
            .tags
            .lock()
            .unwrap()
            .insert(tag.clone(), key.1)
            .is_none()
        {
            self.account(Entry::Tag(tag), size + ENTRY_OVERHEAD_BYTES / 2);
        }
        manifest
    }

    /// The digest `tag` named when its manifest was fetched, if still kept.
    pub(super) fn digest_of_tag(&self, tag: &TagKey) -> Option<Digest> {
        self.tags.lock().unwrap().get(tag).cloned()
    }

    fn slot(&self, key: &Key) -> Slot {
        self.slots
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Counts a newly kept manifest, and drops the oldest past the budget.
    fn account(&self, entry: Entry, size: usize) {
        let mut kept = self.kept.lock().unwrap();
        kept.0.push_back((entry, size));
        kept.1 += size;
        while kept.1 > BUDGET_BYTES {
            let Some((old, old_size)) = kept.0.pop_front() else {
                break;
            };
            kept.1 -= old_size;
            match old {
                Entry::Manifest(key) => {
                    self.slots.lock().unwrap().remove(&key);
                }
                Entry::Tag(tag) => {
                    self.tags.lock().unwrap().remove(&tag);
                }
            }
        }
    }

    /// How many manifests are kept, and the counted size of all entries.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let kept = self.kept.lock().unwrap();
        let manifests = kept
            .0
            .iter()
            .filter(|(entry, _)| matches!(entry, Entry::Manifest(_)));
        (manifests.count(), kept.1)
    }

    fn forget(&self, key: &Key, slot: &Slot) {
        let mut slots = self.slots.lock().unwrap();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }
}

/// The memory an entry holds: its bytes, its key (once in the map, once in the queue) and
/// the fixed bookkeeping.
fn footprint(key: &Key, manifest: &Manifest) -> usize {
    let key_bytes = id_len(&key.0) + key.1.as_str().len();
    manifest.bytes.capacity()
        + manifest.digest.as_str().len()
        + 2 * key_bytes
        + ENTRY_OVERHEAD_BYTES
}

/// The bytes of a repository id's strings.
fn id_len(id: &RepoId) -> usize {
    id.registry.len() + id.repository.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n: usize) -> Manifest {
        let bytes = vec![b'x'; n];
        Manifest {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: crate::manifest::MediaType::OciManifest,
        }
    }

    fn key(m: &Manifest) -> Key {
        (RepoId::new("r.io", "a/b"), m.digest.clone())
    }

    fn tag(name: &str) -> TagKey {
        (RepoId::new("r.io", "a/b"), Tag::parse(name).unwrap())
    }

    #[test]
    fn a_tag_fetched_once_names_its_digest_until_it_leaves() {
        let cache = ManifestCache::default();
        let m = manifest(10);
        cache.keep(key(&m), tag("v1"), m.clone());
        assert_eq!(cache.digest_of_tag(&tag("v1")), Some(m.digest.clone()));
        assert_eq!(cache.digest_of_tag(&tag("v2")), None);
        let fetched = cache.get(key(&m), || panic!("kept by tag: not fetched again"));
        assert_eq!(fetched.unwrap().digest, m.digest);
        // A manifest as big as the budget pushes the tag out with the first manifest.
        let big = manifest(BUDGET_BYTES);
        cache.keep(key(&big), tag("big"), big.clone());
        assert_eq!(cache.digest_of_tag(&tag("v1")), None);
    }

    #[test]
    fn a_manifest_is_fetched_once_and_failures_are_not_kept() {
        let cache = ManifestCache::default();
        let m = manifest(10);
        let mut fetches = 0;
        for _ in 0..3 {
            let got = cache
                .get(key(&m), || {
                    fetches += 1;
                    Ok(m.clone())
                })
                .unwrap();
            assert_eq!(got.digest, m.digest);
        }
        assert_eq!(fetches, 1);

        let other = manifest(11);
        let failed = cache.get(key(&other), || Err(crate::error::Error::protocol("no")));
        assert!(failed.is_err());
        let again = cache.get(key(&other), || Ok(other.clone()));
        assert!(again.is_ok(), "a failure is asked again");
    }

    #[test]
    fn small_manifests_are_counted_with_their_bookkeeping() {
        let cache = ManifestCache::default();
        for n in 0..20_000 {
            let bytes = format!("{n:0400}").into_bytes();
            let m = Manifest {
                digest: Digest::sha256_of(&bytes),
                bytes,
                media_type: crate::manifest::MediaType::OciManifest,
            };
            cache.keep(key(&m), tag(&format!("t{n}")), m);
        }
        let (entries, bytes) = cache.kept();
        // 20,000 manifests of 0.4 KiB (8 MB) would nearly fit a budget of bytes alone:
        // once each entry's own cost is counted, far fewer stay.
        assert!(bytes <= BUDGET_BYTES, "{bytes} bytes kept");
        assert!(
            (2_000..5_000).contains(&entries),
            "{entries} small manifests were kept in {BUDGET_BYTES} bytes"
        );
    }

    #[test]
    fn the_oldest_manifests_leave_past_the_budget() {
        let cache = ManifestCache::default();
        let big = BUDGET_BYTES / 2 + 1;
        let (first, second) = (manifest(big), manifest(big + 1));
        cache.keep(key(&first), tag("first"), first.clone());
        cache.keep(key(&second), tag("second"), second.clone());
        let mut refetched = false;
        cache
            .get(key(&first), || {
                refetched = true;
                Ok(first.clone())
            })
            .unwrap();
        assert!(refetched, "the first was dropped for the second");
        let mut refetched = false;
        cache
            .get(key(&second), || {
                refetched = true;
                Ok(second.clone())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        // The re-fetched first pushed the second out in turn.
        assert!(refetched);
    }
}
