//! `sync --create-targets`: before any blob moves, each distinct target container — the
//! Harbor project or SWR organization a repository lives in, or the ECR repository itself — is checked once and created when missing,
//! because the registry protocol cannot make one and a push into a missing one fails
//! (Harbor's 401 `project p not found`). A dry run only checks. Registries without
//! containers (plain distribution, Docker Hub, Quay) need nothing.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::http::RequestStats;
use crate::kind::Kind;
use crate::registry::Client;
use crate::report::TargetOutcome;

/// One container checked (and made).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub registry: String,
    pub kind: Kind,
    /// The project (Harbor).
    pub name: String,
    pub outcome: TargetOutcome,
    pub error: Option<Error>,
}

impl Prepared {
    /// Whether `repository` of `registry` goes into this container.
    pub fn holds(&self, registry: &str, repository: &str) -> bool {
        registry == self.registry && container_of(self.kind, repository) == Some(&self.name[..])
    }

    /// `harbor project "team" on harbor.example.com`, for log lines.
    pub fn describe(&self) -> String {
        format!(
            "{} {} \"{}\" on {}",
            self.kind,
            self.kind.container().unwrap_or("container"),
            self.name,
            self.registry
        )
    }
}

/// The container a repository goes into on a registry of `kind`; `None` when the kind has
/// none this tool makes.
fn container_of(kind: Kind, repository: &str) -> Option<&str> {
    match kind {
        Kind::Harbor | Kind::Swr => repository.split('/').next(),
        Kind::Ecr => Some(repository),
        _ => None,
    }
}

/// What preparing the targets came to: the containers, and what was left alone and why.
#[derive(Debug, Default)]
pub struct Preparation {
    pub prepared: Vec<Prepared>,
    pub warnings: Vec<String>,
}

/// Checks (and unless `dry_run`, creates) the container of every `(registry, repository)`
/// target, each once. A registry whose kind cannot be settled, or whose kind this tool
/// cannot make containers for yet, is a warning: its pushes tell what is missing.
pub fn prepare(
    client: &Client,
    targets: &[(String, String)],
    dry_run: bool,
    stats: &RequestStats,
) -> Preparation {
    let mut by_registry: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (registry, repository) in targets {
        by_registry.entry(registry).or_default().push(repository);
    }
    let mut out = Preparation::default();
    for (registry, repositories) in by_registry {
        let api = match super::Api::of(client, registry, stats) {
            Ok(api) => api,
            Err(e) => {
                out.warnings.push(format!(
                    "--create-targets: cannot tell what kind of registry {registry} is, so \
                     nothing was created there: {e}"
                ));
                continue;
            }
        };
        match api.kind {
            Kind::Harbor | Kind::Swr | Kind::Ecr => {}
            Kind::Distribution | Kind::DockerHub | Kind::Quay => continue,
        }
        let mut names: Vec<&str> = repositories
            .iter()
            .filter_map(|r| container_of(api.kind, r))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let (outcome, error) = match ensure(&api, name, dry_run, stats) {
                Ok(outcome) => (outcome, None),
                Err(e) => (TargetOutcome::Failed, Some(e)),
            };
            out.prepared.push(Prepared {
                registry: registry.to_string(),
                kind: api.kind,
                name: name.to_string(),
                outcome,
                error,
            });
        }
    }
    out
}

/// One container: existed, created, or (dry run) would be created.
fn ensure(
    api: &super::Api<'_>,
    name: &str,
    dry_run: bool,
    stats: &RequestStats,
) -> Result<TargetOutcome, Error> {
    let (exists, create): (fn(_, _, _) -> _, fn(_, _, _) -> _) = match api.kind {
        Kind::Swr => (
            super::swr::organization_exists,
            super::swr::create_organization,
        ),
        Kind::Ecr => (super::ecr::repository_exists, super::ecr::create_repository),
        _ => (super::harbor::project_exists, super::harbor::create_project),
    };
    if exists(api, name, stats)? {
        return Ok(TargetOutcome::Existed);
    }
    if dry_run {
        return Ok(TargetOutcome::WouldCreate);
    }
    Ok(if create(api, name, stats)? {
        TargetOutcome::Created
    } else {
        TargetOutcome::Existed
    })
}
