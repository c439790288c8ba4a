//! One job's ladder: the source's digest (a `HEAD`, free on a pull quota; in a far target
//! repository that answered before, the target's `HEAD` of the tag goes out at the same
//! time; in one whose tag list is not read yet, after it), the platform filter, the
//! comparison with the target (unchanged → nothing to do),
//! then the tree and
//! the top manifest last. Where a small pull quota should serve trees of one pull first,
//! a job that would start an index is deferred with what it learnt (see
//! [`Copier::may_pull`]).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::{
    Copier, Ctx, Facts, Overwrite, Push, Resume, Step, by_digest, by_tag, source_reference,
};
use crate::digest::Digest;
use crate::end::{ManifestHead, PullQuota};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, Manifest, MediaType};
use crate::plan::Job;
use crate::reference::TagOrDigest;
use crate::report::Status;

/// The manifest a job fetched so far, if any.
type Fetched = Option<Arc<Manifest>>;

/// The target's answer for the job's tag when it was asked beside the source's (see
/// [`Copier::heads`]); `None`: not asked, or the attempt failed.
type TargetHead = Option<Option<ManifestHead>>;

/// What the target is compared with: the reference the job writes, the source's digest,
/// the digest it would push (the filtered index's, with `--platform`), and the target's
/// answer if it came with the source's.
struct Compared<'a> {
    target_ref: &'a TagOrDigest,
    digest: &'a Digest,
    push_digest: &'a Digest,
    target_head: TargetHead,
}

impl Copier<'_> {
    pub(super) fn copy(
        &self,
        job: &Job,
        ctx: &Ctx,
        resume: Option<Resume>,
        facts: &mut Facts,
    ) -> Result<Step> {
        let first_pass = resume.is_none();
        if first_pass
            && job.trusted
            && let Some(tag) = &job.target.tag
            && ctx.target_repo.listed_present(ctx.target, tag, ctx.stats())
        {
            // Trusted never to change, and already there: no manifest request at all.
            return Ok(Step::Done(Status::Unchanged));
        }
        let (head, fetched, target_lacks, target_head) = match resume {
            Some(resume) => (resume.head, None, resume.target_lacks, None),
            None => {
                let ((head, fetched), target_head) = self.heads(job, ctx)?;
                (head, fetched, false, target_head)
            }
        };
        let defer = |target_lacks: bool| {
            Ok(Step::Deferred(Resume {
                head: head.clone(),
                target_lacks,
            }))
        };
        let Some((digest, fetched)) = self.source_digest(job, ctx, &head, fetched, first_pass)?
        else {
            return defer(false);
        };
        facts.source_digest = Some(digest.clone());
        let Some(fetched) = self.filtered(ctx, &digest, &head, fetched, first_pass)? else {
            return defer(false);
        };
        let push_digest = fetched
            .as_ref()
            .map_or_else(|| digest.clone(), |m| m.digest.clone());
        facts.target_digest = Some(push_digest.clone());
        let target_ref = match &job.target.tag {
            Some(tag) => by_tag(tag)?,
            None => by_digest(&push_digest),
        };
        let compared = Compared {
            target_ref: &target_ref,
            digest: &digest,
            push_digest: &push_digest,
            target_head,
        };
        if !target_lacks
            && let Some(status) = self.unchanged_in_target(job, ctx, compared, facts)?
        {
            return Ok(Step::Done(status));
        }
        let reads_tree = !self.dry_run() || self.options.referrers;
        if fetched.is_none()
            && reads_tree
            && !self.may_pull(ctx.source, head.media_type.as_ref(), first_pass)
        {
            return defer(true);
        }
        let manifest = match (fetched, reads_tree) {
            (Some(manifest), _) => manifest,
            (None, true) => ctx.source.get_manifest(&by_digest(&digest), ctx.stats())?,
            (None, false) => return Ok(Step::Done(Status::WouldCopy)),
        };
        if self.options.referrers {
            facts.subjects = self.subjects_of(&digest, &manifest)?;
        }
        if self.dry_run() {
            return Ok(Step::Done(Status::WouldCopy));
        }
        facts.media_type = Some(manifest.media_type.clone());
        self.copy_tree(ctx, &manifest, 1)?;
        ctx.target
            .put_manifest(&target_ref, &manifest, ctx.stats())?;
        Ok(Step::Done(Status::Copied))
    }

    /// The source's answer for the job (see [`Self::source_head`]) and, when the target's
    /// tag is to be compared with it, the target's `HEAD` of that tag asked at the same time
    /// from a helper thread: on a far target a tag that did not change costs one round trip,
    /// not two. Only in a target repository where a `HEAD` was answered (its registry and
    /// credentials work) and even the fastest slowly (a round trip costs more than a
    /// thread: see `targets::FAR`), for a tag its list does not show absent, and in one attempt: a
    /// failure is dropped, and the ladder asks again within its retries only if the source
    /// answered, so a failing registry or token service is not asked twice as often.
    fn heads(&self, job: &Job, ctx: &Ctx) -> Result<((ManifestHead, Fetched), TargetHead)> {
        let compared_tag = (job.target.tag.as_deref())
            .filter(|tag| ctx.target_repo.far() && !ctx.target_repo.listed_absent(tag));
        let Some(tag) = compared_tag else {
            let target_head = self.target_first(job, ctx)?;
            return Ok((self.source_head(job, ctx)?, target_head));
        };
        let target_ref = by_tag(tag)?;
        std::thread::scope(|scope| {
            // No thread to be had: the target is asked in turn, as near.
            let target = std::thread::Builder::new()
                .spawn_scoped(scope, || {
                    let asked = Instant::now();
                    let head = ctx.target.head_manifest_once(&target_ref, ctx.stats());
                    if head.is_ok() {
                        ctx.target_repo.answered_in(asked.elapsed());
                    }
                    head
                })
                .ok();
            let source = self.source_head(job, ctx)?;
            let target = target.map(|asked| {
                asked
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            Ok((source, target.and_then(Result::ok)))
        })
    }

    /// Whether a tag the target lacks is fetched from the source with one `GET` by tag
    /// (see [`Self::source_head`]): a copy (not a dry run) of a tag (not a pinned digest)
    /// from a source known to count no pulls, since a `HEAD` (free) must first tell a small
    /// quota which trees cost one pull.
    fn fetches_by_tag(&self, job: &Job, ctx: &Ctx) -> bool {
        !self.dry_run()
            && job.source.digest.is_none()
            && job.target.tag.is_some()
            && ctx.source.pull_quota() == PullQuota::Unlimited
    }

    /// In a target repository whose tag list has not been read yet (its first tags), the
    /// target's `HEAD` of the tag before the source is asked: one that misses has the list
    /// read, and the source then answers a new tag with one `GET` by tag instead of
    /// `HEAD` + `GET` (one request and one round trip less per new repository; a tag the
    /// target has costs what it did). `None`: not asked.
    fn target_first(&self, job: &Job, ctx: &Ctx) -> Result<TargetHead> {
        let Some(tag) = (job.target.tag.as_deref())
            .filter(|_| self.fetches_by_tag(job, ctx) && !ctx.target_repo.listed())
        else {
            return Ok(None);
        };
        let head = self.target_head(ctx, &by_tag(tag)?)?;
        if head.is_none() {
            ctx.target_repo.list(ctx.target, ctx.stats());
        }
        Ok(Some(head))
    }

    /// The target's `HEAD` of `target_ref`, timed when answered at the first try (a
    /// retry's wait is no measure of the distance).
    fn target_head(&self, ctx: &Ctx, target_ref: &TagOrDigest) -> Result<Option<ManifestHead>> {
        let stats = ctx.stats();
        let (asked, retries) = (Instant::now(), stats.retries.load(Relaxed));
        let head = ctx.target.head_manifest(target_ref, stats)?;
        if stats.retries.load(Relaxed) == retries {
            ctx.target_repo.answered_in(asked.elapsed());
        }
        Ok(head)
    }

    /// The source's `HEAD` answer for the job (digest and media type). When the target's
    /// tag list shows the tag absent, the manifest is needed anyway: one `GET` by tag
    /// (the same one pull) instead of `HEAD` + `GET`, a round trip less per new tag (see
    /// [`Self::fetches_by_tag`] for when).
    fn source_head(&self, job: &Job, ctx: &Ctx) -> Result<(ManifestHead, Option<Arc<Manifest>>)> {
        let source_ref = source_reference(job)?;
        let not_found = || Error::new(ErrorKind::NotFound, format!("{} not found", job.source));
        let needed_anyway = self.fetches_by_tag(job, ctx)
            && (job.target.tag.as_deref()).is_some_and(|tag| ctx.target_repo.listed_absent(tag));
        if !needed_anyway {
            let head =
                (ctx.source.head_manifest(&source_ref, ctx.stats())?).ok_or_else(not_found)?;
            return Ok((head, None));
        }
        let manifest = ctx
            .source
            .get_manifest(&source_ref, ctx.stats())
            .map_err(|e| {
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

    /// The source digest: pinned by the job, from the `HEAD`, or (a registry that does
    /// not say it) from the manifest itself. `None`: the job is deferred.
    fn source_digest(
        &self,
        job: &Job,
        ctx: &Ctx,
        head: &ManifestHead,
        fetched: Fetched,
        first_pass: bool,
    ) -> Result<Option<(Digest, Fetched)>> {
        if let Some(pinned) = &job.source.digest {
            return Ok(Some((pinned.clone(), fetched)));
        }
        if let Some(digest) = &head.digest {
            return Ok(Some((digest.clone(), fetched)));
        }
        if fetched.is_none() && !self.may_pull(ctx.source, None, first_pass) {
            return Ok(None);
        }
        let manifest = match fetched {
            Some(manifest) => manifest,
            None => ctx
                .source
                .get_manifest(&source_reference(job)?, ctx.stats())?,
        };
        Ok(Some((manifest.digest.clone(), Some(manifest))))
    }

    /// With a platform filter, an index is reduced to the wanted platforms: its bytes,
    /// and so its digest, change. Only the comparison with the target needs it this
    /// early. `None`: the job is deferred.
    fn filtered(
        &self,
        ctx: &Ctx,
        digest: &Digest,
        head: &ManifestHead,
        fetched: Fetched,
        first_pass: bool,
    ) -> Result<Option<Fetched>> {
        if self.options.platforms.is_empty() {
            return Ok(Some(fetched));
        }
        if fetched.is_none() && !self.may_pull(ctx.source, head.media_type.as_ref(), first_pass) {
            return Ok(None);
        }
        let manifest = match fetched {
            Some(manifest) => manifest,
            None => ctx.source.get_manifest(&by_digest(digest), ctx.stats())?,
        };
        Ok(Some(Some(if manifest.media_type.is_index() {
            Arc::new(manifest::filter_index(&manifest, &self.options.platforms)?)
        } else {
            manifest
        })))
    }

    /// Whether the target already has `push_digest` under `target_ref` (then, with
    /// `--referrers`, the subjects are read from the target's copy, sparing the source's
    /// pull quota): `Some(Unchanged)`; with `--overwrite never`, another digest there is
    /// `Some(Drifted)`; else `None`.
    fn unchanged_in_target(
        &self,
        job: &Job,
        ctx: &Ctx,
        compared: Compared,
        facts: &mut Facts,
    ) -> Result<Option<Status>> {
        let (target, stats) = (ctx.target, ctx.stats());
        let Compared {
            target_ref,
            digest,
            push_digest,
            target_head,
        } = compared;
        let head = match &job.target.tag {
            Some(tag) if target_head.is_none() && ctx.target_repo.listed_absent(tag) => None,
            Some(_) => {
                let head = match target_head {
                    Some(answer) => answer,
                    None => self.target_head(ctx, target_ref)?,
                };
                if head.is_none() {
                    ctx.target_repo.list(target, stats);
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
        if let Some(there) = &target_digest
            && there != push_digest
            && self.options.overwrite == Overwrite::Never
        {
            facts.target_digest = Some(there.clone());
            return Ok(Some(Status::Drifted));
        }
        if target_digest.as_ref() != Some(push_digest) || self.options.push == Push::Always {
            return Ok(None);
        }
        if self.options.referrers {
            // The children of an index, read from the target's copy (its digest is
            // known; the source's pull quota is spared).
            let index = head.media_type.as_ref().is_none_or(MediaType::is_index);
            facts.subjects = if index {
                let there = target.get_manifest(&by_digest(push_digest), stats)?;
                self.subjects_of(digest, &there)?
            } else {
                vec![digest.clone()]
            };
        }
        facts.media_type = head.media_type;
        Ok(Some(Status::Unchanged))
    }
}
