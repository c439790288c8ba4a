//! Rules → jobs: lists the tags of whole-repository rules (in parallel) and expands every
//! rule into source tag → target tag jobs. A rule whose tags cannot be listed becomes a
//! failure of its own; the other rules go on.

use rayon::prelude::*;

use crate::config::{Rule, TagSelection};
use crate::error::Error;
use crate::http::RequestStats;
use crate::reference::Reference;
use crate::registry::{Access, Client};

/// One source manifest to one target reference.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Expands rules into jobs, keeping file order; duplicate jobs are dropped.
#[allow(clippy::result_large_err)] // one failure per rule, built once: size is no concern
pub fn plan(client: &Client, rules: &[Rule]) -> Plan {
    let expanded: Vec<Result<Vec<Job>, RuleFailure>> =
        rules.par_iter().map(|rule| expand(client, rule)).collect();
    let mut plan = Plan::default();
    for item in expanded {
        match item {
            Ok(jobs) => {
                for job in jobs {
                    if !plan.jobs.contains(&job) {
                        plan.jobs.push(job);
                    }
                }
            }
            Err(failure) => plan.failures.push(failure),
        }
    }
    plan
}

#[allow(clippy::result_large_err)]
fn expand(client: &Client, rule: &Rule) -> Result<Vec<Job>, RuleFailure> {
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
            let tags = repo.list_tags(&stats).map_err(|error| RuleFailure {
                rule: rule.key.clone(),
                rule_line: rule.line,
                source: rule.source.clone(),
                target: rule.target.clone(),
                error,
                attempts: 1 + stats.retries.load(std::sync::atomic::Ordering::Relaxed),
            })?;
            Ok(tags
                .iter()
                .map(|tag| job(rule.source.with_tag(tag), rule.target.with_tag(tag)))
                .collect())
        }
    }
}
