//! `image-migrator sync` (and no subcommand): plan, copy in parallel, write the report.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use super::{Outcome, load_config, print_config_errors, print_summary, write_file, write_json};
use crate::cli::{FileArgs, SyncArgs};
use crate::copy::{Copier, JobOutcome};
use crate::credentials::CredentialStore;
use crate::github;
use crate::http::{Transport, TransportOptions};
use crate::plan::{self, Job, RuleFailure};
use crate::progress::{Progress, human_bytes};
use crate::registry::Client;
use crate::report::{
    Failure, ImageResult, ReferrerCopied, Report, RuleTags, Settings, Status, Summary, junit_xml,
};

/// `image-migrator sync` (and no subcommand).
pub fn sync(args: &SyncArgs, cancelled: Arc<AtomicBool>) -> Outcome {
    let started_at = SystemTime::now();
    let started = Instant::now();
    if let Some(path) = &args.log {
        match std::fs::File::create(path) {
            Ok(file) => crate::progress::tee_to(file),
            Err(e) => {
                eprintln!("error: --log {}: {e}; nothing was copied", path.display());
                return Outcome::InvalidInput;
            }
        }
    }
    let config = match load_config(&args.files) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return Outcome::InvalidInput;
        }
    };
    let in_github = github::active();
    if in_github {
        github::mask_secrets(&config.auth.secret_values());
        github::mask_secrets(&config.machine.secret_values());
    }
    if let Some(ca_file) = &args.ca_file
        && !ca_file.is_file()
    {
        crate::progress::log(&format!(
            "error: --ca-file (or SSL_CERT_FILE) {}: no such file; nothing was copied",
            ca_file.display()
        ));
        return Outcome::InvalidInput;
    }
    let options = TransportOptions {
        retries: args.retries,
        ca_file: args.ca_file.clone(),
        max_idle_per_host: usize::from(args.proc) * 2,
        certs_d: Some(crate::http::DOCKER_CERTS_D.into()),
        time: args.time_bounds(),
    };
    let transport = match Transport::new(&options, cancelled) {
        Ok(transport) => transport,
        Err(e) => {
            crate::progress::log(&format!("error: {e}; nothing was copied"));
            return Outcome::InvalidInput;
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(usize::from(args.proc))
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            crate::progress::log(&format!("error: cannot start worker threads: {e}"));
            return Outcome::Failed;
        }
    };
    let on_secret: Box<dyn Fn(&str) + Send + Sync> = if in_github {
        Box::new(|secret| github::mask_secrets(&[secret]))
    } else {
        Box::new(|_| {})
    };
    let credentials = CredentialStore::new(config.auth, config.machine, on_secret);
    let client = match Client::new(
        transport,
        credentials,
        usize::from(args.registry_concurrency),
    ) {
        Ok(client) => client,
        Err(e) => {
            crate::progress::log(&format!("error: {e}; nothing was copied"));
            return Outcome::InvalidInput;
        }
    };
    crate::progress::log(&format!(
        "image-migrator {}: {} rule(s){}{}",
        env!("CARGO_PKG_VERSION"),
        config.rules.len(),
        if args.referrers {
            ", with referrers (signatures, SBOMs, attestations)"
        } else {
            ""
        },
        if args.dry_run {
            " (dry run: nothing is written)"
        } else {
            ""
        }
    ));

    if in_github {
        github::group("image-migrator: images");
    }
    let rules: Vec<_> = match args.shard {
        Some(shard) => config
            .rules
            .into_iter()
            .filter(|rule| shard.contains(&rule.source.name()))
            .collect(),
        None => config.rules,
    };
    if let Some(shard) = args.shard {
        crate::progress::log(&format!(
            "shard {shard}: {} rule(s) in this slice",
            rules.len()
        ));
    }
    // Planning lists tags on rayon's pool; the copy has threads of its own, which never
    // steal work (see `copy::Threads`).
    let mut plan = pool.install(|| plan::plan(&client, &rules, args.referrers));
    let targets = super::prepare_targets::prepare_targets(
        &client,
        &mut plan,
        args.create_targets,
        args.dry_run,
    );
    let outcomes = {
        for warning in &plan.warnings {
            crate::progress::log(&format!("warning: {warning}"));
        }
        let progress = Progress::start(plan.jobs.len());
        for count in plan
            .tag_counts
            .iter()
            .filter(|c| c.tags_selected != c.tags_listed)
        {
            progress.line(&format!(
                "tags       {} (line {}): {} selected of {} listed",
                count.source, count.rule_line, count.tags_selected, count.tags_listed
            ));
        }
        for failure in &plan.failures {
            progress.line(&log_line(&failure_result(failure), args.dry_run));
        }
        let copier = Copier::new(
            &client,
            usize::from(args.proc),
            args.dry_run,
            args.platforms(),
        )
        .force(args.force)
        .with_referrers(args.referrers);
        // Each job is dropped once its result is made: at 20,000 tags the jobs and the
        // results would otherwise both be held to the end.
        let outcomes = copier.run_all(std::mem::take(&mut plan.jobs), |job, outcome| {
            let result = job_result(job, outcome);
            progress.line(&log_line(&result, args.dry_run));
            progress.image_done(result.bytes_transferred);
            result
        });
        progress.finish();
        outcomes
    };
    if in_github {
        github::end_group();
    }

    let mut results: Vec<ImageResult> = plan.failures.iter().map(failure_result).collect();
    results.extend(outcomes);
    let mut summary = Summary::of(&results);
    summary.manifest_gets = client.manifest_gets();
    summary.targets = crate::report::TargetCounts::of(&targets);
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: "image-migrator".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_seconds: started.elapsed().as_secs_f64(),
        settings: Settings {
            auth_file: effective_auth_file(&args.files),
            images_file: args.files.images_file().display().to_string(),
            default_registry: args.files.defaults().registry,
            default_namespace: args.files.defaults().namespace,
            proc: usize::from(args.proc),
            retries: args.retries,
            dry_run: args.dry_run,
            force: args.force,
            ca_file: args.ca_file.as_ref().map(|p| p.display().to_string()),
            platforms: args.platforms().iter().map(ToString::to_string).collect(),
            shard: args.shard.map(|s| s.to_string()),
            referrers: args.referrers,
            request_timeout_seconds: args.request_timeout.as_secs_f64(),
            min_speed_bytes_per_second: args.min_speed,
            min_speed_window_seconds: args.min_speed_window.as_secs_f64(),
        },
        rules: plan
            .tag_counts
            .iter()
            .map(|count| RuleTags {
                rule: count.rule.clone(),
                rule_line: count.rule_line,
                source: count.source.clone(),
                tags_listed: count.tags_listed,
                tags_selected: count.tags_selected,
            })
            .collect(),
        results,
        targets,
        summary,
        warnings: plan.warnings,
    };
    let mut exit = if report.summary.failed + report.summary.cancelled > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    if let Err(e) = write_json(&args.report, &report) {
        crate::progress::log(&format!(
            "error: writing report {}: {e}",
            args.report.display()
        ));
        exit = Outcome::Failed;
    }
    if let Some(junit) = &args.junit
        && let Err(e) = write_file(junit, &junit_xml(&report))
    {
        crate::progress::log(&format!(
            "error: writing JUnit file {}: {e}",
            junit.display()
        ));
        exit = Outcome::Failed;
    }
    print_summary(&report, &args.report);
    if in_github {
        github::annotate_failures(&report);
        let written = github::write_outputs(&report, &args.report)
            .and_then(|()| github::write_summary(&report, &args.report));
        if let Err(e) = written {
            crate::progress::log(&format!("error: writing GitHub step outputs/summary: {e}"));
            exit = Outcome::Failed;
        }
    }
    exit
}

/// The auth file actually read, if any (the default one only when it exists).
fn effective_auth_file(files: &FileArgs) -> Option<String> {
    if let Some(config) = &files.config {
        return Some(config.display().to_string());
    }
    match &files.auth {
        Some(path) => Some(path.display().to_string()),
        None => Path::new(crate::config::auth::DEFAULT_PATH)
            .exists()
            .then(|| crate::config::auth::DEFAULT_PATH.to_string()),
    }
}

fn job_result(job: &Job, outcome: JobOutcome) -> ImageResult {
    ImageResult {
        rule: job.rule.clone(),
        rule_line: job.rule_line,
        source: job.source.to_string(),
        target: match (&job.target.tag, &outcome.target_digest) {
            (None, Some(digest)) => format!("{}@{digest}", job.target.name()),
            _ => job.target.to_string(),
        },
        platform_filtered: outcome.target_digest.is_some()
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

fn failure_result(failure: &RuleFailure) -> ImageResult {
    ImageResult {
        rule: failure.rule.clone(),
        rule_line: failure.rule_line,
        source: failure.source.to_string(),
        target: failure.target.to_string(),
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
        attempts: failure.attempts,
        error: Some(Failure {
            kind: failure.error.kind,
            message: failure.error.message.clone(),
            http_status: failure.error.status,
        }),
    }
}

/// The log line of one image.
fn log_line(result: &ImageResult, dry_run: bool) -> String {
    let detail = match (&result.status, &result.error) {
        (_, Some(error)) => error.message.clone(),
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
