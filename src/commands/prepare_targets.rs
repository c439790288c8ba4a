//! `sync --create-targets`, between planning and copying: the containers the planned
//! jobs push into are checked (and made) through `crate::vendor::prepare`, each outcome
//! logged (`would create …` in a dry run), and the jobs of a container that could not be
//! made become failures of their own, so that nothing else stops.

use crate::plan::{Plan, RuleFailure};
use crate::report::{TargetOutcome, TargetResult};
use crate::vendor::prepare;

/// Prepares the targets of `plan` when `create` is set; the report's `targets`.
pub(super) fn prepare_targets(
    client: &crate::registry::Client,
    plan: &mut Plan,
    create: bool,
    dry_run: bool,
) -> Vec<TargetResult> {
    if !create {
        return Vec::new();
    }
    let mut targets: Vec<(String, String)> = plan
        .jobs
        .iter()
        .map(|job| (job.target.registry.clone(), job.target.repository.clone()))
        .collect();
    targets.sort();
    targets.dedup();
    let stats = crate::http::RequestStats::default();
    let preparation = prepare::prepare(client, &targets, dry_run, &stats);
    for warning in preparation.warnings {
        crate::progress::log(&format!("warning: {warning}"));
        plan.warnings.push(warning);
    }
    for prepared in &preparation.prepared {
        let what = prepared.describe();
        crate::progress::log(&match (&prepared.outcome, &prepared.error) {
            (TargetOutcome::Existed, _) => format!("target     {what} exists"),
            (TargetOutcome::Created, _) => format!("target     created {what}"),
            (TargetOutcome::WouldCreate, _) => format!("target     would create {what}"),
            (TargetOutcome::Failed, error) => format!(
                "target     cannot create {what}: {}",
                error.as_ref().map(ToString::to_string).unwrap_or_default()
            ),
        });
    }
    fail_jobs_without_container(plan, &preparation.prepared);
    preparation
        .prepared
        .into_iter()
        .map(|p| TargetResult {
            registry: p.registry.clone(),
            kind: p.kind.to_string(),
            name: p.name.clone(),
            outcome: p.outcome,
            error: p.error.map(|e| e.message),
        })
        .collect()
}

/// The images whose container could not be made fail, and only those.
fn fail_jobs_without_container(plan: &mut Plan, prepared: &[prepare::Prepared]) {
    let failed: Vec<&prepare::Prepared> = prepared
        .iter()
        .filter(|p| p.outcome == TargetOutcome::Failed)
        .collect();
    if failed.is_empty() {
        return;
    }
    for job in std::mem::take(&mut plan.jobs) {
        let Some(container) = failed
            .iter()
            .find(|p| p.holds(&job.target.registry, &job.target.repository))
        else {
            plan.jobs.push(job);
            continue;
        };
        let cause = container
            .error
            .clone()
            .unwrap_or_else(|| crate::error::Error::protocol("the target could not be created"));
        plan.failures.push(RuleFailure {
            rule: job.rule,
            rule_line: job.rule_line,
            source: job.source,
            target: job.target,
            error: crate::error::Error {
                message: format!("cannot create {}: {}", container.describe(), cause.message),
                ..cause
            },
            attempts: 1,
        });
    }
}
