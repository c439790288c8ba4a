//! What a sync run tells: one result per image (copied, or failed while planning), its
//! log line, and the report that gathers them with the settings and the summary.

use std::time::{Instant, SystemTime};

use super::SyncSettings;
use super::prune::Pruned;
use super::spool::Spooled;
use crate::copy::JobOutcome;
use crate::plan::{Job, Plan, RuleFailure};
use crate::progress::human_bytes;
use crate::registry::Client;
use crate::report::{
    Failure, ImageResult, ReferrerCopied, Report, RuleTags, Status, TargetCounts, TargetResult,
};

/// What the stages of a run made, for the report.
pub(in crate::commands) struct Ran {
    pub plan: Plan,
    pub targets: Vec<TargetResult>,
    /// Every result, those of images that failed while planning first.
    pub results: Spooled,
    pub pruned: Vec<Pruned>,
}

/// The report of a run that started at `started` (wall clock, monotonic).
pub(super) fn report(
    settings: &SyncSettings,
    client: &Client,
    ran: Ran,
    started: (SystemTime, Instant),
) -> Report<Spooled> {
    let Ran {
        plan,
        targets,
        results,
        pruned,
    } = ran;
    let rules = rule_tags(&plan, pruned);
    let mut summary = results.summary().clone();
    summary.manifest_gets = client.manifest_gets();
    summary.targets = TargetCounts::of(&targets);
    summary.count_prunes(&rules);
    Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: "image-migrator".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: humantime::format_rfc3339_seconds(started.0).to_string(),
        finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_seconds: started.1.elapsed().as_secs_f64(),
        settings: settings.shown.clone(),
        rules,
        targets,
        results,
        summary,
        warnings: plan.warnings,
    }
}

/// Per all-tags rule: its tag counts, and what `--prune` did under it.
fn rule_tags(plan: &Plan, pruned: Vec<Pruned>) -> Vec<RuleTags> {
    let mut rules: Vec<RuleTags> = plan
        .tag_counts
        .iter()
        .map(|count| RuleTags {
            rule: count.rule.clone(),
            rule_line: count.rule_line,
            source: count.source.clone(),
            tags_listed: count.tags_listed,
            tags_selected: count.tags_selected,
            pruned: Vec::new(),
            prune_kept: Vec::new(),
            prune_error: None,
            prune_skipped: None,
        })
        .collect();
    for done in pruned {
        let Some(owner) = &done.rule else { continue };
        if let Some(rule) = rules
            .iter_mut()
            .find(|r| r.rule == owner.key && r.rule_line == owner.line)
        {
            rule.pruned.extend(done.pruned);
            rule.prune_kept.extend(done.kept);
            rule.prune_error = rule.prune_error.take().or(done.error);
            rule.prune_skipped = rule.prune_skipped.take().or(done.skipped);
        }
    }
    rules
}

pub(super) fn job_result(job: &Job, outcome: JobOutcome) -> ImageResult {
    ImageResult {
        rule: job.rule.clone(),
        rule_line: job.rule_line,
        source: job.source.to_string(),
        target: match (&job.target.tag, &outcome.target_digest) {
            (None, Some(digest)) => format!("{}@{digest}", job.target.name()),
            _ => job.target.to_string(),
        },
        platform_filtered: outcome.status != Status::Drifted
            && outcome.target_digest.is_some()
            && outcome.target_digest != outcome.source_digest,
        source_digest: outcome.source_digest.map(|d| d.to_string()),
        target_digest: outcome.target_digest.map(|d| d.to_string()),
        media_type: outcome.media_type.map(|m| m.to_string()),
        status: outcome.status,
        bytes_transferred: outcome.bytes_transferred,
        blobs_transferred: outcome.blobs_transferred,
        blobs_mounted: outcome.blobs_mounted,
        blobs_skipped: outcome.blobs_skipped,
        referrers_copied: outcome.referrers_copied,
        referrers_unchanged: outcome.referrers_unchanged,
        referrers: outcome
            .referrers
            .into_iter()
            .map(|note| ReferrerCopied {
                digest: note.digest.to_string(),
                artifact_type: note.kind,
                subject: note.subject.to_string(),
                tag: note.tag,
            })
            .collect(),
        duration_seconds: outcome.seconds,
        attempts: outcome.attempts,
        error: outcome.error.map(|e| Failure {
            kind: e.kind,
            message: e.message,
            http_status: e.status,
        }),
    }
}

pub(super) fn failure_result(failure: &RuleFailure) -> ImageResult {
    ImageResult::failed_before_copy(
        failure.rule.clone(),
        failure.rule_line,
        failure.source.to_string(),
        failure.target.to_string(),
        failure.attempts,
        Failure {
            kind: failure.error.kind,
            message: failure.error.message.clone(),
            http_status: failure.error.status,
        },
    )
}

/// The log line of one image.
pub(super) fn log_line(result: &ImageResult, dry_run: bool) -> String {
    let detail = match (&result.status, &result.error) {
        (_, Some(error)) => error.message.clone(),
        (Status::Drifted, None) => format!(
            "the target has {}, the source {} (--overwrite never)",
            result.target_digest.as_deref().unwrap_or("?"),
            result.source_digest.as_deref().unwrap_or("?")
        ),
        (Status::Copied, None) => format!(
            "{} blob(s) copied, {} mounted, {} present, {}, {:.1}s",
            result.blobs_transferred,
            result.blobs_mounted,
            result.blobs_skipped,
            human_bytes(result.bytes_transferred),
            result.duration_seconds
        ),
        _ => String::new(),
    };
    let copied = if dry_run { "to copy" } else { "copied" };
    let referrers = if result.referrers_copied + result.referrers_unchanged > 0 {
        format!(
            "{}{} referrer(s) {copied}, {} present",
            if detail.is_empty() { "" } else { ", " },
            result.referrers_copied,
            result.referrers_unchanged
        )
    } else {
        String::new()
    };
    let mut line = format!(
        "{:<10} {} → {}{}{}{}",
        result.status.label(),
        result.source,
        result.target,
        if detail.is_empty() && referrers.is_empty() {
            ""
        } else {
            "  "
        },
        detail,
        referrers
    );
    // Each referrer copied (in a dry run: that would be), on a line of its own.
    let verb = if dry_run { "would copy" } else { "copied" };
    for referrer in &result.referrers {
        line.push_str(&format!(
            "\n           {verb} referrer {} ({}) of {}{}",
            referrer.digest,
            referrer.artifact_type,
            referrer.subject,
            referrer
                .tag
                .as_ref()
                .map(|tag| format!(" as tag {tag}"))
                .unwrap_or_default()
        ));
    }
    line
}
