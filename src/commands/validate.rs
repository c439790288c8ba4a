//! `image-migrator validate`: load and check both files, print the resolved rules.

use std::io::Write;

use super::{Outcome, load_config, print_config_errors};
use crate::cli::{Format, ValidateArgs};
use crate::credentials::CredentialStore;

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
    );
    let source_of =
        |registry: &str, repository: &str| store.source(registry, repository).to_string();
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
                "filters": rule.filters.to_json(),
                "source_auth": auth_key(&rule.source.registry, &rule.source.repository),
                "target_auth": auth_key(&rule.target.registry, &rule.target.repository),
                "source_credentials": source_of(&rule.source.registry, &rule.source.repository),
                "target_credentials": source_of(&rule.target.registry, &rule.target.repository),
                "line": rule.line,
                "describe_tags": if rule.filters.is_empty() {
                    rule.tags_label()
                } else {
                    format!("{}: {}", rule.tags_label(), rule.filters.describe())
                },
            })
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let rules: Vec<serde_json::Value> = rules
                .into_iter()
                .map(|mut rule| {
                    if let Some(fields) = rule.as_object_mut() {
                        fields.remove("describe_tags");
                    }
                    rule
                })
                .collect();
            let doc = serde_json::json!({ "rules": rules, "referrers": args.referrers });
            let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&doc).unwrap());
        }
        Format::Text => {
            for rule in &rules {
                // The auth.json key, or where else the credentials come from.
                let auth = |key: &serde_json::Value, source: &serde_json::Value| {
                    key.as_str()
                        .or(source.as_str())
                        .unwrap_or("anonymous")
                        .to_string()
                };
                let _ = writeln!(
                    stdout,
                    "line {}: {} [{}] → {}  (source auth: {}, target auth: {})",
                    rule["line"],
                    rule["source"].as_str().unwrap_or_default(),
                    rule["describe_tags"].as_str().unwrap_or_default(),
                    rule["target"].as_str().unwrap_or_default(),
                    auth(&rule["source_auth"], &rule["source_credentials"]),
                    auth(&rule["target_auth"], &rule["target_credentials"]),
                );
            }
            if args.referrers {
                let _ = writeln!(
                    stdout,
                    "referrers: on (signatures, SBOMs and attestations are copied with each \
                     image, up to {} level(s) deep)",
                    crate::copy::REFERRER_DEPTH
                );
            }
            let _ = writeln!(stdout, "{} rule(s) valid", rules.len());
        }
    }
    Outcome::Success
}
