//! Copies one job: compare digests (HEAD), then the manifest tree — children of an index
//! first, each image's blobs before its manifest, the top manifest last — so a tag never
//! points at missing content. Blobs go: already there → mount from another repository of
//! the same registry → stream source→target with size and sha256 verified on the way.
//! Where a registry answers a mount from the repository itself (probed once), that one
//! request replaces the `HEAD` + `POST` of each new blob; once a target repository lacks a
//! tag, its tag list spares the `HEAD`s of the other tags it does not list.

mod claims;
mod referrers;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use rayon::prelude::*;

use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::http::RequestStats;
use crate::manifest::{self, Content, Manifest, MediaType, PlatformSpec};
use crate::plan::Job;
use crate::registry::{Access, Client, ManifestHead, Mount, Repo, TreeGuard, UploadError};
use crate::report::Status;
use claims::{Claim, Claims};
pub use referrers::{MAX_DEPTH as REFERRER_DEPTH, ReferrerNote};
use referrers::{ReferrerState, ReferrerTally};

/// What copying one job did.
#[derive(Debug)]
pub struct JobOutcome {
    pub status: Status,
    pub source_digest: Option<Digest>,
    /// The digest in the target; differs from the source's when a platform filter
    /// rewrote an index.
    pub target_digest: Option<Digest>,
    pub media_type: Option<MediaType>,
    pub bytes_transferred: u64,
    pub blobs_transferred: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    pub seconds: f64,
    pub attempts: u32,
    pub error: Option<Error>,
    /// With `--referrers`: referrers copied (in a dry run: that would be) and found.
    pub referrers_copied: u64,
    pub referrers_unchanged: u64,
    pub referrers: Vec<ReferrerNote>,
}

/// What is learnt about a job on the way, reported even when it fails later.
#[derive(Default)]
struct Facts {
    source_digest: Option<Digest>,
    target_digest: Option<Digest>,
    media_type: Option<MediaType>,
    /// The manifests whose referrers follow the image (with `--referrers`).
    subjects: Vec<Digest>,
}

#[derive(Default)]
struct Tally {
    stats: RequestStats,
    bytes: AtomicU64,
    transferred: AtomicU64,
    mounted: AtomicU64,
    skipped: AtomicU64,
    referrers: ReferrerTally,
}

thread_local! {
    /// How many blob waits this thread is running other work inside of.
    static NESTED_WAITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many manifest trees this thread holds (rayon runs other jobs inside waits).
    static TREES_HELD: Cell<usize> = const { Cell::new(0) };
}

/// A manifest tree this thread is fetching (see [`Repo::enter_tree`]).
struct HeldTree<'r> {
    _guard: TreeGuard<'r>,
}

impl<'r> HeldTree<'r> {
    fn enter(source: &'r Repo) -> Self {
        let nested = TREES_HELD.with(|held| held.get() > 0);
        let guard = source.enter_tree(nested);
        TREES_HELD.with(|held| held.set(held.get() + 1));
        HeldTree { _guard: guard }
    }
}

impl Drop for HeldTree<'_> {
    fn drop(&mut self) {
        TREES_HELD.with(|held| held.set(held.get() - 1));
    }
}
/// Bounds the stack depth of work run while waiting for a blob.
const MAX_NESTED_WAITS: usize = 8;
/// How often a waiter with nothing else to do looks for new work.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Where blobs are known to be in each target registry, and which are being uploaded
/// right now, so that each blob crosses the wire at most once per target registry.
#[derive(Default)]
struct BlobLedger {
    state: Mutex<HashMap<(String, Digest), BlobState>>,
    changed: Condvar,
}

enum BlobState {
    Uploading,
    In(Vec<String>),
}

enum BlobClaim {
    /// Known to be in the target repository already.
    Present,
    /// Known in another repository of the same registry.
    MountFrom(String),
    /// Nobody has it or is uploading it: the caller must, and report back.
    Owner,
}

impl BlobLedger {
    fn claim(&self, registry: &str, digest: &Digest, repo: &str) -> BlobClaim {
        let key = (registry.to_string(), digest.clone());
        let mut state = self.state.lock().unwrap();
        loop {
            match state.get(&key) {
                Some(BlobState::Uploading) => {
                    // Another job is uploading it. Blocking here would take this worker
                    // away from every other job for the whole upload (a shared base or a
                    // big layer: seconds), so run other pending work meanwhile; sleep only
                    // when there is none (or when nested too deep).
                    drop(state);
                    let ran = NESTED_WAITS.with(|depth| {
                        if depth.get() >= MAX_NESTED_WAITS {
                            return false;
                        }
                        depth.set(depth.get() + 1);
                        let ran = rayon::yield_now() == Some(rayon::Yield::Executed);
                        depth.set(depth.get() - 1);
                        ran
                    });
                    state = self.state.lock().unwrap();
                    if !ran && matches!(state.get(&key), Some(BlobState::Uploading)) {
                        state = self.changed.wait_timeout(state, WAIT_POLL).unwrap().0;
                    }
                }
                Some(BlobState::In(repos)) if repos.iter().any(|r| r == repo) => {
                    return BlobClaim::Present;
                }
                Some(BlobState::In(repos)) => return BlobClaim::MountFrom(repos[0].clone()),
                None => {
                    state.insert(key, BlobState::Uploading);
                    return BlobClaim::Owner;
                }
            }
        }
    }

    /// Records that `repo` has the blob (ends an ownership, if any).
    fn record(&self, registry: &str, digest: &Digest, repo: &str) {
        let key = (registry.to_string(), digest.clone());
        let mut state = self.state.lock().unwrap();
        match state.get_mut(&key) {
            Some(BlobState::In(repos)) => {
                if !repos.iter().any(|r| r == repo) {
                    repos.push(repo.to_string());
                }
            }
            _ => {
                state.insert(key, BlobState::In(vec![repo.to_string()]));
            }
        }
        self.changed.notify_all();
    }

    /// Gives up an ownership after a failure, so that a waiting job may try.
    fn release(&self, registry: &str, digest: &Digest) {
        let key = (registry.to_string(), digest.clone());
        let mut state = self.state.lock().unwrap();
        if matches!(state.get(&key), Some(BlobState::Uploading)) {
            state.remove(&key);
        }
        self.changed.notify_all();
    }
}

/// What the run knows of each target repository's manifests, to skip `HEAD`s whose
/// answer is known (its tags when first listed) and to copy each child manifest of an
/// index once, even when several jobs reach the same index at the same time (tags that
/// alias each other): a registry may lose one of two concurrent `PUT`s of one manifest.
#[derive(Default)]
struct TargetRepos {
    repos: Mutex<HashMap<(String, String), Arc<TargetRepo>>>,
}

#[derive(Default)]
struct TargetRepo {
    /// Listed after the first `HEAD` that found a tag missing; `None` inside when the
    /// list could not be read (every tag is then checked with `HEAD`).
    tags: OnceLock<Option<HashSet<String>>>,
    /// Child manifests of indexes: known there, or being copied by a job.
    children: Claims<Digest, ()>,
}

/// What a job does about one child manifest of an index.
#[derive(Debug, PartialEq)]
enum ChildClaim {
    /// Known to be in the target repository.
    Present,
    /// This job copies it (after a `HEAD` when `check` says so) and reports back.
    Owner { check: bool },
    /// Another job is copying it and this thread may not wait for it (see
    /// [`claims`]): it copies the child too.
    Duplicate,
}

impl TargetRepos {
    fn get(&self, target: &Repo) -> Arc<TargetRepo> {
        let key = (target.registry().to_string(), target.name().to_string());
        self.repos.lock().unwrap().entry(key).or_default().clone()
    }

    /// Whether the tag list, if read, shows `tag` absent (then no `HEAD` is needed).
    fn listed_absent(&self, target: &Repo, tag: &str) -> bool {
        matches!(self.get(target).tags.get(), Some(Some(tags)) if !tags.contains(tag))
    }

    /// The repository's tags, listed on first use (`None` when they cannot be listed:
    /// then every tag is asked for).
    fn tags(&self, repo: &Repo, stats: &RequestStats) -> Option<HashSet<String>> {
        self.list(repo, stats);
        self.get(repo).tags.get().cloned().flatten()
    }

    /// After a `HEAD` found a tag missing: reads the repository's tag list, once.
    fn list(&self, target: &Repo, stats: &RequestStats) {
        self.get(target)
            .tags
            .get_or_init(|| match target.list_tags_if_any(stats) {
                Ok(tags) => Some(tags.unwrap_or_default().into_iter().collect()),
                Err(_) => None,
            });
    }

    /// Claims `child` for copying, or learns it is there (see [`claims`]).
    fn claim_child(&self, target: &Repo, child: &Digest) -> ChildClaim {
        let repo = self.get(target);
        // No HEAD when the repository had no tag when listed: copy it (at worst an
        // interrupted run's child is pushed again).
        let check = !matches!(repo.tags.get(), Some(Some(tags)) if tags.is_empty());
        match repo.children.claim(child) {
            Claim::Done(()) => ChildClaim::Present,
            Claim::Owner => ChildClaim::Owner { check },
            Claim::Duplicate => ChildClaim::Duplicate,
        }
    }

    fn child_present(&self, target: &Repo, child: &Digest) -> bool {
        self.get(target).children.is_done(child)
    }

    /// Ends a job's claim: `present` when the child is now there, else others may try.
    fn finish_child(&self, target: &Repo, child: &Digest, claim: &ChildClaim, present: bool) {
        let owner = matches!(claim, ChildClaim::Owner { .. });
        self.get(target)
            .children
            .finish(child, owner, present.then_some(()));
    }
}

/// Copies jobs; shared by all worker threads of a run.
pub struct Copier<'c> {
    client: &'c Client,
    ledger: BlobLedger,
    targets: TargetRepos,
    dry_run: bool,
    /// Platforms to keep in indexes; empty = all.
    platforms: Vec<PlatformSpec>,
    /// Whether referrers (signatures, SBOMs, attestations) follow their images.
    referrers: bool,
    referrer_state: ReferrerState,
    /// `--force`: push manifests even when the target already has the digest.
    force: bool,
}

impl<'c> Copier<'c> {
    pub fn new(client: &'c Client, dry_run: bool, platforms: Vec<PlatformSpec>) -> Self {
        Copier {
            client,
            ledger: BlobLedger::default(),
            targets: TargetRepos::default(),
            dry_run,
            platforms,
            referrers: false,
            referrer_state: ReferrerState::default(),
            force: false,
        }
    }

    /// With `on`, referrers follow every image copied or found unchanged.
    pub fn with_referrers(mut self, on: bool) -> Self {
        self.referrers = on;
        self
    }

    /// `--force`: manifests are pushed again even when the target has the same digest
    /// (blobs the target has are still skipped).
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Runs one job to its outcome; never panics on registry errors.
    pub fn run(&self, job: &Job) -> JobOutcome {
        let started = Instant::now();
        let tally = Tally::default();
        let mut facts = Facts::default();
        let result = if self.client.transport().is_cancelled() {
            Err(Error::cancelled())
        } else {
            self.copy_with_referrers(job, &tally, &mut facts)
        };
        let (status, error) = match result {
            Ok(status) => (status, None),
            Err(e) if e.kind == ErrorKind::Cancelled => (Status::Cancelled, Some(e)),
            Err(e) => (Status::Failed, Some(e)),
        };
        JobOutcome {
            status,
            source_digest: facts.source_digest,
            target_digest: facts.target_digest,
            media_type: facts.media_type,
            bytes_transferred: tally.bytes.into_inner(),
            blobs_transferred: tally.transferred.into_inner(),
            blobs_mounted: tally.mounted.into_inner(),
            blobs_skipped: tally.skipped.into_inner(),
            seconds: started.elapsed().as_secs_f64(),
            attempts: 1 + tally.stats.retries.into_inner(),
            error,
            referrers_copied: tally.referrers.copied.into_inner(),
            referrers_unchanged: tally.referrers.unchanged.into_inner(),
            referrers: tally.referrers.notes.into_inner().unwrap(),
        }
    }

    /// The job's source repository (pull) and target repository (push, or pull in a dry
    /// run).
    fn repos(&self, job: &Job) -> (Repo<'c>, Repo<'c>) {
        let access = if self.dry_run {
            Access::Pull
        } else {
            Access::Push
        };
        (
            self.client
                .repo(&job.source.registry, &job.source.repository, Access::Pull),
            self.client
                .repo(&job.target.registry, &job.target.repository, access),
        )
    }

    /// The job, then (with `--referrers`) what refers to its manifests.
    fn copy_with_referrers(&self, job: &Job, tally: &Tally, facts: &mut Facts) -> Result<Status> {
        let status = self.copy(job, tally, facts)?;
        if !self.referrers || facts.subjects.is_empty() {
            return Ok(status);
        }
        let (source, target) = self.repos(job);
        self.copy_referrers(&source, &target, &facts.subjects, tally)?;
        Ok(status)
    }

    /// The subjects of a job: the top manifest unless a platform filter rewrote it (its
    /// referrers name a digest the target does not get), and the children of an index.
    fn subjects_of(&self, source_digest: &Digest, manifest: &Manifest) -> Result<Vec<Digest>> {
        let mut subjects = Vec::new();
        if manifest.digest == *source_digest {
            subjects.push(source_digest.clone());
        }
        if let Content::Index { children } = manifest::content(manifest)? {
            subjects.extend(children.into_iter().map(|(child, _)| child));
        }
        Ok(subjects)
    }

    fn copy(&self, job: &Job, tally: &Tally, facts: &mut Facts) -> Result<Status> {
        let stats = &tally.stats;
        let (source, target) = self.repos(job);
        let source_ref = match (&job.source.digest, &job.source.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => return Err(Error::protocol("job without tag or digest")),
        };

        // The source digest: HEAD (free on Docker Hub's rate limit), else GET. When the
        // target's tag list shows the tag absent, the manifest is needed anyway: one GET by
        // tag (the same one pull) instead of HEAD + GET, a round trip less per new tag.
        let mut fetched: Option<Arc<Manifest>> = None;
        // Entered before the first manifest GET of this job, left when it ends.
        let mut tree: Option<HeldTree> = None;
        let not_found = || Error::new(ErrorKind::NotFound, format!("{} not found", job.source));
        let needed_anyway = !self.dry_run
            && job.source.digest.is_none()
            && (job.target.tag.as_deref())
                .is_some_and(|tag| self.targets.listed_absent(&target, tag));
        let head = if needed_anyway {
            tree.get_or_insert_with(|| HeldTree::enter(&source));
            let manifest = source.get_manifest(&source_ref, stats).map_err(|e| {
                if e.status == Some(404) {
                    not_found()
                } else {
                    e
                }
            })?;
            let head = ManifestHead {
                digest: Some(manifest.digest.clone()),
                media_type: Some(manifest.media_type.clone()),
            };
            fetched = Some(manifest);
            Some(head)
        } else {
            source.head_manifest(&source_ref, stats)?
        };
        let digest = match head {
            None => return Err(not_found()),
            Some(head) => match (head.digest, &job.source.digest) {
                (_, Some(pinned)) => pinned.clone(),
                (Some(digest), None) => digest,
                (None, None) => {
                    tree.get_or_insert_with(|| HeldTree::enter(&source));
                    let manifest = source.get_manifest(&source_ref, stats)?;
                    let digest = manifest.digest.clone();
                    fetched = Some(manifest);
                    digest
                }
            },
        };
        facts.source_digest = Some(digest.clone());

        // With a platform filter, an index is reduced to the wanted platforms: its bytes,
        // and so its digest, change. Only the comparison with the target needs it early.
        if !self.platforms.is_empty() {
            tree.get_or_insert_with(|| HeldTree::enter(&source));
            let manifest = match fetched.take() {
                Some(manifest) => manifest,
                None => source.get_manifest(digest.as_str(), stats)?,
            };
            fetched = Some(if manifest.media_type.is_index() {
                Arc::new(manifest::filter_index(&manifest, &self.platforms)?)
            } else {
                manifest
            });
        }
        let push_digest = fetched
            .as_ref()
            .map_or_else(|| digest.clone(), |m| m.digest.clone());
        facts.target_digest = Some(push_digest.clone());

        let target_ref = job
            .target
            .tag
            .clone()
            .unwrap_or_else(|| push_digest.to_string());
        let head = match &job.target.tag {
            Some(tag) if self.targets.listed_absent(&target, tag) => None,
            Some(_) => {
                let head = target.head_manifest(&target_ref, stats)?;
                if head.is_none() {
                    self.targets.list(&target, stats);
                }
                head
            }
            None => target.head_manifest(&target_ref, stats)?,
        };
        if let Some(head) = head {
            let target_digest = match head.digest {
                Some(d) => Some(d),
                None => target
                    .get_manifest(&target_ref, stats)
                    .ok()
                    .map(|m| m.digest.clone()),
            };
            if target_digest.as_ref() == Some(&push_digest) && !self.force {
                if self.referrers {
                    // The children of an index, read from the target's copy (its
                    // digest is known; the source's pull quota is spared).
                    let index = head.media_type.as_ref().is_none_or(MediaType::is_index);
                    facts.subjects = if index {
                        let there = target.get_manifest(push_digest.as_str(), stats)?;
                        self.subjects_of(&digest, &there)?
                    } else {
                        vec![digest.clone()]
                    };
                }
                facts.media_type = head.media_type;
                return Ok(Status::Unchanged);
            }
        }
        if self.dry_run {
            if self.referrers {
                tree.get_or_insert_with(|| HeldTree::enter(&source));
                let manifest = match &fetched {
                    Some(manifest) => manifest.clone(),
                    None => source.get_manifest(digest.as_str(), stats)?,
                };
                facts.subjects = self.subjects_of(&digest, &manifest)?;
            }
            return Ok(Status::WouldCopy);
        }

        tree.get_or_insert_with(|| HeldTree::enter(&source));
        let manifest = match fetched {
            Some(manifest) => manifest,
            None => source.get_manifest(digest.as_str(), stats)?,
        };
        facts.media_type = Some(manifest.media_type.clone());
        if self.referrers {
            facts.subjects = self.subjects_of(&digest, &manifest)?;
        }
        self.copy_tree(&source, &target, &manifest, 1, tally)?;
        target.put_manifest(&target_ref, &manifest, stats)?;
        Ok(Status::Copied)
    }

    /// What a manifest references, before the manifest itself: an image's blobs, or an
    /// index's children (each child's own tree first, then the child), in parallel.
    /// `depth` counts the indexes from the top one down to `manifest`; more than
    /// [`manifest::MAX_INDEX_DEPTH`] fails, naming the index that nests too deep.
    fn copy_tree(
        &self,
        source: &Repo,
        target: &Repo,
        manifest: &Manifest,
        depth: usize,
        tally: &Tally,
    ) -> Result<()> {
        let Content::Index { children } = manifest::content(manifest)? else {
            return self.copy_image(source, target, manifest, tally);
        };
        if depth > manifest::MAX_INDEX_DEPTH {
            return Err(Error::protocol(format!(
                "index {} in {}/{} nests indexes more than {} levels deep",
                manifest.digest,
                source.registry(),
                source.name(),
                manifest::MAX_INDEX_DEPTH
            )));
        }
        children
            .par_iter()
            .try_for_each(|(child, _size)| -> Result<()> {
                let claim = self.targets.claim_child(target, child);
                if claim == ChildClaim::Present {
                    return Ok(());
                }
                let result = self.copy_child(source, target, child, &claim, depth, tally);
                self.targets
                    .finish_child(target, child, &claim, result.is_ok());
                result
            })
    }

    /// One child manifest of an index at `depth`: `HEAD` when the claim says so, else (or
    /// when absent) its own tree and then the manifest itself.
    fn copy_child(
        &self,
        source: &Repo,
        target: &Repo,
        child: &Digest,
        claim: &ChildClaim,
        depth: usize,
        tally: &Tally,
    ) -> Result<()> {
        let stats = &tally.stats;
        let check = !self.force && matches!(claim, ChildClaim::Owner { check: true });
        if check && target.head_manifest(child.as_str(), stats)?.is_some() {
            return Ok(());
        }
        let child_manifest = source.get_manifest(child.as_str(), stats)?;
        self.copy_tree(source, target, &child_manifest, depth + 1, tally)?;
        // A job rayon ran on this thread during the blobs may have pushed it meanwhile.
        if self.targets.child_present(target, child) {
            return Ok(());
        }
        target.put_manifest(child.as_str(), &child_manifest, stats)
    }

    /// Every blob of an image manifest, in parallel.
    fn copy_image(
        &self,
        source: &Repo,
        target: &Repo,
        manifest: &Manifest,
        tally: &Tally,
    ) -> Result<()> {
        let Content::Image { blobs } = manifest::content(manifest)? else {
            return Err(Error::protocol(format!(
                "manifest {} is an index where an image was expected",
                manifest.digest
            )));
        };
        blobs
            .par_iter()
            .try_for_each(|(digest, size)| self.copy_blob(source, target, digest, *size, tally))
    }

    /// The blob ladder: present → mount → stream.
    fn copy_blob(
        &self,
        source: &Repo,
        target: &Repo,
        digest: &Digest,
        size: u64,
        tally: &Tally,
    ) -> Result<()> {
        let registry = target.registry();
        match self.ledger.claim(registry, digest, target.name()) {
            BlobClaim::Present => {
                tally.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            BlobClaim::MountFrom(from) => {
                self.mount_or_stream(source, target, &from, digest, size, tally)?;
                self.ledger.record(registry, digest, target.name());
                Ok(())
            }
            BlobClaim::Owner => {
                let result = self.owner_copy(source, target, digest, size, tally);
                match &result {
                    Ok(()) => self.ledger.record(registry, digest, target.name()),
                    Err(_) => self.ledger.release(registry, digest),
                }
                result
            }
        }
    }

    fn owner_copy(
        &self,
        source: &Repo,
        target: &Repo,
        digest: &Digest,
        size: u64,
        tally: &Tally,
    ) -> Result<()> {
        let stats = &tally.stats;
        // Same registry, other repository: a mount needs no transfer at all.
        let same_registry =
            source.registry() == target.registry() && source.name() != target.name();
        if target.mounts_in_place() {
            if same_registry {
                return self.mount_or_stream(source, target, source.name(), digest, size, tally);
            }
            // One request: 201 = the repository has it; 202 = the upload session for it.
            match target.mount_blob(digest, target.name(), stats) {
                Ok(Mount::Mounted) => {
                    tally.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Mount::Upload(url)) => {
                    return self.stream_blob(source, target, digest, size, Some(url), tally);
                }
                Err(e) if e.kind == ErrorKind::Cancelled => return Err(e),
                Err(_) => {} // the ladder below, request by request
            }
        }
        if target.blob_exists(digest, stats)? {
            tally.skipped.fetch_add(1, Ordering::Relaxed);
            target.probe_self_mount(digest, stats);
            return Ok(());
        }
        if same_registry {
            return self.mount_or_stream(source, target, source.name(), digest, size, tally);
        }
        self.stream_blob(source, target, digest, size, None, tally)?;
        target.probe_self_mount(digest, stats);
        Ok(())
    }

    /// A cross-repository mount; when the registry opens an upload instead (no mount
    /// support, or it does not know the blob there) or refuses, a normal upload follows.
    fn mount_or_stream(
        &self,
        source: &Repo,
        target: &Repo,
        from: &str,
        digest: &Digest,
        size: u64,
        tally: &Tally,
    ) -> Result<()> {
        match target.mount_blob(digest, from, &tally.stats) {
            Ok(Mount::Mounted) => {
                tally.mounted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Mount::Upload(url)) => {
                self.stream_blob(source, target, digest, size, Some(url), tally)
            }
            Err(e) if e.kind == ErrorKind::Cancelled => Err(e),
            Err(_) => self.stream_blob(source, target, digest, size, None, tally),
        }
    }

    /// GET from the source piped into a PUT to the target, verified on the way; the
    /// whole transfer is retried on transient failures.
    fn stream_blob(
        &self,
        source: &Repo,
        target: &Repo,
        digest: &Digest,
        size: u64,
        mut upload_url: Option<String>,
        tally: &Tally,
    ) -> Result<()> {
        let stats = &tally.stats;
        self.client.transport().retrying(stats, || {
            let attempt = |url: Option<String>| -> std::result::Result<(), UploadError> {
                let url = match url {
                    Some(url) => url,
                    None => target.start_upload(stats)?,
                };
                // A config read while planning (tag filters) is not fetched again.
                let body: Box<dyn std::io::Read> = match source.held_blob(digest) {
                    Some(bytes) => Box::new(std::io::Cursor::new(bytes.to_vec())),
                    None => Box::new(source.get_blob(digest, stats)?.into_reader()),
                };
                let mut reader = VerifyingReader::new(body, digest.clone(), size);
                let result = target.upload_blob(&url, digest, &mut reader, size, stats);
                if let Some(problem) = reader.failure() {
                    // Corruption on the way: retry (it may be the network), else fail.
                    return Err(UploadError::Failed(Error {
                        retryable: true,
                        ..Error::digest(format!(
                            "blob from {}/{}: {problem}",
                            source.registry(),
                            source.name()
                        ))
                    }));
                }
                result
            };
            match attempt(upload_url.take()) {
                // The registry refused the whole body at once: again, in chunks.
                Err(UploadError::MonolithicRefused(_)) => attempt(None)?,
                other => other?,
            }
            tally.bytes.fetch_add(size, Ordering::Relaxed);
            tally.transferred.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn the_ledger_gives_one_owner_then_mounts_then_presence() {
        let ledger = BlobLedger::default();
        let blob = digest(1);
        assert!(matches!(
            ledger.claim("r.io", &blob, "a/one"),
            BlobClaim::Owner
        ));
        ledger.record("r.io", &blob, "a/one");
        assert!(matches!(
            ledger.claim("r.io", &blob, "a/one"),
            BlobClaim::Present
        ));
        match ledger.claim("r.io", &blob, "b/two") {
            BlobClaim::MountFrom(repo) => assert_eq!(repo, "a/one"),
            _ => panic!("another repository of the same registry mounts"),
        }
        // Another registry knows nothing of it.
        assert!(matches!(
            ledger.claim("s.io", &blob, "a/one"),
            BlobClaim::Owner
        ));
    }

    #[test]
    fn a_failed_owner_releases_and_a_waiter_takes_over() {
        let ledger = Arc::new(BlobLedger::default());
        let blob = digest(2);
        assert!(matches!(
            ledger.claim("r.io", &blob, "a/one"),
            BlobClaim::Owner
        ));
        let waiter = {
            let ledger = ledger.clone();
            let blob = blob.clone();
            std::thread::spawn(move || {
                matches!(ledger.claim("r.io", &blob, "a/two"), BlobClaim::Owner)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "the waiter waits while the owner uploads"
        );
        ledger.release("r.io", &blob);
        assert!(
            waiter.join().unwrap(),
            "after a release the waiter owns the upload"
        );
    }

    #[test]
    fn a_waiter_sees_the_owners_success() {
        let ledger = Arc::new(BlobLedger::default());
        let blob = digest(3);
        assert!(matches!(
            ledger.claim("r.io", &blob, "a/one"),
            BlobClaim::Owner
        ));
        let waiter = {
            let ledger = ledger.clone();
            let blob = blob.clone();
            std::thread::spawn(move || match ledger.claim("r.io", &blob, "a/two") {
                BlobClaim::MountFrom(repo) => repo,
                _ => String::from("not a mount"),
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        ledger.record("r.io", &blob, "a/one");
        assert_eq!(waiter.join().unwrap(), "a/one");
    }
}
