//! `--referrers`: signatures, SBOMs and attestations travel with their images. For each
//! subject (an image, a child of an index, and — to [`MAX_DEPTH`] — a referrer itself),
//! the source's referrers (the OCI 1.1 API, else the `sha256-<hex>` fallback tag) and
//! cosign's `sha256-<hex>.sig/.att/.sbom` tags are compared by digest with the target's;
//! what is missing is copied by digest with its blobs (the same ladder as any image), and
//! on a target without the API the fallback index is merged, never shrunk. Each subject
//! is handled once per target repository per run, and each repository's tag list is read
//! once, so that absent fallback and cosign tags cost no request.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::claims::{Claim, Claims, DigestKey};
use super::{Copier, Ctx, Tally, by_digest, by_tag};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, Referrer};

/// How deep referrers of referrers are followed (1 = only those of the image).
pub const MAX_DEPTH: usize = 3;

/// A referrer copied (or, in a dry run, that would be).
#[derive(Debug, Clone)]
pub struct ReferrerNote {
    pub digest: Digest,
    /// Its artifact type (or media type).
    pub kind: String,
    pub subject: Digest,
    /// The cosign tag it is copied under, if it is one.
    pub tag: Option<String>,
}

/// What the referrers of one job came to.
#[derive(Default)]
pub(super) struct ReferrerTally {
    pub copied: AtomicU64,
    pub unchanged: AtomicU64,
    pub notes: Mutex<Vec<ReferrerNote>>,
}

/// Which subjects of each target repository are handled (tag lists are the copier's
/// [`super::TargetRepos`], read once per repository for both).
pub(super) struct ReferrerState {
    /// Subjects by target repository number: handled (with how many referrers the
    /// target has now, nested ones included), or being handled by a job. All are
    /// remembered (49 bytes each): a subject handled again would take the cosign tags
    /// this run pushed for absent (the tag lists are read once) and copy and report them
    /// again.
    subjects: Claims<(u32, DigestKey), u64>,
}

impl Default for ReferrerState {
    fn default() -> Self {
        ReferrerState {
            subjects: Claims::remembering_all(),
        }
    }
}

/// A referrer that could not be copied (or looked up): kind `referrer`, naming it.
fn referrer_error(what: String, error: Error) -> Error {
    if error.kind == ErrorKind::Cancelled {
        return error;
    }
    Error {
        kind: ErrorKind::Referrer,
        message: format!("{what}: {}", error.message),
        ..error
    }
}

impl Copier<'_> {
    /// The referrers of every subject, in the target.
    pub(super) fn copy_referrers(&self, ctx: &Ctx, subjects: &[Digest]) -> Result<()> {
        for subject in subjects {
            self.referrers_of(ctx, subject, 1)?;
        }
        Ok(())
    }

    /// The referrers of one subject (claimed once per target repository); how many the
    /// target has now, nested ones included.
    fn referrers_of(&self, ctx: &Ctx, subject: &Digest, depth: usize) -> Result<u64> {
        let key = (ctx.target_repo.number, DigestKey::from(subject));
        match self.referrer_state.subjects.claim(&key) {
            Claim::Done(count) => {
                ctx.tally
                    .referrers
                    .unchanged
                    .fetch_add(count, Ordering::Relaxed);
                Ok(count)
            }
            Claim::Owner(guard) => {
                let count = self.handle_subject(ctx, subject, depth)?;
                guard.done(count);
                Ok(count)
            }
        }
    }

    fn handle_subject(&self, ctx: &Ctx, subject: &Digest, depth: usize) -> Result<u64> {
        let (source, target, stats) = (ctx.source, ctx.target, ctx.stats());
        let source_tags = self.targets.tags(source, stats);
        let listing = source
            .referrers(subject, source_tags.as_ref(), stats)
            .map_err(|e| referrer_error(format!("looking up referrers of {subject}"), e))?;
        let cosign = self.cosign_tags_of(ctx, subject, source_tags.as_ref())?;
        if listing.referrers.is_empty() && cosign.is_empty() {
            return Ok(0);
        }

        let target_tags = self.targets.tags(target, stats);
        let there = target
            .referrers(subject, target_tags.as_ref(), stats)
            .map_err(|e| {
                referrer_error(
                    format!("looking up referrers of {subject} in the target"),
                    e,
                )
            })?;
        let present: HashSet<&Digest> = there.referrers.iter().map(|r| &r.digest).collect();
        let mut total = 0;
        let mut added: Vec<Referrer> = Vec::new();
        let mut failure = None;
        for referrer in &listing.referrers {
            match self.listed_referrer(ctx, subject, referrer, &present, depth) {
                Ok((count, copied)) => {
                    total += count;
                    if copied {
                        added.push(referrer.clone());
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // What was copied is listed even when a later referrer failed: a re-run then
        // only has the failed one left to copy.
        if !added.is_empty() && !there.api && !self.dry_run() {
            let tag = manifest::fallback_tag(subject);
            let merged = manifest::merge_referrers(there.fallback_index.as_deref(), &added)?;
            target
                .put_manifest(&by_tag(&tag)?, &merged, stats)
                .map_err(|e| referrer_error(format!("referrers index {tag} of {subject}"), e))?;
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        for (tag, digest) in &cosign {
            total +=
                self.cosign_referrer(ctx, subject, tag, digest, target_tags.as_ref(), depth)?;
        }
        Ok(total)
    }

    /// cosign's `sha256-<hex>.sig/.att/.sbom` tags of `subject` in the source, with their
    /// digests (tags the source's list does not show are not asked for).
    fn cosign_tags_of(
        &self,
        ctx: &Ctx,
        subject: &Digest,
        source_tags: Option<&HashSet<String>>,
    ) -> Result<Vec<(String, Digest)>> {
        let (source, stats) = (ctx.source, ctx.stats());
        let mut cosign = Vec::new();
        for tag in manifest::cosign_tags(subject) {
            if source_tags.is_some_and(|tags| !tags.contains(&tag)) {
                continue;
            }
            let head = source
                .head_manifest(&by_tag(&tag)?, stats)
                .map_err(|e| referrer_error(format!("looking up cosign tag {tag}"), e))?;
            let Some(head) = head else { continue };
            let digest = match head.digest {
                Some(digest) => digest,
                None => {
                    let manifest = source
                        .get_manifest(&by_tag(&tag)?, stats)
                        .map_err(|e| referrer_error(format!("fetching cosign tag {tag}"), e))?;
                    manifest.digest.clone()
                }
            };
            cosign.push((tag, digest));
        }
        Ok(cosign)
    }

    /// One cosign tag into the target (unless it holds the same digest there), then its
    /// own referrers within the depth; how many the target has now.
    fn cosign_referrer(
        &self,
        ctx: &Ctx,
        subject: &Digest,
        tag: &str,
        digest: &Digest,
        target_tags: Option<&HashSet<String>>,
        depth: usize,
    ) -> Result<u64> {
        let absent = target_tags.is_some_and(|tags| !tags.contains(tag));
        let same = !absent
            && ctx
                .target
                .head_manifest(&by_tag(tag)?, ctx.stats())
                .map_err(|e| referrer_error(format!("checking cosign tag {tag}"), e))?
                .and_then(|head| head.digest)
                .as_ref()
                == Some(digest);
        if same {
            (ctx.tally.referrers.unchanged).fetch_add(1, Ordering::Relaxed);
        } else {
            let kind = cosign_kind(tag);
            let what = format!("referrer {digest} ({kind}, cosign tag {tag}) of {subject}");
            self.copy_referrer(ctx, digest, Some(tag))
                .map_err(|e| referrer_error(what, e))?;
            self.note(
                digest.clone(),
                kind,
                subject,
                Some(tag.to_string()),
                ctx.tally,
            );
        }
        let nested = if depth < MAX_DEPTH {
            self.referrers_of(ctx, digest, depth + 1)?
        } else {
            0
        };
        Ok(1 + nested)
    }

    /// One referrer a listing names: found in the target by digest, or copied; then its
    /// own referrers, within the depth. How many the target has now, and whether it was
    /// copied (to be added to a fallback index).
    fn listed_referrer(
        &self,
        ctx: &Ctx,
        subject: &Digest,
        referrer: &Referrer,
        present: &HashSet<&Digest>,
        depth: usize,
    ) -> Result<(u64, bool)> {
        let tally = ctx.tally;
        let copied = !present.contains(&referrer.digest);
        if copied {
            let what = format!(
                "referrer {} ({}) of {subject}",
                referrer.digest,
                referrer.kind()
            );
            self.copy_referrer(ctx, &referrer.digest, None)
                .map_err(|e| referrer_error(what, e))?;
            self.note(
                referrer.digest.clone(),
                referrer.kind(),
                subject,
                None,
                tally,
            );
        } else {
            tally.referrers.unchanged.fetch_add(1, Ordering::Relaxed);
        }
        let mut total = 1;
        if depth < MAX_DEPTH {
            total += self.referrers_of(ctx, &referrer.digest, depth + 1)?;
        }
        Ok((total, copied))
    }

    fn note(
        &self,
        digest: Digest,
        kind: &str,
        subject: &Digest,
        tag: Option<String>,
        tally: &Tally,
    ) {
        tally.referrers.copied.fetch_add(1, Ordering::Relaxed);
        tally.referrers.notes.lock().unwrap().push(ReferrerNote {
            digest,
            kind: kind.to_string(),
            subject: subject.clone(),
            tag,
        });
    }

    /// One referrer manifest, by digest (or under its cosign tag), after its blobs — or
    /// its children, when it is an index. Nothing is written in a dry run.
    fn copy_referrer(&self, ctx: &Ctx, digest: &Digest, tag: Option<&str>) -> Result<()> {
        if self.dry_run() {
            return Ok(());
        }
        let stats = ctx.stats();
        let referrer = ctx.source.get_manifest(&by_digest(digest), stats)?;
        // An image's blobs, or an index's children (each claimed once per target).
        self.copy_tree(ctx, &referrer, 1)?;
        ctx.target.put_manifest(
            &match tag {
                Some(tag) => by_tag(tag)?,
                None => by_digest(digest),
            },
            &referrer,
            stats,
        )
    }
}

/// What a cosign tag holds, by its suffix.
fn cosign_kind(tag: &str) -> &'static str {
    if tag.ends_with(".sig") {
        "cosign signature"
    } else if tag.ends_with(".att") {
        "cosign attestation"
    } else {
        "cosign SBOM"
    }
}
