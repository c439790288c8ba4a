//! The JSON report CI keeps as an artifact: versioned types with a published JSON Schema
//! (`schema/report.schema.json`), per-tag results and a summary; plus the JUnit XML that
//! GitLab shows in merge requests. Only types and rendering live here — no I/O.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;

mod junit;
mod metrics;
pub use junit::write_junit;
pub use metrics::prometheus_text;

/// Bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
// (`R` holds its results: a list when a report is read back or merged; a run's results
// spooled as they were made, read one at a time (see [`ResultSource`]), when it is
// written. Not in the doc comment above: that is the schema's description.)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Report")]
pub struct Report<R = Vec<ImageResult>> {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub settings: Settings,
    /// Per all-tags rule: how many tags the source listed and how many its filters kept.
    #[serde(default)]
    pub rules: Vec<RuleTags>,
    pub results: R,
    /// `--create-targets`: each target container (Harbor project, …) checked, and what
    /// came of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetResult>,
    pub summary: Summary,
    /// What the run skipped and why (e.g. names in a tag list that are not valid tags),
    /// with names from the wire escaped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The results of a report, in plan order, read one at a time: what the renderers below
/// need, so that a run's results need not all be in memory at once.
pub trait ResultSource {
    /// How many results there are.
    fn count(&self) -> usize;
    /// Each result, in plan order.
    fn each(&self) -> Box<dyn Iterator<Item = Cow<'_, ImageResult>> + '_>;
}

impl ResultSource for Vec<ImageResult> {
    fn count(&self) -> usize {
        self.len()
    }

    fn each(&self) -> Box<dyn Iterator<Item = Cow<'_, ImageResult>> + '_> {
        Box::new(self.iter().map(Cow::Borrowed))
    }
}

/// Tag counts of one all-tags rule (`tags_selected` < `tags_listed` when filters apply).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RuleTags {
    /// The rule's key as written in the file.
    pub rule: String,
    pub rule_line: usize,
    /// The source repository, `registry/repository`.
    pub source: String,
    pub tags_listed: usize,
    pub tags_selected: usize,
    /// `--prune`: the target tags deleted under this rule (with `--dry-run`: that would
    /// be deleted), the referrers' tags that went with them included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// `--prune`: target tags no rule selects that were kept, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_kept: Vec<PruneKept>,
    /// `--prune`: why this rule's target could not be pruned (its rule counts as failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_error: Option<String>,
    /// `--prune`: why nothing in this rule's target was looked at (a rule that selected
    /// nothing or failed before copying, a failed copy, a rule in another shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_skipped: Option<String>,
}

/// A target tag `--prune` kept although no rule selects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PruneKept {
    pub tag: String,
    /// E.g. `matches --prune-protect`, `shares <digest> with kept tag latest…`, or why
    /// nothing in the repository was deleted.
    pub reason: String,
}

/// The effective settings of the run (never secrets).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    pub auth_file: Option<String>,
    pub images_file: String,
    pub default_registry: Option<String>,
    pub default_namespace: Option<String>,
    pub proc: usize,
    pub retries: u32,
    pub dry_run: bool,
    /// `--force`: manifests pushed even where the target had the digest.
    #[serde(default)]
    pub force: bool,
    /// `--overwrite`: `always` (a target tag naming another image is moved) or `never`.
    #[serde(default)]
    pub overwrite: Option<String>,
    /// `--fail-on-drift`: drifted or immutable tags make the run exit 1.
    #[serde(default)]
    pub fail_on_drift: bool,
    /// `--immutable-tags`: tags trusted never to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_tags: Option<String>,
    pub ca_file: Option<String>,
    /// `--platform` filter (empty = every platform).
    pub platforms: Vec<String>,
    /// `K/N` when this run was one slice of a sharded migration.
    pub shard: Option<String>,
    /// `--referrers`: signatures, SBOMs and attestations copied with their images.
    #[serde(default)]
    pub referrers: bool,
    /// `--prune`, its `--prune-protect` expressions and `--max-prune` (when pruning).
    #[serde(default)]
    pub prune: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_protect: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prune: Option<usize>,
    /// `--request-timeout`, `--min-speed` and `--min-speed-window`: the time bounds of
    /// every request.
    #[serde(default)]
    pub request_timeout_seconds: f64,
    #[serde(default)]
    pub min_speed_bytes_per_second: u64,
    #[serde(default)]
    pub min_speed_window_seconds: f64,
    /// `--limit-rate`: the cap on bytes per second read from sources (none: no cap).
    #[serde(default)]
    pub limit_rate_bytes_per_second: Option<u64>,
    /// `--chunk-size`: every upload in `PATCH` chunks of this size (none: one `PUT`, or
    /// 64 MiB chunks to a registry that refused it).
    #[serde(default)]
    pub chunk_size_bytes: Option<u64>,
}

/// What happened to one source tag → target tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Copied,
    Unchanged,
    Failed,
    WouldCopy,
    Cancelled,
    /// `--overwrite never`: the target tag names another image, left as it is
    /// (`target_digest` is the target's).
    Drifted,
    /// The target refused to move the tag: it keeps it immutable.
    Immutable,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Copied => "copied",
            Status::Unchanged => "unchanged",
            Status::Failed => "failed",
            Status::WouldCopy => "would-copy",
            Status::Cancelled => "cancelled",
            Status::Drifted => "drifted",
            Status::Immutable => "immutable",
        }
    }
}

/// Why an image failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub http_status: Option<u16>,
}

/// One result line.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ImageResult {
    /// The images.json key of the rule, and its line.
    pub rule: String,
    pub rule_line: usize,
    /// `registry/repository:tag` or `…@digest`.
    pub source: String,
    pub target: String,
    pub source_digest: Option<String>,
    /// The digest of what is in the target: the source's, except when `--platform`
    /// rewrote an index (then `platform_filtered` is true).
    pub target_digest: Option<String>,
    pub platform_filtered: bool,
    pub media_type: Option<String>,
    pub status: Status,
    pub bytes_transferred: u64,
    pub blobs_transferred: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    pub duration_seconds: f64,
    /// 1 + the number of retried requests.
    pub attempts: u32,
    pub error: Option<Failure>,
    /// With `--referrers`: referrers (signatures, SBOMs, attestations; of the image, of
    /// the children of an index, and of those referrers) copied — in a dry run, that
    /// would be copied — and found already in the target.
    #[serde(default)]
    pub referrers_copied: u64,
    #[serde(default)]
    pub referrers_unchanged: u64,
    /// Each referrer copied (in a dry run: that would be copied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ReferrerCopied>,
}

impl ImageResult {
    /// An image nothing was done for: its rule failed before the copy (`error`), after
    /// `attempts` tries; no digest known, nothing moved.
    pub fn failed_before_copy(
        rule: String,
        rule_line: usize,
        source: String,
        target: String,
        attempts: u32,
        error: Failure,
    ) -> ImageResult {
        ImageResult {
            rule,
            rule_line,
            source,
            target,
            source_digest: None,
            target_digest: None,
            platform_filtered: false,
            media_type: None,
            status: Status::Failed,
            bytes_transferred: 0,
            blobs_transferred: 0,
            blobs_mounted: 0,
            blobs_skipped: 0,
            referrers_copied: 0,
            referrers_unchanged: 0,
            referrers: Vec::new(),
            duration_seconds: 0.0,
            attempts,
            error: Some(error),
        }
    }
}

/// One referrer copied with an image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReferrerCopied {
    pub digest: String,
    /// Its artifact type (e.g. `application/spdx+json`), else its media type, or
    /// `cosign signature` / `cosign attestation` / `cosign SBOM` for cosign's tags.
    pub artifact_type: String,
    /// The manifest it refers to.
    pub subject: String,
    /// The cosign tag it was copied under (`sha256-<hex>.sig`, …), if it is one.
    pub tag: Option<String>,
}

/// One target container `--create-targets` checked before any blob moved.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetResult {
    /// The target registry, as images.json names it.
    pub registry: String,
    /// The registry's kind (`harbor`, `swr`, `ecr`).
    pub kind: String,
    /// The container: a Harbor project, an SWR organization, an ECR repository.
    pub name: String,
    pub outcome: TargetOutcome,
    /// Why it could not be checked or made (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `--create-targets` did with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetOutcome {
    Existed,
    Created,
    /// `--dry-run`: missing, would be created.
    WouldCreate,
    /// Could not be checked or created: the images that go there failed.
    Failed,
}

/// How many target containers came to each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetCounts {
    pub existed: usize,
    pub created: usize,
    pub would_create: usize,
    pub failed: usize,
}

impl TargetCounts {
    pub fn of(targets: &[TargetResult]) -> TargetCounts {
        let mut counts = TargetCounts::default();
        for target in targets {
            match target.outcome {
                TargetOutcome::Existed => counts.existed += 1,
                TargetOutcome::Created => counts.created += 1,
                TargetOutcome::WouldCreate => counts.would_create += 1,
                TargetOutcome::Failed => counts.failed += 1,
            }
        }
        counts
    }
}

/// Counts and totals over all results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub total: usize,
    pub copied: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub would_copy: usize,
    pub cancelled: usize,
    /// `--overwrite never`: target tags left naming another image than the source's.
    #[serde(default)]
    pub drifted: usize,
    /// Target tags that could not be moved because the target keeps them immutable.
    #[serde(default)]
    pub immutable: usize,
    pub bytes_transferred: u64,
    pub blobs_transferred: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    #[serde(default)]
    pub referrers_copied: u64,
    #[serde(default)]
    pub referrers_unchanged: u64,
    /// Manifest `GET`s sent to each source registry in the run (what Docker Hub counts
    /// against its pull quota; `HEAD`s are free): one per distinct manifest at most.
    #[serde(default)]
    pub manifest_gets: BTreeMap<String, u64>,
    /// `--create-targets`: the target containers by outcome.
    #[serde(default)]
    pub targets: TargetCounts,
    /// `--prune`: target tags deleted (with `--dry-run`: that would be), and the rules
    /// whose target could not be pruned.
    #[serde(default)]
    pub pruned: usize,
    #[serde(default)]
    pub prune_failed: usize,
}

impl Summary {
    pub fn of(results: &[ImageResult]) -> Summary {
        let mut summary = Summary::default();
        for result in results {
            summary.count(result);
        }
        summary
    }

    /// Counts one more result (a run counts its results as they are made).
    pub fn count(&mut self, r: &ImageResult) {
        self.total += 1;
        match r.status {
            Status::Copied => self.copied += 1,
            Status::Unchanged => self.unchanged += 1,
            Status::Failed => self.failed += 1,
            Status::WouldCopy => self.would_copy += 1,
            Status::Cancelled => self.cancelled += 1,
            Status::Drifted => self.drifted += 1,
            Status::Immutable => self.immutable += 1,
        }
        self.bytes_transferred += r.bytes_transferred;
        self.blobs_transferred += r.blobs_transferred;
        self.blobs_mounted += r.blobs_mounted;
        self.blobs_skipped += r.blobs_skipped;
        self.referrers_copied += r.referrers_copied;
        self.referrers_unchanged += r.referrers_unchanged;
    }
}

impl Summary {
    /// `pruned` and `prune_failed`, from what the rules say.
    pub fn count_prunes(&mut self, rules: &[RuleTags]) {
        self.pruned = rules.iter().map(|r| r.pruned.len()).sum();
        self.prune_failed = rules.iter().filter(|r| r.prune_error.is_some()).count();
    }
}

/// Combines the reports of the slices of a sharded migration: all results, recomputed
/// summary, the earliest start and the latest end.
pub fn merge(reports: Vec<Report>) -> Option<Report> {
    let mut reports = reports.into_iter();
    let mut merged = reports.next()?;
    let others: Vec<Report> = reports.collect();
    for report in others.iter().cloned() {
        if report.started_at < merged.started_at {
            merged.started_at = report.started_at;
        }
        if report.finished_at > merged.finished_at {
            merged.finished_at = report.finished_at;
        }
        merged.results.extend(report.results);
        merged.warnings.extend(report.warnings);
        merged.rules.extend(report.rules);
        for target in report.targets {
            // Every slice checks the containers of its own images; one entry each.
            if !merged
                .targets
                .iter()
                .any(|t| t.registry == target.registry && t.name == target.name)
            {
                merged.targets.push(target);
            }
        }
    }
    let parse = |t: &str| humantime::parse_rfc3339(t).ok();
    if let (Some(start), Some(end)) = (parse(&merged.started_at), parse(&merged.finished_at)) {
        merged.duration_seconds = end.duration_since(start).unwrap_or_default().as_secs_f64();
    }
    merged.settings.shard = None;
    let mut manifest_gets = merged.summary.manifest_gets.clone();
    for report in &others {
        for (registry, count) in &report.summary.manifest_gets {
            *manifest_gets.entry(registry.clone()).or_default() += count;
        }
    }
    merged.summary = Summary::of(&merged.results);
    merged.summary.manifest_gets = manifest_gets;
    merged.summary.targets = TargetCounts::of(&merged.targets);
    merged.summary.count_prunes(&merged.rules);
    Some(merged)
}

/// The JSON Schema of the report, as committed in `schema/report.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Report);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

/// Results and reports for the tests of the renderings (here, JUnit, metrics, GitHub's
/// summary, the spool), so that each test states only what it is about.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Failure, ImageResult, Report, Status};

    /// `source` → `target` with `status`, one attempt and nothing moved; a failure (when
    /// `status` is `Failed`) is a 404 saying `message`.
    pub fn result(source: String, target: String, status: Status, message: &str) -> ImageResult {
        let failure = Failure {
            kind: crate::error::ErrorKind::NotFound,
            message: message.into(),
            http_status: Some(404),
        };
        ImageResult {
            status,
            error: (status == Status::Failed).then_some(failure.clone()),
            ..ImageResult::failed_before_copy("rule".into(), 1, source, target, 1, failure)
        }
    }

    /// A report of no results with `summary` (counts the summary's JSON names).
    pub fn report(summary: serde_json::Value) -> Report {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "tool": "image-migrator", "tool_version": "0",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:40Z",
            "duration_seconds": 100.5,
            "settings": {"auth_file": null, "images_file": "images.json",
                         "default_registry": null, "default_namespace": null, "proc": 1,
                         "retries": 0, "dry_run": false, "ca_file": null, "platforms": [],
                         "shard": null},
            "results": [],
            "summary": summary,
        }))
        .expect("a valid report")
    }
}
