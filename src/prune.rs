//! `--prune`: what may be deleted from a mirror, decided without the network, so that
//! every safety rule sits in one place and is tested without a registry. A target
//! repository is pruned only when whole-repository rules own it (they list the source and
//! select its tags); every rule writing it keeps what it selects, and anything in doubt
//! — a source listing that failed, a rule that selected nothing, a copy that failed, a
//! rule in another shard — keeps every tag. The stage that asks the registry and deletes
//! is `commands::sync::prune`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::{Rule, TagRegex, TagSelection};
use crate::digest::Digest;
use crate::plan::{Plan, Shard};

/// How the run prunes (`--prune`, `--prune-protect`, `--max-prune`).
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    pub enabled: bool,
    /// Tags that are never deleted.
    pub protect: Vec<TagRegex>,
    /// Above this many tags in one repository, nothing is deleted there.
    pub max: usize,
}

/// A rule, as its results are reported: its key and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId {
    pub key: String,
    pub line: usize,
}

/// One target repository that rules write to, and what they keep there.
#[derive(Debug, Clone, Default)]
pub struct TargetRepo {
    pub registry: String,
    pub repository: String,
    /// The whole-repository rules writing here, in file order; the first is the one the
    /// report shows the prune under.
    pub owners: Vec<RuleId>,
    /// Every target tag a rule of this run writes here.
    pub kept: BTreeSet<String>,
    /// Why nothing here may be deleted, when something is in doubt.
    pub blocked: Option<String>,
}

impl TargetRepo {
    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// The target repositories `--prune` looks at: those that at least one whole-repository
/// rule of this run (this shard) owns, keyed by `registry/repository`, with every tag any
/// rule keeps there. Made from the plan before the copy takes its jobs.
pub fn target_repos(rules: &[Rule], plan: &Plan, shard: Option<Shard>) -> Vec<TargetRepo> {
    let mut repos: BTreeMap<String, TargetRepo> = BTreeMap::new();
    let in_run = |rule: &Rule| shard.is_none_or(|s| s.contains(&rule.source.name()));
    for rule in rules
        .iter()
        .filter(|r| r.selection == TagSelection::All && in_run(r))
    {
        let repo = repos
            .entry(rule.target.name())
            .or_insert_with(|| TargetRepo {
                registry: rule.target.registry.clone(),
                repository: rule.target.repository.clone(),
                ..TargetRepo::default()
            });
        repo.owners.push(RuleId {
            key: rule.key.clone(),
            line: rule.line,
        });
    }
    for rule in rules.iter().filter(|r| !in_run(r)) {
        if let Some(repo) = repos.get_mut(&rule.target.name()) {
            repo.blocked.get_or_insert_with(|| {
                format!(
                    "rule {:?} (line {}) writes here too and runs in another shard",
                    rule.key, rule.line
                )
            });
        }
    }
    for job in plan.jobs.iter() {
        if let (Some(repo), Some(tag)) = (repos.get_mut(&job.target.name()), &job.target.tag) {
            repo.kept.insert(tag.clone());
        }
    }
    for failure in &plan.failures {
        if let Some(repo) = repos.get_mut(&failure.target.name()) {
            repo.blocked.get_or_insert_with(|| {
                format!(
                    "rule {:?} (line {}) failed before copying: {}",
                    failure.rule, failure.rule_line, failure.error.message
                )
            });
        }
    }
    for count in plan.tag_counts.iter().filter(|c| c.tags_selected == 0) {
        for repo in repos.values_mut() {
            if repo
                .owners
                .iter()
                .any(|o| o.key == count.rule && o.line == count.rule_line)
            {
                repo.blocked.get_or_insert_with(|| {
                    format!(
                        "rule {:?} (line {}) selected no tags",
                        count.rule, count.rule_line
                    )
                });
            }
        }
    }
    repos.into_values().collect()
}

/// Marks the repositories where an image failed or was cancelled: their copies did not
/// all succeed, so nothing there is deleted. `failed` holds the target `registry/repository`
/// of every such image.
pub fn block_failed_copies(repos: &mut [TargetRepo], failed: &BTreeSet<String>) {
    for repo in repos.iter_mut().filter(|r| failed.contains(&r.name())) {
        repo.blocked
            .get_or_insert_with(|| "an image copied here failed".to_string());
    }
}

/// The tags of one target repository that its rules no longer select.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// To delete, sorted.
    pub prune: Vec<String>,
    /// Not selected but matching `--prune-protect`, sorted.
    pub protected: Vec<String>,
}

/// What of `target_tags` no rule keeps: candidates for deletion, and those `protect`
/// saves. With `referrers` (`--referrers`) the referrers tag schema's and cosign's tags
/// are never candidates of their own: they go with their subject (see
/// [`referrer_tags_of`]).
pub fn candidates(
    target_tags: &[String],
    kept: &BTreeSet<String>,
    protect: &[TagRegex],
    referrers: bool,
) -> Candidates {
    let mut out = Candidates::default();
    let unselected = target_tags
        .iter()
        .filter(|tag| !kept.contains(*tag))
        .filter(|tag| !(referrers && crate::manifest::is_referrer_tag(tag)));
    for tag in unselected {
        if protect.iter().any(|p| p.is_match(tag)) {
            out.protected.push(tag.clone());
        } else {
            out.prune.push(tag.clone());
        }
    }
    out.prune.sort();
    out.prune.dedup();
    out.protected.sort();
    out.protected.dedup();
    out
}

/// `--max-prune`: the refusal when a repository would lose more than `max` tags.
pub fn over_limit(count: usize, max: usize) -> Option<String> {
    (count > max).then(|| {
        format!(
            "{count} tag(s) to delete, more than --max-prune {max}: nothing deleted \
             (raise --max-prune if this is intended)"
        )
    })
}

/// Digests to delete, each with the tags it takes.
pub type DigestDeletions = Vec<(Digest, Vec<String>)>;

/// Deleting by digest (a registry that does not delete tags) removes every tag naming
/// the digest. `pruning` are the tags to delete with their digests, `staying` every
/// other tag of the repository with its digest. Returns the digests to delete, each with
/// the tags it takes, and the tags that must stay because a staying tag shares their
/// digest, with the reason.
pub fn by_digest(
    pruning: &[(String, Digest)],
    staying: &[(String, Digest)],
) -> (DigestDeletions, Vec<(String, String)>) {
    let staying_by_digest: HashMap<&Digest, &str> = staying
        .iter()
        .map(|(tag, digest)| (digest, tag.as_str()))
        .collect();
    let mut deletions: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let mut kept = Vec::new();
    for (tag, digest) in pruning {
        match staying_by_digest.get(digest) {
            Some(other) => kept.push((
                tag.clone(),
                format!(
                    "shares {digest} with kept tag {other}, and the registry deletes only \
                     by digest"
                ),
            )),
            None => deletions
                .entry(digest.clone())
                .or_default()
                .push(tag.clone()),
        }
    }
    (deletions.into_iter().collect(), kept)
}

/// The referrers tag schema's fallback tag and cosign's tags of each pruned digest that
/// `target_tags` holds (`sha256-<hex>`, `.sig`, `.att`, `.sbom`), unless a staying tag
/// still names that digest.
pub fn referrer_tags_of(
    target_tags: &[String],
    pruned: &[Digest],
    staying: &BTreeSet<Digest>,
) -> Vec<String> {
    let mut tags = Vec::new();
    for digest in pruned.iter().filter(|d| !staying.contains(*d)) {
        let Some(hex) = digest.as_str().strip_prefix("sha256:") else {
            continue;
        };
        let base = format!("sha256-{hex}");
        for suffix in ["", ".sig", ".att", ".sbom"] {
            let tag = format!("{base}{suffix}");
            if target_tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    tags
}

#[cfg(test)]
mod tests;
