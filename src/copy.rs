//! Copies jobs: compare digests (HEAD), then the manifest tree — children of an index
//! first, each image's blobs before its manifest, the top manifest last — so a tag never
//! points at missing content. The copy talks to its two ends only through
//! [`crate::end::End`]; which kind of end they are (a registry, later an OCI layout) it
//! does not know.
//!
//! `job` is one job's ladder (source digest, target comparison, pull-quota deferral),
//! `tree` the manifest tree and the blob ladder, `targets` what the run knows of target
//! repositories, `claims` the work several jobs can reach at once (done once),
//! `referrers` what follows an image. Its threads come from [`crate::threads`].

mod claims;
mod job;
mod referrers;
mod stream;
mod targets;
mod tree;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::digest::Digest;
use crate::end::{Access, End, Ends, ManifestHead, PullQuota};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{RequestStats, Transport};
use crate::manifest::{self, Content, Manifest, MediaType, PlatformSpec};
use crate::plan::{Job, Jobs};
use crate::reference::{Tag, TagOrDigest};
use crate::report::Status;
pub use crate::threads::Threads;
use claims::BlobLedger;
pub use referrers::{MAX_DEPTH as REFERRER_DEPTH, ReferrerNote};
use referrers::{ReferrerState, ReferrerTally};
use targets::{TargetRepo, TargetRepos};

/// Whether the copy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Copy,
    /// `--dry-run`: read both sides, write nothing, report what would be copied.
    DryRun,
}

/// When a manifest the target already has (same digest) is pushed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Only what differs.
    Changed,
    /// `--force`: every manifest (blobs the target has are still skipped).
    Always,
}

/// What happens to a target tag that names another image than the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// It is moved to the source's image (the default).
    Always,
    /// `--overwrite never`: it is left alone and reported `drifted`.
    Never,
}

/// How a run copies.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub mode: Mode,
    pub push: Push,
    pub overwrite: Overwrite,
    /// Platforms to keep in indexes; empty = all.
    pub platforms: Vec<PlatformSpec>,
    /// Whether referrers (signatures, SBOMs, attestations) follow their images.
    pub referrers: bool,
    /// Threads working at once.
    pub threads: usize,
}

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

/// What one job counts.
#[derive(Default)]
struct Tally {
    stats: RequestStats,
    bytes: AtomicU64,
    transferred: AtomicU64,
    mounted: AtomicU64,
    skipped: AtomicU64,
    referrers: ReferrerTally,
}

/// One job's view of the run: its two ends, what the run knows of its target repository
/// (looked up once per job), and what it counts.
struct Ctx<'j> {
    source: &'j dyn End,
    target: &'j dyn End,
    target_repo: Arc<TargetRepo>,
    tally: &'j Tally,
}

impl Ctx<'_> {
    fn stats(&self) -> &RequestStats {
        &self.tally.stats
    }
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

/// Copies jobs; shared by all threads of a run.
pub struct Copier<'c> {
    /// Opens the jobs' sources.
    source_ends: &'c dyn Ends,
    /// Opens the jobs' targets (the same as the sources' for a sync; a layout for an
    /// export).
    target_ends: &'c dyn Ends,
    transport: &'c Transport,
    options: CopyOptions,
    threads: Threads,
    ledger: BlobLedger,
    targets: TargetRepos,
    referrer_state: ReferrerState,
    /// First-pass jobs not yet done, by source registry: what the run may still pull
    /// there (see [`Copier::may_pull`]).
    unfinished: Mutex<HashMap<String, usize>>,
}

impl<'c> Copier<'c> {
    /// A copier opening its ends with `ends`; `transport` retries transfers and tells
    /// when the run is cancelled.
    pub fn new(ends: &'c dyn Ends, transport: &'c Transport, options: CopyOptions) -> Self {
        Self::between(ends, ends, transport, options)
    }

    /// A copier reading its sources from `sources` and writing its targets to
    /// `targets`: a registry and an OCI layout, for the air gap.
    pub fn between(
        sources: &'c dyn Ends,
        targets: &'c dyn Ends,
        transport: &'c Transport,
        options: CopyOptions,
    ) -> Self {
        Copier {
            source_ends: sources,
            target_ends: targets,
            transport,
            threads: Threads::new(options.threads),
            options,
            ledger: BlobLedger::default(),
            targets: TargetRepos::default(),
            referrer_state: ReferrerState::default(),
            unfinished: Mutex::new(HashMap::new()),
        }
    }

    fn dry_run(&self) -> bool {
        self.options.mode == Mode::DryRun
    }

    /// Runs every job to its outcome, in parallel, and hands each to `done` as it ends;
    /// `done`'s results come back in the jobs' order. Each job is made whole from the
    /// plan's compact list when it starts, and dropped once done.
    ///
    /// Jobs whose trees a small pull quota could not finish are deferred by the first
    /// pass and run one at a time in the second, after every tree of one pull.
    pub fn run_all<R: Send>(
        &self,
        jobs: Jobs,
        done: impl Fn(&Job, JobOutcome) -> R + Sync,
    ) -> Vec<R> {
        {
            let mut unfinished = self.unfinished.lock().unwrap();
            for registry in jobs.source_registries() {
                match unfinished.get_mut(registry) {
                    Some(jobs) => *jobs += 1,
                    None => {
                        unfinished.insert(registry.to_string(), 1);
                    }
                }
            }
        }
        let deferred = Mutex::new(Vec::new());
        let results: Mutex<Vec<Option<R>>> =
            Mutex::new(std::iter::repeat_with(|| None).take(jobs.len()).collect());
        self.threads
            .each(&spread(jobs.len(), self.options.threads), |&n| {
                let job = jobs.get(n);
                let started = Instant::now();
                let step = self.run_step(&job, None);
                *self
                    .unfinished
                    .lock()
                    .unwrap()
                    .get_mut(&job.source.registry)
                    .expect("counted above") -= 1;
                match step {
                    Ok(outcome) => {
                        let result = done(&job, outcome);
                        results.lock().unwrap()[n] = Some(result);
                    }
                    Err(resume) => deferred.lock().unwrap().push((n, job, resume, started)),
                }
            });
        let mut results = results.into_inner().unwrap();
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
        let result = if self.transport.is_cancelled() {
            Err(Error::cancelled())
        } else {
            self.copy_with_referrers(job, resume, &tally, &mut facts)
        };
        let (status, error) = match result {
            Ok(Step::Done(status)) => (status, None),
            Ok(Step::Deferred(resume)) => return Err(resume),
            Err(e) if e.kind == ErrorKind::Cancelled => (Status::Cancelled, Some(e)),
            Err(e) if e.kind == ErrorKind::Immutable => (Status::Immutable, Some(e)),
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
    fn may_pull(&self, source: &dyn End, media_type: Option<&MediaType>, first_pass: bool) -> bool {
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

    /// The job's source (read) and target (written, or read in a dry run).
    fn ends(&self, job: &Job) -> (Box<dyn End + 'c>, Box<dyn End + 'c>) {
        let access = if self.dry_run() {
            Access::Pull
        } else {
            Access::Push
        };
        (
            self.source_ends
                .open(&job.source.registry, &job.source.repository, Access::Pull),
            self.target_ends
                .open(&job.target.registry, &job.target.repository, access),
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
        let (source, target) = self.ends(job);
        let ctx = Ctx {
            source: source.as_ref(),
            target: target.as_ref(),
            target_repo: self.targets.get(target.as_ref()),
            tally,
        };
        let step = self.copy(job, &ctx, resume, facts)?;
        if !self.options.referrers || facts.subjects.is_empty() || matches!(step, Step::Deferred(_))
        {
            return Ok(step);
        }
        self.copy_referrers(&ctx, &facts.subjects)?;
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
}

/// The numbers of `len` jobs (file order) in the order they start: the list cut into
/// `ways` runs that are taken in turn (the first job of each, then the second of each, …),
/// so that the jobs running at once are far apart in the file — rarely of one
/// repository, whose tag list the first of them reads for the others and whose blobs
/// each job would otherwise wait for — while each run keeps its repositories' jobs close
/// in time.
fn spread(len: usize, ways: usize) -> Vec<usize> {
    let run = len.div_ceil(ways.max(1)).max(1);
    (0..run).flat_map(|i| (i..len).step_by(run)).collect()
}

/// The source reference a job copies: its digest when pinned, else its tag.
fn source_reference(job: &Job) -> Result<TagOrDigest> {
    match (&job.source.digest, &job.source.tag) {
        (Some(digest), _) => Ok(by_digest(digest)),
        (None, Some(tag)) => by_tag(tag),
        (None, None) => Err(Error::protocol("job without tag or digest")),
    }
}

/// A manifest named by its digest.
fn by_digest(digest: &Digest) -> TagOrDigest {
    TagOrDigest::Digest(digest.clone())
}

/// A manifest named by a tag (tags come checked from the rules, tag lists and the
/// referrers' tag schemas; one that is not is an error, never a URL).
fn by_tag(tag: &str) -> Result<TagOrDigest> {
    Tag::parse(tag)
        .map(TagOrDigest::Tag)
        .map_err(|e| Error::protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_start_far_apart_and_each_once() {
        assert_eq!(spread(10, 3), vec![0, 4, 8, 1, 5, 9, 2, 6, 3, 7]);
        assert!(spread(0, 8).is_empty());
        assert_eq!(spread(3, 8), vec![0, 1, 2]);
    }
}
