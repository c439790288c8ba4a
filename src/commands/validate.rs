//! `image-migrator validate`: load and check both files, print the resolved rules.

use std::io::Write;

use serde::Serialize;

use super::{Outcome, load_config, print_config_errors};
use crate::cli::{Format, ValidateArgs};
use crate::credentials::CredentialStore;

/// One rule as `validate` shows it: resolved, with where its credentials come from.
#[derive(Serialize)]
struct ResolvedRule {
    source: String,
    target: String,
    tags: String,
    filters: serde_json::Value,
    /// The auth.json key whose credentials are used, if any.
    source_auth: Option<String>,
    target_auth: Option<String>,
    /// Where the credentials come from (`auth.json`, `docker-config`, … `anonymous`).
    source_credentials: String,
    target_credentials: String,
    line: usize,
    /// The tags and filters in words, for the text format.
    #[serde(skip)]
    tags_described: String,
}

/// `image-migrator validate`.
pub fn validate(args: &ValidateArgs) -> Outcome {
    let config = match load_config(&args.files) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return Outcome::InvalidInput;
        }
    };
    let store = CredentialStore::new(
        config.auth.clone(),
        config.machine.clone(),
        Box::new(|_| {}),
    )
    .with_cloud(crate::config::CloudKeys::from_env(&|name| {
        std::env::var(name).ok()
    }));
    let source_of =
        |registry: &str, repository: &str| store.source(registry, repository).to_string();
    // The entry whose credentials are used; None = anonymous (no matching key, or the
    // matching entry has no username and password, e.g. `{}`).
    let auth_key = |registry: &str, repository: &str| {
        config
            .auth
            .lookup(registry, repository)
            .filter(|e| e.credentials().is_some())
            .map(|e| e.key.clone())
    };
    let rules: Vec<ResolvedRule> = config
        .rules
        .iter()
        .map(|rule| {
            let (source, target) = (&rule.source, &rule.target);
            ResolvedRule {
                source: source.name(),
                target: target.to_string(),
                tags: rule.tags_label(),
                filters: rule.filters.to_json(),
                source_auth: auth_key(&source.registry, &source.repository),
                target_auth: auth_key(&target.registry, &target.repository),
                source_credentials: source_of(&source.registry, &source.repository),
                target_credentials: source_of(&target.registry, &target.repository),
                line: rule.line,
                tags_described: if rule.filters.is_empty() {
                    rule.tags_label()
                } else {
                    format!("{}: {}", rule.tags_label(), rule.filters.describe())
                },
            }
        })
        .collect();
    let targets = target_registries(&config);
    match args.format {
        Format::Json => print_json(&rules, args.referrers, &targets),
        Format::Text => print_text(&rules, args.referrers, &targets),
    }
    Outcome::Success
}

fn print_json(rules: &[ResolvedRule], referrers: bool, targets: &[TargetRegistry]) {
    let doc = serde_json::json!({
        "rules": rules,
        "referrers": referrers,
        "targets": targets,
    });
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&doc).unwrap()
    );
}

fn print_text(rules: &[ResolvedRule], referrers: bool, targets: &[TargetRegistry]) {
    let mut stdout = std::io::stdout().lock();
    for rule in rules {
        // The auth.json key, or where else the credentials come from.
        let auth =
            |key: &Option<String>, source: &str| key.clone().unwrap_or_else(|| source.to_string());
        let _ = writeln!(
            stdout,
            "line {}: {} [{}] → {}  (source auth: {}, target auth: {})",
            rule.line,
            rule.source,
            rule.tags_described,
            rule.target,
            auth(&rule.source_auth, &rule.source_credentials),
            auth(&rule.target_auth, &rule.target_credentials),
        );
    }
    if referrers {
        let _ = writeln!(
            stdout,
            "referrers: on (signatures, SBOMs and attestations are copied with each image, up \
             to {} level(s) deep)",
            crate::copy::REFERRER_DEPTH
        );
    }
    for target in targets {
        let _ = writeln!(stdout, "target {}", target.describe());
    }
    let _ = writeln!(stdout, "{} rule(s) valid", rules.len());
}

/// A target registry as `validate` shows it: its kind and management API, from its host
/// or auth.json (nothing is asked).
#[derive(Serialize)]
struct TargetRegistry {
    registry: String,
    /// `None`: Harbor or distribution, which `sync` tells apart by Harbor's ping.
    kind: Option<crate::kind::Kind>,
    /// Where the kind comes from: `host`, `auth.json`, or `ping` (asked at run time).
    kind_from: &'static str,
    region: Option<String>,
    api: Option<String>,
}

impl TargetRegistry {
    fn describe(&self) -> String {
        let kind = match self.kind {
            Some(kind) => format!("kind {kind} (from {})", self.kind_from),
            None => {
                "kind harbor or distribution (GET /api/v2.0/ping decides at run time)".to_string()
            }
        };
        let region = self
            .region
            .as_ref()
            .map(|r| format!(", region {r}"))
            .unwrap_or_default();
        let api = self
            .api
            .as_ref()
            .map(|a| format!(", API {a}"))
            .unwrap_or_else(|| ", API the registry itself".to_string());
        format!("{}: {kind}{region}{api}", self.registry)
    }
}

/// Each distinct target registry of the rules, in order of first use.
fn target_registries(config: &crate::config::Config) -> Vec<TargetRegistry> {
    let mut seen: Vec<&str> = Vec::new();
    for rule in &config.rules {
        if !seen.contains(&rule.target.registry.as_str()) {
            seen.push(&rule.target.registry);
        }
    }
    seen.into_iter()
        .map(|registry| {
            let described = crate::vendor::describe(&config.auth, registry);
            TargetRegistry {
                registry: registry.to_string(),
                kind: described.kind,
                kind_from: described.from,
                region: described.region,
                api: described.api,
            }
        })
        .collect()
}
