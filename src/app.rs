//! Wiring: configuration → plan → parallel copy → report. The only place that chooses
//! threads, prints the human log, writes files and decides the exit code.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use rayon::prelude::*;

use crate::cli::{FileArgs, Format, SyncArgs, ValidateArgs};
use crate::config::{Config, ConfigErrors, ConfigPaths, images::check_defaults};
use crate::copy::{Copier, JobOutcome};
use crate::github;
use crate::http::{Transport, TransportOptions};
use crate::plan::{self, Job, RuleFailure};
use crate::progress::{Progress, human_bytes};
use crate::registry::Client;
use crate::report::{Failure, ImageResult, Report, Settings, Status, Summary, junit_xml};

/// Exit codes of the contract.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads and checks both files, or prints every problem and says why it stops.
fn load_config(files: &FileArgs) -> Result<Config, ConfigErrors> {
    let defaults = files.defaults();
    if let Err(message) = check_defaults(&defaults) {
        return Err(ConfigErrors(vec![crate::config::ConfigError::file(
            Path::new("command line"),
            message,
        )]));
    }
    let paths = ConfigPaths {
        auth: files.auth.clone(),
        images: files.images.clone(),
    };
    Config::load(&paths, &defaults, &env_lookup)
}

fn print_config_errors(errors: &ConfigErrors) {
    if github::active() {
        github::annotate_config_errors(errors);
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(
        stderr,
        "error: configuration is invalid ({} problem{}); nothing was copied:",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    for error in &errors.0 {
        let _ = writeln!(stderr, "  {error}");
    }
}

/// `image-migrator validate`.
pub fn validate(args: &ValidateArgs) -> i32 {
    let config = match load_config(&args.files) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return EXIT_CONFIG;
        }
    };
    let rules: Vec<serde_json::Value> = config
        .rules
        .iter()
        .map(|rule| {
            // The entry whose credentials are used; null = anonymous (no matching key, or
            // the matching entry has no username and password, e.g. `{}`).
            let auth_key = |registry: &str, repository: &str| {
                config
                    .auth
                    .lookup(registry, repository)
                    .filter(|e| e.credentials().is_some())
                    .map(|e| e.key.clone())
            };
            serde_json::json!({
                "source": rule.source.name(),
                "target": rule.target.to_string(),
                "tags": rule.tags_label(),
                "source_auth": auth_key(&rule.source.registry, &rule.source.repository),
                "target_auth": auth_key(&rule.target.registry, &rule.target.repository),
                "line": rule.line,
            })
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({ "rules": rules });
            let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&doc).unwrap());
        }
        Format::Text => {
            for rule in &rules {
                let auth = |v: &serde_json::Value| v.as_str().unwrap_or("anonymous").to_string();
                let _ = writeln!(
                    stdout,
                    "line {}: {} [{}] → {}  (source auth: {}, target auth: {})",
                    rule["line"],
                    rule["source"].as_str().unwrap_or_default(),
                    rule["tags"].as_str().unwrap_or_default(),
                    rule["target"].as_str().unwrap_or_default(),
                    auth(&rule["source_auth"]),
                    auth(&rule["target_auth"]),
                );
            }
            let _ = writeln!(stdout, "{} rule(s) valid", rules.len());
        }
    }
    EXIT_OK
}

/// `image-migrator config`: images.json from a Kubernetes cluster.
pub fn discover(args: &crate::kube::ConfigArgs) -> i32 {
    match crate::kube::run(args) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

/// `image-migrator report merge`.
pub fn merge_reports(args: &crate::cli::MergeArgs) -> i32 {
    let mut reports = Vec::new();
    for path in &args.reports {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Report>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(report) if report.schema_version == crate::report::SCHEMA_VERSION => {
                reports.push(report)
            }
            Ok(report) => {
                eprintln!(
                    "error: {}: schema version {} is not {}",
                    path.display(),
                    report.schema_version,
                    crate::report::SCHEMA_VERSION
                );
                return EXIT_CONFIG;
            }
            Err(e) => {
                eprintln!(
                    "error: {}: not an image-migrator report: {e}",
                    path.display()
                );
                return EXIT_CONFIG;
            }
        }
    }
    let Some(merged) = crate::report::merge(reports) else {
        return EXIT_CONFIG;
    };
    if let Err(e) = write_file(
        &args.output,
        &(serde_json::to_string_pretty(&merged).unwrap() + "\n"),
    ) {
        eprintln!("error: writing {}: {e}", args.output.display());
        return EXIT_FAILED;
    }
    print_summary(&merged, &args.output);
    if merged.summary.failed + merged.summary.cancelled > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// `image-migrator sync` (and no subcommand).
pub fn sync(args: &SyncArgs, cancelled: Arc<AtomicBool>) -> i32 {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let config = match load_config(&args.files) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return EXIT_CONFIG;
        }
    };
    let in_github = github::active();
    if in_github {
        github::mask_secrets(&config.auth.secret_values());
    }
    if let Some(ca_file) = &args.ca_file
        && !ca_file.is_file()
    {
        eprintln!(
            "error: --ca-file (or SSL_CERT_FILE) {}: no such file; nothing was copied",
            ca_file.display()
        );
        return EXIT_CONFIG;
    }
    let options = TransportOptions {
        retries: args.retries,
        ca_file: args.ca_file.clone(),
        max_idle_per_host: usize::from(args.proc) * 2,
    };
    let transport = match Transport::new(&options, cancelled) {
        Ok(transport) => transport,
        Err(e) => {
            eprintln!("error: {e}; nothing was copied");
            return EXIT_CONFIG;
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(usize::from(args.proc))
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("error: cannot start worker threads: {e}");
            return EXIT_FAILED;
        }
    };
    let client = Client::new(
        transport,
        config.auth,
        usize::from(args.registry_concurrency),
    );
    eprintln!(
        "image-migrator {}: {} rule(s){}",
        env!("CARGO_PKG_VERSION"),
        config.rules.len(),
        if args.dry_run {
            " (dry run: nothing is written)"
        } else {
            ""
        }
    );

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
        eprintln!("shard {shard}: {} rule(s) in this slice", rules.len());
    }
    let (plan, outcomes) = pool.install(|| {
        let plan = plan::plan(&client, &rules);
        let progress = Progress::start(plan.jobs.len());
        for failure in &plan.failures {
            progress.line(&log_line(&failure_result(failure)));
        }
        let copier = Copier::new(&client, args.dry_run, args.platforms());
        let outcomes: Vec<ImageResult> = plan
            .jobs
            .par_iter()
            .map(|job| {
                let result = job_result(job, copier.run(job));
                progress.line(&log_line(&result));
                progress.image_done(result.bytes_transferred);
                result
            })
            .collect();
        progress.finish();
        (plan, outcomes)
    });
    if in_github {
        github::end_group();
    }

    let mut results: Vec<ImageResult> = plan.failures.iter().map(failure_result).collect();
    results.extend(outcomes);
    let summary = Summary::of(&results);
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool: "image-migrator".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_seconds: started.elapsed().as_secs_f64(),
        settings: Settings {
            auth_file: effective_auth_file(&args.files),
            images_file: args.files.images.display().to_string(),
            default_registry: args.files.defaults().registry,
            default_namespace: args.files.defaults().namespace,
            proc: usize::from(args.proc),
            retries: args.retries,
            dry_run: args.dry_run,
            ca_file: args.ca_file.as_ref().map(|p| p.display().to_string()),
            platforms: args.platforms().iter().map(ToString::to_string).collect(),
            shard: args.shard.map(|s| s.to_string()),
        },
        results,
        summary,
    };
    let mut exit = if report.summary.failed + report.summary.cancelled > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    };
    if let Err(e) = write_file(
        &args.report,
        &(serde_json::to_string_pretty(&report).unwrap() + "\n"),
    ) {
        eprintln!("error: writing report {}: {e}", args.report.display());
        exit = EXIT_FAILED;
    }
    if let Some(junit) = &args.junit
        && let Err(e) = write_file(junit, &junit_xml(&report))
    {
        eprintln!("error: writing JUnit file {}: {e}", junit.display());
        exit = EXIT_FAILED;
    }
    print_summary(&report, &args.report);
    if in_github {
        github::annotate_failures(&report);
        let written = github::write_outputs(&report, &args.report)
            .and_then(|()| github::write_summary(&report, &args.report));
        if let Err(e) = written {
            eprintln!("error: writing GitHub step outputs/summary: {e}");
            exit = EXIT_FAILED;
        }
    }
    exit
}

/// The auth file actually read, if any (the default one only when it exists).
fn effective_auth_file(files: &FileArgs) -> Option<String> {
    match &files.auth {
        Some(path) => Some(path.display().to_string()),
        None => Path::new(crate::config::auth::DEFAULT_PATH)
            .exists()
            .then(|| crate::config::auth::DEFAULT_PATH.to_string()),
    }
}

fn write_file(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)
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
        media_type: outcome.media_type,
        status: outcome.status,
        bytes_transferred: outcome.bytes_transferred,
        blobs_transferred: outcome.blobs_transferred,
        blobs_mounted: outcome.blobs_mounted,
        blobs_skipped: outcome.blobs_skipped,
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
fn log_line(result: &ImageResult) -> String {
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
    format!(
        "{:<10} {} → {}{}{}",
        result.status.label(),
        result.source,
        result.target,
        if detail.is_empty() { "" } else { "  " },
        detail
    )
}

fn print_summary(report: &Report, report_path: &Path) {
    let s = &report.summary;
    eprintln!(
        "summary: {} image(s): {} copied, {} unchanged, {} failed, {} would copy, {} cancelled; \
         {} in {} blob(s), {} mounted, {} already present; {:.1}s; report: {}",
        s.total,
        s.copied,
        s.unchanged,
        s.failed,
        s.would_copy,
        s.cancelled,
        human_bytes(s.bytes_transferred),
        s.blobs_transferred,
        s.blobs_mounted,
        s.blobs_skipped,
        report.duration_seconds,
        report_path.display()
    );
}
