//! `image-migrator sync` (and no subcommand): glue over short stages. The flags become
//! validated [`SyncSettings`] before any request; then connect → plan → prepare targets →
//! copy → prune → report → outputs. Every line people read goes through one channel
//! ([`crate::progress`]), so it also reaches `--log`.

mod prune;
mod results;
mod settings;
mod spool;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use super::{Outcome, print_summary, write_json, write_streamed};
use crate::cli::SyncArgs;
use crate::config::Rule;
use crate::copy::{Copier, Mode};
use crate::credentials::CredentialStore;
use crate::github;
use crate::http::Transport;
use crate::plan::{self, Job, Plan};
use crate::progress::{Progress, log};
use crate::registry::Client;
use crate::report::{ImageResult, Report};
use crate::threads::Threads;
pub(super) use results::Ran;
use results::{failure_result, job_result, log_line};
pub use settings::SyncSettings;
use spool::Spool;
pub(super) use spool::Spooled;

/// `image-migrator sync` (and no subcommand).
pub fn sync(args: &SyncArgs, cancelled: Arc<AtomicBool>) -> Outcome {
    let started = (SystemTime::now(), Instant::now());
    let settings = match SyncSettings::from_args(args) {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let Some(client) = connect(&settings, cancelled) else {
        return Outcome::InvalidInput;
    };
    log_start(&settings);
    if settings.in_github {
        github::group("image-migrator: images");
    }
    let threads = Threads::new(settings.copy.threads);
    let mut plan = std::thread::scope(|scope| {
        scope.spawn(|| client.ping_all(&targets_only(&settings.rules)));
        plan::plan(&client, &threads, &settings.rules, &settings.plan_options())
    });
    let targets = super::prepare_targets::prepare_targets(
        &client,
        &mut plan,
        settings.create_targets,
        settings.copy.mode == Mode::DryRun,
    );
    let prune_repos = settings
        .prune
        .enabled
        .then(|| crate::prune::target_repos(&settings.rules, &plan, settings.shard));
    let copier = Copier::new(&client, client.transport(), settings.copy.clone());
    let (results, facts) = copy(&settings, &copier, &mut plan, |_, _| {});
    let pruned = match prune_repos {
        Some(repos) => prune_stage(&settings, &client).run(repos, &facts),
        None => Vec::new(),
    };
    let ran = Ran {
        plan,
        targets,
        results,
        pruned,
    };
    finish(&settings, &client, ran, started)
}

/// The target registries that are no rule's source (planning pings those), each once.
fn targets_only(rules: &[Rule]) -> Vec<&str> {
    let sources: HashSet<&str> = rules.iter().map(|r| r.source.registry.as_str()).collect();
    let mut targets: Vec<&str> = Vec::new();
    for rule in rules {
        let target = rule.target.registry.as_str();
        if !sources.contains(target) && !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

/// The report of the run and the files and outputs made of it; the run's outcome.
pub(super) fn finish(
    settings: &SyncSettings,
    client: &Client,
    ran: Ran,
    started: (SystemTime, Instant),
) -> Outcome {
    if settings.in_github {
        github::end_group();
    }
    let report = results::report(settings, client, ran, started);
    outputs(settings, &report)
}

/// The transport and the registry client; `None` (after saying why) when they cannot be
/// made.
pub(super) fn connect(settings: &SyncSettings, cancelled: Arc<AtomicBool>) -> Option<Client> {
    let transport = match Transport::new(&settings.transport, cancelled) {
        Ok(transport) => transport,
        Err(e) => {
            log(&format!("error: {e}; nothing was copied"));
            return None;
        }
    };
    let on_secret: Box<dyn Fn(&str) + Send + Sync> = if settings.in_github {
        Box::new(|secret| github::mask_secrets(&[secret]))
    } else {
        Box::new(|_| {})
    };
    let credentials =
        CredentialStore::new(settings.auth.clone(), settings.machine.clone(), on_secret)
            .with_cloud(crate::config::CloudKeys::from_env(&|name| {
                std::env::var(name).ok()
            }));
    match Client::new(transport, credentials, settings.registry_concurrency) {
        Ok(client) => Some(client.with_chunk_size(settings.chunk_size)),
        Err(e) => {
            log(&format!("error: {e}; nothing was copied"));
            None
        }
    }
}

pub(super) fn log_start(settings: &SyncSettings) {
    log(&format!(
        "image-migrator {}: {} rule(s){}{}",
        env!("CARGO_PKG_VERSION"),
        settings.rules.len(),
        if settings.copy.referrers {
            ", with referrers (signatures, SBOMs, attestations)"
        } else {
            ""
        },
        if settings.copy.mode == Mode::DryRun {
            " (dry run: nothing is written)"
        } else {
            ""
        }
    ));
    if let Some(shard) = settings.shard {
        let slice = settings
            .rules
            .iter()
            .filter(|rule| shard.contains(&rule.source.name()))
            .count();
        log(&format!("shard {shard}: {slice} rule(s) in this slice"));
    }
}

fn prune_stage<'a>(settings: &'a SyncSettings, client: &'a Client) -> prune::PruneRun<'a> {
    prune::PruneRun {
        client,
        options: &settings.prune,
        dry_run: settings.copy.mode == Mode::DryRun,
        referrers: settings.copy.referrers,
    }
}

/// Every job of the plan, with one log line per image as it ends (`amend` may change a
/// result first: an export names the layout as the target), and what pruning needs to
/// know of them. Each job is dropped once its result is made, and each result once it is
/// spooled: at 100,000 tags the jobs and the results would otherwise be held to the end.
pub(super) fn copy(
    settings: &SyncSettings,
    copier: &Copier,
    plan: &mut Plan,
    amend: impl Fn(&Job, &mut ImageResult) + Sync,
) -> (Spooled, prune::CopyFacts) {
    let dry_run = settings.copy.mode == Mode::DryRun;
    for warning in &plan.warnings {
        log(&format!("warning: {warning}"));
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
    let spool = Spool::create();
    let mut places = Vec::with_capacity(plan.failures.len());
    for failure in &plan.failures {
        let result = failure_result(failure);
        progress.line(&log_line(&result, dry_run));
        places.push(spool.push(&result));
    }
    let facts = std::sync::Mutex::new(prune::CopyFacts::default());
    let copied = copier.run_all(std::mem::take(&mut plan.jobs), |job, outcome| {
        let mut result = job_result(job, outcome);
        amend(job, &mut result);
        if settings.prune.enabled {
            facts.lock().unwrap().learn(job, &result);
        }
        progress.line(&log_line(&result, dry_run));
        progress.image_done(result.bytes_transferred);
        spool.push(&result)
    });
    progress.finish();
    let planning_failures = places.len();
    places.extend(copied);
    let results = spool.finish(places, planning_failures);
    (results, facts.into_inner().unwrap())
}

/// The report, the JUnit file, the summary and GitHub's outputs; the exit outcome.
fn outputs(settings: &SyncSettings, report: &Report<Spooled>) -> Outcome {
    let s = &report.summary;
    let drift = if settings.fail_on_drift {
        s.drifted + s.immutable
    } else {
        0
    };
    let failures = s.failed + s.cancelled + s.prune_failed + drift;
    let mut exit = if failures > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    if let Err(e) = write_json(&settings.report, report) {
        log(&format!(
            "error: writing report {}: {e}",
            settings.report.display()
        ));
        exit = Outcome::Failed;
    }
    if let Some(junit) = &settings.junit
        && let Err(e) = write_streamed(junit, |out| crate::report::write_junit(report, out))
    {
        log(&format!(
            "error: writing JUnit file {}: {e}",
            junit.display()
        ));
        exit = Outcome::Failed;
    }
    print_summary(report, &settings.report);
    if settings.in_github {
        github::annotate_failures(report);
        let written = github::write_outputs(report, &settings.report)
            .and_then(|()| github::write_summary(report, &settings.report));
        if let Err(e) = written {
            log(&format!("error: writing GitHub step outputs/summary: {e}"));
            exit = Outcome::Failed;
        }
    }
    if let Some(e) = report.results.error() {
        log(&format!(
            "error: the results of this run (spooled to a temporary file): {e}"
        ));
        exit = Outcome::Failed;
    }
    if let Some(metrics) = &settings.metrics {
        let text = crate::report::prometheus_text(report, exit == Outcome::Success);
        if let Err(e) = super::write_file_whole(metrics, &text) {
            log(&format!(
                "error: writing metrics {}: {e}",
                metrics.display()
            ));
            exit = Outcome::Failed;
        }
    }
    exit
}
