//! Rules → jobs: lists the tags of whole-repository rules (in parallel), applies their tag
//! filters, and expands every rule into source tag → target tag jobs. A rule whose tags
//! cannot be listed becomes a failure of its own; the other rules go on. Listed names that
//! are not tags are skipped with a warning.

use std::time::SystemTime;

use crate::config::{Rule, TagRegex, TagSelection};
use crate::digest::Digest;
use crate::error::Error;
use crate::http::RequestStats;
use crate::http::bounds::escaped;
use crate::manifest::{self, Content, Manifest};
use crate::reference::Reference;
use crate::registry::{Access, Client, Repo, Tags};
use crate::threads::Threads;

mod jobs;
pub use jobs::Jobs;

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
    /// The tag is trusted never to change (`--immutable-tags`, a rule's `tags.immutable`):
    /// once the target's tag list shows it, it is not compared.
    pub trusted: bool,
}

/// How rules are planned.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--referrers`: the referrers tag schema's and cosign's tags travel with their
    /// images, so whole-repository rules leave them out.
    pub referrers: bool,
    pub shard: Option<Shard>,
    /// `--immutable-tags`: tags trusted never to change, in every rule.
    pub immutable_tags: Option<TagRegex>,
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

/// How many tags an all-tags rule found, and how many its filters kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    pub rule: String,
    pub rule_line: usize,
    pub source: String,
    pub tags_listed: usize,
    pub tags_selected: usize,
}

/// What planning produced.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Jobs,
    pub failures: Vec<RuleFailure>,
    /// One entry per all-tags rule whose tags were listed, in rule order.
    pub tag_counts: Vec<TagCount>,
    /// What was skipped on the way (names from tag lists that are not tags), escaped.
    pub warnings: Vec<String>,
}

/// A rule's jobs, its tag counts (whole-repository rules) and a warning about what its
/// tag list held that is not a tag.
type Expanded = std::result::Result<(Jobs, Option<TagCount>, Option<String>), Box<RuleFailure>>;

/// Expands rules into jobs, keeping file order; a job with the same source and target
/// as an earlier one (another rule naming the same image) is dropped, so the first rule
/// owns it. With `referrers` (`--referrers`), whole-repository rules leave out the
/// referrers tag schema's and cosign's tags (`sha256-<hex>[.sig|.att|.sbom]`): they
/// travel with their images, and a fallback index is merged rather than overwritten.
/// With a `shard`, only the rules whose source repository falls in its slice are planned.
/// A rule whose selection is smaller than its `tags.min_tags` fails.
pub fn plan(client: &Client, threads: &Threads, rules: &[Rule], options: &PlanOptions) -> Plan {
    let (referrers, shard) = (options.referrers, options.shard);
    let now = SystemTime::now();
    let rules: Vec<&Rule> = rules
        .iter()
        .filter(|rule| shard.is_none_or(|shard| shard.contains(&rule.source.name())))
        .collect();
    let expanded: Vec<Expanded> =
        threads.map(&rules, |rule| expand(client, threads, rule, now, referrers));
    let own: std::collections::HashMap<(&str, usize), &TagRegex> = rules
        .iter()
        .filter_map(|r| Some(((r.key.as_str(), r.line), r.filters.immutable.as_ref()?)))
        .collect();
    let trusted = |rule: &str, line: usize, tag: Option<&String>| {
        let Some(tag) = tag else { return false };
        [
            own.get(&(rule, line)).copied(),
            options.immutable_tags.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|regex| regex.is_match(tag))
    };
    let mut plan = Plan::default();
    let mut seen = Seen::of(&rules);
    for item in expanded {
        match item {
            Ok((jobs, count, warning)) => {
                plan.tag_counts.extend(count);
                plan.warnings.extend(warning);
                for mut job in jobs.iter() {
                    job.trusted = trusted(&job.rule, job.rule_line, job.target.tag.as_ref());
                    if seen.first(&job) {
                        plan.jobs.push(job);
                    }
                }
                seen.rule_done();
            }
            Err(failure) => plan.failures.push(*failure),
        }
    }
    plan.jobs.shrink_to_fit();
    plan
}

/// The jobs planned so far, to drop one that another rule (or a tag list naming a tag
/// twice) already made. Only the jobs of repository pairs that several rules name are
/// remembered for the whole plan; the others only while their rule is planned, so that
/// the set does not grow with the tags of a large migration.
struct Seen {
    shared_pairs: std::collections::HashSet<(String, String)>,
    shared: std::collections::HashSet<(String, String)>,
    this_rule: std::collections::HashSet<(String, String)>,
}

impl Seen {
    fn of(rules: &[&Rule]) -> Seen {
        let mut rules_per_pair = std::collections::HashMap::new();
        for rule in rules {
            *rules_per_pair
                .entry((rule.source.name(), rule.target.name()))
                .or_insert(0) += 1;
        }
        Seen {
            shared_pairs: (rules_per_pair.into_iter())
                .filter(|(_, rules)| *rules > 1)
                .map(|(pair, _)| pair)
                .collect(),
            shared: Default::default(),
            this_rule: Default::default(),
        }
    }

    /// Whether `job` is new (and now seen).
    fn first(&mut self, job: &Job) -> bool {
        let pair = (job.source.name(), job.target.name());
        let key = (job.source.to_string(), job.target.to_string());
        if self.shared_pairs.contains(&pair) {
            self.shared.insert(key)
        } else {
            self.this_rule.insert(key)
        }
    }

    fn rule_done(&mut self) {
        self.this_rule = Default::default();
    }
}

/// Rules → jobs over the images a bundle holds (named by their source references), for
/// `import --images`: a rule takes the bundle's images of its source repository that its
/// tag, digest or tag filters select (filters on creation time are not applied again: the
/// export applied them). A rule that selects nothing in the bundle is a failure naming it.
pub fn plan_bundle(rules: &[Rule], images: &[Reference], referrers: bool) -> Plan {
    let mut plan = Plan::default();
    let mut seen = std::collections::HashSet::new();
    for rule in rules {
        let of_repository: Vec<&Reference> = images
            .iter()
            .filter(|image| image.name() == rule.source.name())
            .collect();
        let jobs: Jobs = of_repository
            .iter()
            .filter_map(|image| bundle_target(rule, image, referrers))
            .map(|(source, target)| Job {
                rule: rule.key.clone(),
                rule_line: rule.line,
                source,
                target,
                trusted: false,
            })
            .collect();
        if matches!(rule.selection, TagSelection::All) {
            plan.tag_counts.push(TagCount {
                rule: rule.key.clone(),
                rule_line: rule.line,
                source: rule.source.name(),
                tags_listed: of_repository.iter().filter(|i| i.tag.is_some()).count(),
                tags_selected: jobs.len(),
            });
        }
        if jobs.is_empty() {
            plan.failures.push(RuleFailure {
                rule: rule.key.clone(),
                rule_line: rule.line,
                source: rule.source.clone(),
                target: rule.target.clone(),
                error: Error::new(
                    crate::error::ErrorKind::NotFound,
                    format!("the bundle holds no image that rule {:?} selects", rule.key),
                ),
                attempts: 1,
            });
        }
        for job in jobs.iter() {
            if seen.insert((job.source.to_string(), job.target.to_string())) {
                plan.jobs.push(job);
            }
        }
    }
    plan
}

/// The source and target of `image` (of the rule's repository) when the rule selects it.
fn bundle_target(
    rule: &Rule,
    image: &Reference,
    referrers: bool,
) -> Option<(Reference, Reference)> {
    let target = match (&rule.selection, &image.tag, &image.digest) {
        (TagSelection::Tag(tag), Some(image_tag), None) if tag == image_tag => {
            rule.target.with_tag(&rule.target_tag_for(tag))
        }
        (TagSelection::Digest(digest), None, Some(image_digest)) if digest == image_digest => {
            rule.target.clone()
        }
        (TagSelection::All, Some(tag), None) => {
            let referrer = referrers && manifest::is_referrer_tag(tag);
            if referrer || rule.filters.prefilter(std::slice::from_ref(tag)).is_empty() {
                return None;
            }
            rule.target.with_tag(tag)
        }
        _ => return None,
    };
    Some((image.clone(), target))
}

fn expand(
    client: &Client,
    threads: &Threads,
    rule: &Rule,
    now: SystemTime,
    referrers: bool,
) -> Expanded {
    let job = |source: Reference, target: Reference| Job {
        rule: rule.key.clone(),
        rule_line: rule.line,
        source,
        target,
        trusted: false,
    };
    match &rule.selection {
        TagSelection::Tag(tag) => Ok((
            Jobs::from_iter([job(
                rule.source.with_tag(tag),
                rule.target.with_tag(&rule.target_tag_for(tag)),
            )]),
            None,
            None,
        )),
        TagSelection::Digest(digest) => {
            let source = Reference {
                digest: Some(digest.clone()),
                ..rule.source.clone()
            };
            Ok((
                Jobs::from_iter([job(source, rule.target.clone())]),
                None,
                None,
            ))
        }
        TagSelection::All => {
            let stats = RequestStats::default();
            let repo = client.repo(&rule.source.registry, &rule.source.repository, Access::Pull);
            let fail = |error| {
                Box::new(RuleFailure {
                    rule: rule.key.clone(),
                    rule_line: rule.line,
                    source: rule.source.clone(),
                    target: rule.target.clone(),
                    error,
                    attempts: 1 + stats.retries.load(std::sync::atomic::Ordering::Relaxed),
                })
            };
            let listed = repo.list_tags(&stats).map_err(fail)?;
            let warning = rejected_warning(rule, &listed);
            let mut tags = listed.valid;
            if referrers {
                tags.retain(|tag| !crate::manifest::is_referrer_tag(tag));
            }
            let selected = select(&repo, threads, rule, &tags, now, &stats).map_err(fail)?;
            if let Some(error) = below_min_tags(rule, selected.len(), tags.len()) {
                return Err(fail(error));
            }
            let count = TagCount {
                rule: rule.key.clone(),
                rule_line: rule.line,
                source: rule.source.name(),
                tags_listed: tags.len(),
                tags_selected: selected.len(),
            };
            Ok((
                selected
                    .iter()
                    .map(|tag| job(rule.source.with_tag(tag), rule.target.with_tag(tag)))
                    .collect(),
                Some(count),
                warning,
            ))
        }
    }
}

/// The tags a rule's filters keep of `tags`; creation times are read only for what the
/// cheap filters left, in parallel.
fn select(
    repo: &Repo,
    threads: &Threads,
    rule: &Rule,
    tags: &[String],
    now: SystemTime,
    stats: &RequestStats,
) -> crate::error::Result<Vec<String>> {
    if rule.filters.is_empty() {
        return Ok(tags.to_vec());
    }
    let candidates = rule.filters.prefilter(tags);
    let candidates = if rule.filters.needs_created() {
        threads
            .map(&candidates, |tag| {
                let created = created_of(repo, tag, stats)?;
                Ok((tag.clone(), created))
            })
            .into_iter()
            .collect::<crate::error::Result<Vec<_>>>()?
    } else {
        candidates.into_iter().map(|tag| (tag, None)).collect()
    };
    Ok(rule.filters.finish(candidates, now))
}

/// A rule's `tags.min_tags` guard: the failure of a selection of `selected` tags (of
/// `listed`) that is smaller.
fn below_min_tags(rule: &Rule, selected: usize, listed: usize) -> Option<Error> {
    let min = rule.filters.min_tags?;
    (selected < min).then(|| {
        Error::new(
            crate::error::ErrorKind::NotFound,
            format!(
                "{selected} tag(s) selected of {listed} listed, fewer than the rule's \
                 \"min_tags\": {min}; nothing copied or pruned for it"
            ),
        )
    })
}

/// `rule "k" (line n): the tag list of src has 3 name(s) that are not valid tags,
/// skipped: "../x", "a\u{1b}b", "" `.
fn rejected_warning(rule: &Rule, tags: &Tags) -> Option<String> {
    if tags.rejected_count == 0 {
        return None;
    }
    let shown: Vec<String> = tags.rejected.iter().map(|name| escaped(name, 64)).collect();
    let more = tags.rejected_count.saturating_sub(shown.len());
    Some(format!(
        "rule {:?} (line {}): the tag list of {} has {} name(s) that are not valid tags, \
         skipped: {}{}",
        rule.key,
        rule.line,
        rule.source,
        tags.rejected_count,
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// When the image a tag names was created: its config's `created`; an index counts as its
/// newest child. The registry client keeps the manifests fetched here for the copy, which
/// then does not fetch them again.
fn created_of(
    repo: &Repo,
    tag: &str,
    stats: &RequestStats,
) -> crate::error::Result<Option<SystemTime>> {
    let manifest = repo.get_manifest(tag, stats)?;
    match manifest::content(&manifest)? {
        Content::Image { .. } => image_created(repo, &manifest, stats),
        Content::Index { children } => {
            let mut newest = None;
            for (child, _) in children {
                let child = repo.get_manifest(child.as_str(), stats)?;
                if matches!(manifest::content(&child)?, Content::Image { .. }) {
                    newest = newest.max(image_created(repo, &child, stats)?);
                }
            }
            Ok(newest)
        }
    }
}

/// Bound on a config blob read for its `created` field.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

fn image_created(
    repo: &Repo,
    image: &Manifest,
    stats: &RequestStats,
) -> crate::error::Result<Option<SystemTime>> {
    #[derive(serde::Deserialize)]
    struct Shape {
        config: Descriptor,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        created: Option<String>,
    }
    let shape: Shape = serde_json::from_slice(&image.bytes)
        .map_err(|e| Error::protocol(format!("manifest {}: {e}", image.digest)))?;
    let digest = Digest::parse(&shape.config.digest)
        .map_err(|e| Error::protocol(format!("manifest {}: {e}", image.digest)))?;
    let bytes = repo.get_small_blob(&digest, MAX_CONFIG_BYTES, stats)?;
    let config: Config = serde_json::from_slice(&bytes)
        .map_err(|e| Error::protocol(format!("config {digest}: {e}")))?;
    Ok(config
        .created
        .and_then(|c| humantime::parse_rfc3339_weak(&c).ok()))
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
    fn a_bundle_is_planned_by_its_source_references() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images.json");
        let digest = format!("sha256:{}", "a".repeat(64));
        std::fs::write(
            &images,
            serde_json::json!({
                "r.io/app/x": {"target": "t.io/m/x", "tags": {"include": ["^v"]}},
                "r.io/app/y:1": "t.io/m/y:one",
                format!("r.io/app/z@{digest}"): "t.io/m/z",
                "r.io/app/none:9": "t.io/m/none",
            })
            .to_string(),
        )
        .unwrap();
        let rules =
            crate::config::images::load(&images, &crate::config::Defaults::default(), &|_| None)
                .unwrap();
        let bundle: Vec<Reference> = [
            "r.io/app/x:v1".to_string(),
            "r.io/app/x:latest".to_string(),
            format!("r.io/app/x:sha256-{}", "b".repeat(64)),
            "r.io/app/y:1".to_string(),
            "r.io/app/y:2".to_string(),
            format!("r.io/app/z@{digest}"),
        ]
        .iter()
        .map(|name| Reference::parse(name).unwrap())
        .collect();
        let plan = plan_bundle(&rules, &bundle, true);
        let jobs: Vec<(String, String)> = (plan.jobs.iter())
            .map(|job| (job.source.to_string(), job.target.to_string()))
            .collect();
        assert_eq!(
            jobs,
            [
                ("r.io/app/x:v1".to_string(), "t.io/m/x:v1".to_string()),
                ("r.io/app/y:1".to_string(), "t.io/m/y:one".to_string()),
                (format!("r.io/app/z@{digest}"), "t.io/m/z".to_string()),
            ]
        );
        assert_eq!(plan.failures.len(), 1);
        assert_eq!(plan.failures[0].rule, "r.io/app/none:9");
        assert_eq!(plan.tag_counts[0].tags_listed, 3);
        assert_eq!(plan.tag_counts[0].tags_selected, 1);
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, total: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
