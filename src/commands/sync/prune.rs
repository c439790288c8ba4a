//! `sync --prune`'s stage, after the copy: for each target repository that
//! whole-repository rules own, list its tags, let `crate::prune` decide what no rule
//! selects any more, and delete it — by tag where the registry deletes tags, else by
//! digest when no staying tag shares it. One log line per tag deleted (or, in a dry run,
//! that would be), and what it came to per rule for the report.

use std::collections::{BTreeSet, HashMap};

use crate::digest::Digest;
use crate::http::RequestStats;
use crate::plan::Job;
use crate::progress::log;
use crate::prune::{self, PruneOptions, RuleId, TargetRepo};
use crate::registry::{Access, Client, Deletion, Repo};
use crate::report::{ImageResult, PruneKept, Status};

/// What the copy learnt that pruning needs: the digest of each target tag it wrote or
/// found (by `registry/repository` and tag), and the target repositories where an
/// image failed.
#[derive(Debug, Default)]
pub(in crate::commands) struct CopyFacts {
    pub digests: HashMap<(String, String), Digest>,
    pub failed_repos: BTreeSet<String>,
}

impl CopyFacts {
    /// Learns from one image's result.
    pub(super) fn learn(&mut self, job: &Job, result: &ImageResult) {
        let repo = job.target.name();
        match (result.status, &job.target.tag, &result.target_digest) {
            (Status::Failed | Status::Cancelled, _, _) => {
                self.failed_repos.insert(repo);
            }
            (Status::Copied | Status::Unchanged, Some(tag), Some(digest)) => {
                if let Ok(digest) = Digest::parse(digest) {
                    self.digests.insert((repo, tag.clone()), digest);
                }
            }
            _ => {}
        }
    }
}

/// What pruning one target repository came to, shown under its first owning rule.
#[derive(Debug, Default)]
pub(in crate::commands) struct Pruned {
    pub rule: Option<RuleId>,
    pub pruned: Vec<String>,
    pub kept: Vec<PruneKept>,
    pub error: Option<String>,
    /// Why the repository was left alone.
    pub skipped: Option<String>,
}

/// How the stage runs.
pub(super) struct PruneRun<'a> {
    pub client: &'a Client,
    pub options: &'a PruneOptions,
    pub dry_run: bool,
    pub referrers: bool,
}

impl PruneRun<'_> {
    /// Prunes every repository in `repos`, one after another.
    pub(super) fn run(&self, mut repos: Vec<TargetRepo>, facts: &CopyFacts) -> Vec<Pruned> {
        prune::block_failed_copies(&mut repos, &facts.failed_repos);
        repos
            .iter()
            .map(|repo| {
                let mut pruned = self.repository(repo, facts);
                pruned.rule = repo.owners.first().cloned();
                pruned
            })
            .collect()
    }

    fn repository(&self, target: &TargetRepo, facts: &CopyFacts) -> Pruned {
        let name = target.name();
        if let Some(reason) = &target.blocked {
            log(&format!("prune      {name}: nothing deleted: {reason}"));
            return Pruned {
                skipped: Some(reason.clone()),
                ..Pruned::default()
            };
        }
        let access = if self.dry_run {
            Access::Pull
        } else {
            Access::Delete
        };
        let repo = self
            .client
            .repo(&target.registry, &target.repository, access);
        let stats = RequestStats::default();
        let (tags, found, mut kept) = match self.candidates(target, &repo, &stats) {
            Ok(found) => found,
            Err(done) => return *done,
        };
        // What the copy learnt, else a `HEAD`: asked only where a digest is needed (the
        // referrers of a pruned image, deletion by digest).
        let known = |tag: &str| facts.digests.get(&(name.clone(), tag.to_string())).cloned();
        let digest_of = |tag: &str| -> Option<Digest> {
            known(tag).or_else(|| repo.head_manifest(tag, &stats).ok().flatten()?.digest)
        };
        let mut pruning: Vec<(String, Option<Digest>)> = found
            .prune
            .iter()
            .map(|tag| {
                let digest = if self.referrers {
                    digest_of(tag)
                } else {
                    known(tag)
                };
                (tag.clone(), digest)
            })
            .collect();
        let going: BTreeSet<&String> = found.prune.iter().collect();
        let staying: Vec<&String> = tags.iter().filter(|tag| !going.contains(tag)).collect();
        if self.referrers {
            add_referrer_tags(&mut pruning, &tags, &staying, &digest_of);
        }
        if self.dry_run {
            return would_delete(&name, pruning, kept);
        }
        let deleter = Deleter {
            repo: &repo,
            stats: &stats,
            name: &name,
            digest_of: &digest_of,
        };
        let going: BTreeSet<String> = pruning.iter().map(|(tag, _)| tag.clone()).collect();
        let mut outcome = deleter.delete(pruning, || {
            staying
                .iter()
                .filter(|tag| !going.contains(**tag))
                .filter_map(|tag| Some(((*tag).clone(), digest_of(tag)?)))
                .collect()
        });
        kept.append(&mut outcome.kept);
        outcome.kept = kept;
        outcome
    }
}

impl PruneRun<'_> {
    /// The target's tags, what no rule keeps there, and the protected ones; or what
    /// pruning came to when it ends here (the listing failed, `--max-prune`, nothing to
    /// delete).
    fn candidates(
        &self,
        target: &TargetRepo,
        repo: &Repo,
        stats: &RequestStats,
    ) -> Result<(Vec<String>, prune::Candidates, Vec<PruneKept>), Box<Pruned>> {
        let tags = match repo.list_tags_if_any(stats) {
            Ok(tags) => tags.unwrap_or_default(),
            Err(e) => return Err(Box::new(failed(&target.name(), e.message, Vec::new()))),
        };
        let found = prune::candidates(&tags, &target.kept, &self.options.protect, self.referrers);
        let kept: Vec<PruneKept> = found
            .protected
            .iter()
            .map(|tag| PruneKept {
                tag: tag.clone(),
                reason: "matches --prune-protect".into(),
            })
            .collect();
        if let Some(refusal) = prune::over_limit(found.prune.len(), self.options.max) {
            return Err(Box::new(failed(&target.name(), refusal, kept)));
        }
        if found.prune.is_empty() {
            return Err(Box::new(Pruned {
                kept,
                ..Pruned::default()
            }));
        }
        Ok((tags, found, kept))
    }
}

/// A prune of `name` that failed with `error`, logged.
fn failed(name: &str, error: String, kept: Vec<PruneKept>) -> Pruned {
    log(&format!("prune      {name}: failed: {error}"));
    Pruned {
        error: Some(error),
        kept,
        ..Pruned::default()
    }
}

/// `--dry-run`: says what would go.
fn would_delete(
    name: &str,
    pruning: Vec<(String, Option<Digest>)>,
    kept: Vec<PruneKept>,
) -> Pruned {
    for (tag, _) in &pruning {
        log(&format!("would delete {name}:{tag}"));
    }
    Pruned {
        pruned: pruning.into_iter().map(|(tag, _)| tag).collect(),
        kept,
        ..Pruned::default()
    }
}

/// `--referrers`: adds to `pruning` the fallback and cosign tags of the digests it
/// deletes that no staying tag still names.
fn add_referrer_tags(
    pruning: &mut Vec<(String, Option<Digest>)>,
    tags: &[String],
    staying: &[&String],
    digest_of: &dyn Fn(&str) -> Option<Digest>,
) {
    let gone: Vec<Digest> = pruning.iter().filter_map(|(_, d)| d.clone()).collect();
    let staying_digests: BTreeSet<Digest> = staying
        .iter()
        .filter(|tag| !crate::manifest::is_referrer_tag(tag))
        .filter_map(|tag| digest_of(tag))
        .collect();
    for tag in prune::referrer_tags_of(tags, &gone, &staying_digests) {
        let digest = digest_of(&tag);
        pruning.push((tag, digest));
    }
}

/// Deletes tags of one repository, by tag while the registry takes that, else by digest.
struct Deleter<'a> {
    repo: &'a Repo<'a>,
    stats: &'a RequestStats,
    name: &'a str,
    /// A tag's digest, for deletion by digest.
    digest_of: &'a dyn Fn(&str) -> Option<Digest>,
}

impl Deleter<'_> {
    /// Deletes `pruning` (tags with their digests, when known); `staying` gives the
    /// repository's other tags with their digests, asked only if deletion by digest is
    /// needed.
    fn delete(
        &self,
        pruning: Vec<(String, Option<Digest>)>,
        staying: impl FnOnce() -> Vec<(String, Digest)>,
    ) -> Pruned {
        let mut done = Pruned::default();
        let mut remaining = pruning.into_iter();
        for (tag, digest) in remaining.by_ref() {
            match self.repo.delete_tag(&tag, self.stats) {
                Ok(Deletion::Deleted | Deletion::Absent) => self.deleted(&mut done, tag, None),
                Ok(Deletion::Unsupported(_)) => {
                    let rest: Vec<_> = std::iter::once((tag, digest)).chain(remaining).collect();
                    self.delete_by_digest(&mut done, rest, staying());
                    return done;
                }
                Err(e) => return self.fail(done, e.message),
            }
        }
        done
    }

    fn delete_by_digest(
        &self,
        done: &mut Pruned,
        pruning: Vec<(String, Option<Digest>)>,
        staying: Vec<(String, Digest)>,
    ) {
        let mut with_digest = Vec::new();
        for (tag, digest) in pruning {
            match digest.or_else(|| (self.digest_of)(&tag)) {
                Some(digest) => with_digest.push((tag, digest)),
                None => self.keep(
                    done,
                    tag,
                    "its digest could not be read (HEAD failed or named none)".into(),
                ),
            }
        }
        let (deletions, shared) = prune::by_digest(&with_digest, &staying);
        for (tag, reason) in shared {
            self.keep(done, tag, reason);
        }
        for (digest, tags) in deletions {
            match self.repo.delete_manifest(&digest, self.stats) {
                Ok(Deletion::Deleted | Deletion::Absent) => {
                    for tag in tags {
                        self.deleted(done, tag, Some(&digest));
                    }
                }
                Ok(Deletion::Unsupported(e)) => {
                    let hint = crate::hints::deletes_refused(self.repo.registry());
                    let error = format!("{} ({hint})", e.message);
                    *done = self.fail(std::mem::take(done), error);
                    return;
                }
                Err(e) => {
                    *done = self.fail(std::mem::take(done), e.message);
                    return;
                }
            }
        }
    }

    fn deleted(&self, done: &mut Pruned, tag: String, digest: Option<&Digest>) {
        let by = digest
            .map(|d| format!("  (by digest {d})"))
            .unwrap_or_default();
        log(&format!("pruned     {}:{tag}{by}", self.name));
        done.pruned.push(tag);
    }

    fn keep(&self, done: &mut Pruned, tag: String, reason: String) {
        log(&format!("kept       {}:{tag}  {reason}", self.name));
        done.kept.push(PruneKept { tag, reason });
    }

    fn fail(&self, done: Pruned, error: String) -> Pruned {
        Pruned {
            pruned: done.pruned,
            ..failed(self.name, error, done.kept)
        }
    }
}
