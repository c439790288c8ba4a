//! Rules → jobs: lists the tags of whole-repository rules (in parallel) and expands every
//! rule into source tag → target tag jobs. A rule whose tags cannot be listed becomes a
//! failure of its own; the other rules go on.

use rayon::prelude::*;

use crate::config::{Rule, TagSelection};
use crate::error::Error;
use crate::http::RequestStats;
use crate::reference::Reference;
use crate::registry::{Access, Client};

/// One of N deterministic slices of the work (`--shard K/N`, K from 1). A source
/// repository always falls in the same slice, whatever the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{value:?}: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = value.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let total: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || total == 0 || index > total {
            return Err(bad());
        }
        Ok(Shard { index, total })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Shard {
    /// Whether rules whose source is `repository` (registry/path) belong to this slice.
    pub fn contains(&self, repository: &str) -> bool {
        // FNV-1a: stable across versions and platforms, unlike std's hasher.
        let hash = repository.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        hash % u64::from(self.total) == u64::from(self.index - 1)
    }
}

/// One source manifest to one target reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Job {
    pub rule: String,
    pub rule_line: usize,
    /// Has a tag or a digest.
    pub source: Reference,
    /// Has a tag, or neither tag nor digest (digest sources pushed by digest).
    pub target: Reference,
}

/// A rule that could not be expanded.
#[derive(Debug, Clone)]
pub struct RuleFailure {
    pub rule: String,
    pub rule_line: usize,
    pub source: Reference,
    pub target: Reference,
    pub error: Error,
    pub attempts: u32,
}

/// What planning produced.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub failures: Vec<RuleFailure>,
}

/// Expands rules into jobs, keeping file order; a job with the same source and target
/// as an earlier one (another rule naming the same image) is dropped, so the first rule
/// owns it. With `referrers` (`--referrers`), whole-repository rules leave out the
/// referrers tag schema's and cosign's tags (`sha256-<hex>[.sig|.att|.sbom]`): they
/// travel with their images, and a fallback index is merged rather than overwritten.
pub fn plan(client: &Client, rules: &[Rule], referrers: bool) -> Plan {
    let expanded: Vec<Result<Vec<Job>, Box<RuleFailure>>> = rules
        .par_iter()
        .map(|rule| expand(client, rule, referrers))
        .collect();
    let mut plan = Plan::default();
    let mut seen = std::collections::HashSet::new();
    for item in expanded {
        match item {
            Ok(jobs) => {
                for job in jobs {
                    if seen.insert((job.source.to_string(), job.target.to_string())) {
                        plan.jobs.push(job);
                    }
                }
            }
            Err(failure) => plan.failures.push(*failure),
        }
    }
    plan
}

fn expand(client: &Client, rule: &Rule, referrers: bool) -> Result<Vec<Job>, Box<RuleFailure>> {
    let job = |source: Reference, target: Reference| Job {
        rule: rule.key.clone(),
        rule_line: rule.line,
        source,
        target,
    };
    match &rule.selection {
        TagSelection::Tag(tag) => Ok(vec![job(
            rule.source.with_tag(tag),
            rule.target.with_tag(&rule.target_tag_for(tag)),
        )]),
        TagSelection::Digest(digest) => {
            let source = Reference {
                digest: Some(digest.clone()),
                ..rule.source.clone()
            };
            Ok(vec![job(source, rule.target.clone())])
        }
        TagSelection::All => {
            let stats = RequestStats::default();
            let repo = client.repo(&rule.source.registry, &rule.source.repository, Access::Pull);
            let tags = repo.list_tags(&stats).map_err(|error| {
                Box::new(RuleFailure {
                    rule: rule.key.clone(),
                    rule_line: rule.line,
                    source: rule.source.clone(),
                    target: rule.target.clone(),
                    error,
                    attempts: 1 + stats.retries.load(std::sync::atomic::Ordering::Relaxed),
                })
            })?;
            Ok(tags
                .iter()
                .filter(|tag| !(referrers && crate::manifest::is_referrer_tag(tag)))
                .map(|tag| job(rule.source.with_tag(tag), rule.target.with_tag(tag)))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_repositories() {
        let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
        for i in 0..200 {
            let repo = format!("quay.io/ns/repo{i}");
            assert_eq!(
                shards.iter().filter(|s| s.contains(&repo)).count(),
                1,
                "{repo}"
            );
        }
        // Every slice gets some work.
        for shard in &shards {
            assert!((0..200).any(|i| shard.contains(&format!("quay.io/ns/repo{i}"))));
        }
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, total: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
