//! Copies one job: compare digests (HEAD), then the manifest tree — children of an index
//! first, each image's blobs before its manifest, the top manifest last — so a tag never
//! points at missing content. Blobs go: already there → mount from another repository of
//! the same registry → stream source→target with size and sha256 verified on the way.
//! Where a registry answers a mount from the repository itself (probed once), that one
//! request replaces the `HEAD` + `POST` of each new blob; once a target repository lacks a
//! tag, its tag list spares the `HEAD`s of the other tags it does not list.

mod claims;
mod referrers;
mod threads;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::http::RequestStats;
use crate::manifest::{self, Content, Manifest, MediaType, PlatformSpec};
use crate::plan::Job;
use crate::registry::{Access, Client, ManifestHead, Mount, PullQuota, Repo, UploadError};
use crate::report::Status;
use claims::{BlobClaim, BlobLedger, Claim, Claims};
pub use referrers::{MAX_DEPTH as REFERRER_DEPTH, ReferrerNote};
use referrers::{ReferrerState, ReferrerTally};
pub use threads::Threads;

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

/// Where a job stands after the first pass: done, or left for the second.
enum Step {
    Done(Status),
    /// Its tree would spend pulls of a small quota that trees of one pull should have
    /// first (see [`Copier::may_pull`]); what was learnt so far is kept.
    Deferred(Resume),
}

/// What the first pass learnt of a deferred job, so that the second asks nothing again.
struct Resume {
    /// The source's `HEAD` answer for the job's reference.
    head: ManifestHead,
    /// Whether the target was asked and lacks the manifest (else it is asked again).
    target_lacks: bool,
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
}

impl TargetRepo {
    /// Whether a child manifest must be asked for before it is copied: not when the
    /// repository had no tag when listed (at worst an interrupted run's child is pushed
    /// again).
    fn may_hold_children(&self) -> bool {
        !matches!(self.tags.get(), Some(Some(tags)) if tags.is_empty())
    }
}

/// Copies jobs; shared by all worker threads of a run.
pub struct Copier<'c> {
    client: &'c Client,
    threads: Threads,
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
    /// First-pass jobs not yet done, by source registry: what the run may still pull
    /// there (see [`Copier::may_pull`]).
    unfinished: Mutex<HashMap<String, usize>>,
}

impl<'c> Copier<'c> {
    /// A copier working with at most `threads` threads at once.
    pub fn new(
        client: &'c Client,
        threads: usize,
        dry_run: bool,
        platforms: Vec<PlatformSpec>,
    ) -> Self {
        Copier {
            client,
            threads: Threads::new(threads),
            ledger: BlobLedger::default(),
            targets: TargetRepos::default(),
            dry_run,
            platforms,
            referrers: false,
            referrer_state: ReferrerState::default(),
            force: false,
            unfinished: Mutex::new(HashMap::new()),
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

    /// Runs every job to its outcome, in parallel, and hands each to `done` as it ends;
    /// `done`'s results come back in the jobs' order. Each job is dropped once done.
    ///
    /// Jobs whose trees a small pull quota could not finish are deferred by the first
    /// pass and run one at a time in the second, after every tree of one pull.
    pub fn run_all<R: Send>(
        &self,
        jobs: Vec<Job>,
        done: impl Fn(&Job, JobOutcome) -> R + Sync,
    ) -> Vec<R> {
        {
            let mut unfinished = self.unfinished.lock().unwrap();
            for job in &jobs {
                *unfinished.entry(job.source.registry.clone()).or_default() += 1;
            }
        }
        let deferred = Mutex::new(Vec::new());
        let numbered: Vec<(usize, Job)> = jobs.into_iter().enumerate().collect();
        let mut results = self.threads.map(numbered, |(n, job)| {
            let started = Instant::now();
            let step = self.run_step(&job, None);
            *self
                .unfinished
                .lock()
                .unwrap()
                .get_mut(&job.source.registry)
                .expect("counted above") -= 1;
            match step {
                Ok(outcome) => Some(done(&job, outcome)),
                Err(resume) => {
                    deferred.lock().unwrap().push((n, job, resume, started));
                    None
                }
            }
        });
        let mut deferred = deferred.into_inner().unwrap();
        deferred.sort_unstable_by_key(|(n, ..)| *n);
        for (n, job, resume, started) in deferred {
            let mut outcome = match self.run_step(&job, Some(resume)) {
                Ok(outcome) => outcome,
                Err(_) => unreachable!("the second pass defers nothing"),
            };
            outcome.seconds = started.elapsed().as_secs_f64();
            results[n] = Some(done(&job, outcome));
        }
        results
            .into_iter()
            .map(|result| result.expect("every job ran"))
            .collect()
    }

    /// Runs one job to its outcome (or, in the first pass, to its deferral); never
    /// panics on registry errors.
    fn run_step(
        &self,
        job: &Job,
        resume: Option<Resume>,
    ) -> std::result::Result<JobOutcome, Resume> {
        let started = Instant::now();
        let tally = Tally::default();
        let mut facts = Facts::default();
        let result = if self.client.transport().is_cancelled() {
            Err(Error::cancelled())
        } else {
            self.copy_with_referrers(job, resume, &tally, &mut facts)
        };
        let (status, error) = match result {
            Ok(Step::Done(status)) => (status, None),
            Ok(Step::Deferred(resume)) => return Err(resume),
            Err(e) if e.kind == ErrorKind::Cancelled => (Status::Cancelled, Some(e)),
            Err(e) => (Status::Failed, Some(e)),
        };
        Ok(JobOutcome {
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
        })
    }

    /// Whether a job may start pulling a tree (of `media_type`, from its `HEAD`) from
    /// `source` now. While the pulls left in the source's quota are fewer than what the
    /// run may still pull there (one per unfinished job, two for this tree if it is an
    /// index), trees of one pull go first and indexes (or trees of unknown kind) wait for
    /// the second pass: a small quota then copies whole images, the same ones every run,
    /// rather than parts of many. Aliases of a tree already fetched cost nothing then.
    fn may_pull(&self, source: &Repo, media_type: Option<&MediaType>, first_pass: bool) -> bool {
        let PullQuota::Left(left) = source.pull_quota() else {
            return true;
        };
        if !first_pass || media_type.is_some_and(|m| !m.is_index()) {
            return true;
        }
        let unfinished = self
            .unfinished
            .lock()
            .unwrap()
            .get(source.registry())
            .copied()
            .unwrap_or(0);
        left >= unfinished as i64 + 2
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
    fn copy_with_referrers(
        &self,
        job: &Job,
        resume: Option<Resume>,
        tally: &Tally,
        facts: &mut Facts,
    ) -> Result<Step> {
        let step = self.copy(job, resume, tally, facts)?;
        if !self.referrers || facts.subjects.is_empty() || matches!(step, Step::Deferred(_)) {
            return Ok(step);
        }
        let (source, target) = self.repos(job);
        self.copy_referrers(&source, &target, &facts.subjects, tally)?;
        Ok(step)
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

    /// The source's `HEAD` answer for the job (digest and media type). When the target's
    /// tag list shows the tag absent, the manifest is needed anyway: one `GET` by tag
    /// (the same one pull) instead of `HEAD` + `GET`, a round trip less per new tag —
    /// but only from a source known to count no pulls, since a `HEAD` (free) must first
    /// tell a small quota which trees cost one pull.
    fn source_head(
        &self,
        job: &Job,
        source: &Repo,
        target: &Repo,
        stats: &RequestStats,
    ) -> Result<(ManifestHead, Option<Arc<Manifest>>)> {
        let source_ref = source_reference(job)?;
        let not_found = || Error::new(ErrorKind::NotFound, format!("{} not found", job.source));
        let needed_anyway = !self.dry_run
            && job.source.digest.is_none()
            && source.pull_quota() == PullQuota::Unlimited
            && (job.target.tag.as_deref())
                .is_some_and(|tag| self.targets.listed_absent(target, tag));
        if !needed_anyway {
            let head = source
                .head_manifest(&source_ref, stats)?
                .ok_or_else(not_found)?;
            return Ok((head, None));
        }
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
        Ok((head, Some(manifest)))
    }

    fn copy(
        &self,
        job: &Job,
        resume: Option<Resume>,
        tally: &Tally,
        facts: &mut Facts,
    ) -> Result<Step> {
        let stats = &tally.stats;
        let (source, target) = self.repos(job);
        let first_pass = resume.is_none();
        let (head, mut fetched, target_lacks) = match resume {
            Some(resume) => (resume.head, None, resume.target_lacks),
            None => {
                let (head, fetched) = self.source_head(job, &source, &target, stats)?;
                (head, fetched, false)
            }
        };
        let defer = |head: &ManifestHead, target_lacks: bool| {
            Ok(Step::Deferred(Resume {
                head: head.clone(),
                target_lacks,
            }))
        };
        let digest = match (&head.digest, &job.source.digest) {
            (_, Some(pinned)) => pinned.clone(),
            (Some(digest), None) => digest.clone(),
            (None, None) => {
                if fetched.is_none() && !self.may_pull(&source, None, first_pass) {
                    return defer(&head, false);
                }
                let manifest = match fetched.take() {
                    Some(manifest) => manifest,
                    None => source.get_manifest(&source_reference(job)?, stats)?,
                };
                let digest = manifest.digest.clone();
                fetched = Some(manifest);
                digest
            }
        };
        facts.source_digest = Some(digest.clone());

        // With a platform filter, an index is reduced to the wanted platforms: its bytes,
        // and so its digest, change. Only the comparison with the target needs it early.
        if !self.platforms.is_empty() {
            if fetched.is_none() && !self.may_pull(&source, head.media_type.as_ref(), first_pass) {
                return defer(&head, false);
            }
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
        if !target_lacks
            && let Some(status) = self.unchanged_in_target(
                job,
                &target,
                &target_ref,
                &digest,
                &push_digest,
                tally,
                facts,
            )?
        {
            return Ok(Step::Done(status));
        }
        if fetched.is_none()
            && (!self.dry_run || self.referrers)
            && !self.may_pull(&source, head.media_type.as_ref(), first_pass)
        {
            return defer(&head, true);
        }
        if self.dry_run {
            if self.referrers {
                let manifest = match &fetched {
                    Some(manifest) => manifest.clone(),
                    None => source.get_manifest(digest.as_str(), stats)?,
                };
                facts.subjects = self.subjects_of(&digest, &manifest)?;
            }
            return Ok(Step::Done(Status::WouldCopy));
        }

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
        Ok(Step::Done(Status::Copied))
    }

    /// Whether the target already has `push_digest` under `target_ref` (then, with
    /// `--referrers`, the subjects are read from the target's copy, sparing the source's
    /// pull quota): `Some(Unchanged)`, else `None`.
    #[allow(clippy::too_many_arguments)]
    fn unchanged_in_target(
        &self,
        job: &Job,
        target: &Repo,
        target_ref: &str,
        digest: &Digest,
        push_digest: &Digest,
        tally: &Tally,
        facts: &mut Facts,
    ) -> Result<Option<Status>> {
        let stats = &tally.stats;
        let head = match &job.target.tag {
            Some(tag) if self.targets.listed_absent(target, tag) => None,
            Some(_) => {
                let head = target.head_manifest(target_ref, stats)?;
                if head.is_none() {
                    self.targets.list(target, stats);
                }
                head
            }
            None => target.head_manifest(target_ref, stats)?,
        };
        let Some(head) = head else {
            return Ok(None);
        };
        let target_digest = match head.digest {
            Some(d) => Some(d),
            None => target
                .get_manifest(target_ref, stats)
                .ok()
                .map(|m| m.digest.clone()),
        };
        if target_digest.as_ref() != Some(push_digest) || self.force {
            return Ok(None);
        }
        if self.referrers {
            // The children of an index, read from the target's copy (its digest is
            // known; the source's pull quota is spared).
            let index = head.media_type.as_ref().is_none_or(MediaType::is_index);
            facts.subjects = if index {
                let there = target.get_manifest(push_digest.as_str(), stats)?;
                self.subjects_of(digest, &there)?
            } else {
                vec![digest.clone()]
            };
        }
        facts.media_type = head.media_type;
        Ok(Some(Status::Unchanged))
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
        let there = self.targets.get(target);
        self.threads.for_each(&children, |(child, _size)| {
            match there.children.claim(child) {
                Claim::Done(()) => Ok(()),
                Claim::Owner(guard) => {
                    let check = !self.force && there.may_hold_children();
                    self.copy_child(source, target, child, check, depth, tally)?;
                    guard.done(());
                    Ok(())
                }
            }
        })
    }

    /// One child manifest of an index at `depth`, owned by this job: `HEAD` when `check`
    /// says so, else (or when absent) its own tree and then the manifest itself.
    fn copy_child(
        &self,
        source: &Repo,
        target: &Repo,
        child: &Digest,
        check: bool,
        depth: usize,
        tally: &Tally,
    ) -> Result<()> {
        let stats = &tally.stats;
        if check && target.head_manifest(child.as_str(), stats)?.is_some() {
            return Ok(());
        }
        let child_manifest = source.get_manifest(child.as_str(), stats)?;
        self.copy_tree(source, target, &child_manifest, depth + 1, tally)?;
        target.put_manifest(child.as_str(), &child_manifest, stats)
    }

    /// Every blob of an image manifest, in parallel: first those nobody else is
    /// uploading, then (waiting for their uploads) the others, so that a shared layer
    /// another job is uploading holds this job up only once its own blobs are done.
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
        let busy = Mutex::new(Vec::new());
        self.threads.for_each(&blobs, |blob| -> Result<()> {
            let done = self.copy_blob(source, target, blob, false, tally)?;
            if !done {
                busy.lock().unwrap().push(blob.clone());
            }
            Ok(())
        })?;
        let busy = busy.into_inner().unwrap();
        self.threads.for_each(&busy, |blob| {
            self.copy_blob(source, target, blob, true, tally).map(drop)
        })
    }

    /// The blob ladder: present → mount → stream. Without `wait`, a blob another job is
    /// uploading is left (`Ok(false)`); with it, that upload is waited for.
    fn copy_blob(
        &self,
        source: &Repo,
        target: &Repo,
        (digest, size): &(Digest, u64),
        wait: bool,
        tally: &Tally,
    ) -> Result<bool> {
        let (digest, size) = (digest, *size);
        let registry = target.registry();
        match self.ledger.claim(registry, digest, target.name(), wait) {
            BlobClaim::Busy => return Ok(false),
            BlobClaim::Present => {
                tally.skipped.fetch_add(1, Ordering::Relaxed);
            }
            BlobClaim::MountFrom(from) => {
                self.mount_or_stream(source, target, &from, digest, size, tally)?;
                self.ledger.record(registry, digest, target.name());
            }
            BlobClaim::Owner(guard) => {
                self.owner_copy(source, target, digest, size, tally)?;
                guard.uploaded(target.name());
            }
        }
        Ok(true)
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

/// The source reference a job copies: its digest when pinned, else its tag.
fn source_reference(job: &Job) -> Result<String> {
    match (&job.source.digest, &job.source.tag) {
        (Some(digest), _) => Ok(digest.to_string()),
        (None, Some(tag)) => Ok(tag.clone()),
        (None, None) => Err(Error::protocol("job without tag or digest")),
    }
}
