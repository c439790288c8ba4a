//! `images.json`: the rules source → target. Each occurrence of a key, and each item of
//! an array value, is its own rule in file order; every rule is checked against the nine
//! rules of the contract, and all problems are reported together.

use std::path::Path;

use serde_json::Value;
use serde_json::value::RawValue;

use super::source::SourceFile;
use super::{ConfigError, ConfigErrors};
use crate::digest::Digest;
use crate::reference::{Location, Reference, check_namespace};

/// Where an empty target (`""`) sends an image.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub registry: Option<String>,
    pub namespace: Option<String>,
}

/// Which tags of the source a rule copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSelection {
    /// Every tag of the repository.
    All,
    /// One tag.
    Tag(String),
    /// Exactly one manifest.
    Digest(Digest),
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The key as written in the file.
    pub key: String,
    /// The target as written in the file (`""` for the default location).
    pub raw_target: String,
    pub line: usize,
    /// Source repository (tag and digest cleared; see `selection`).
    pub source: Reference,
    /// Target repository; `tag` is the target tag when the source names one (the rule's
    /// own target tag, else the source's tag), `None` for all-tags and digest rules
    /// without a target tag.
    pub target: Reference,
    pub selection: TagSelection,
}

impl Rule {
    /// The target tag for a given source tag: the rule's own target tag when it has
    /// one, else the same tag as the source.
    pub fn target_tag_for(&self, source_tag: &str) -> String {
        self.target
            .tag
            .clone()
            .unwrap_or_else(|| source_tag.to_string())
    }

    /// `"all"`, the tag, or the digest: what `validate` prints.
    pub fn tags_label(&self) -> String {
        match &self.selection {
            TagSelection::All => "all".to_string(),
            TagSelection::Tag(tag) => tag.clone(),
            TagSelection::Digest(digest) => digest.to_string(),
        }
    }
}

/// Reads and checks images.json.
pub fn load(path: &Path, defaults: &Defaults) -> Result<Vec<Rule>, ConfigErrors> {
    let source = SourceFile::read(path)?;
    let entries = source.entries(path)?;
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    if entries.is_empty() {
        errors.push(ConfigError::file(
            path,
            "has no rules; add at least one \"source\": \"target\" entry",
        ));
    }
    for entry in &entries {
        let at = |message: String| ConfigError::at(path, entry.line, &entry.key, message);
        // Each target with its own line: items of a multi-line list are located exactly.
        let targets: Vec<(String, usize)> = match serde_json::from_str::<Value>(entry.value.get()) {
            Ok(Value::String(target)) => vec![(target, entry.line)],
            Ok(Value::Array(items)) if items.is_empty() => {
                errors.push(at("the list of targets is empty".into()));
                continue;
            }
            Ok(Value::Array(_)) => {
                let items: Vec<&RawValue> =
                    serde_json::from_str(entry.value.get()).unwrap_or_default();
                let mut targets = Vec::new();
                for item in items {
                    let line = source.line_of(item.get());
                    match serde_json::from_str::<Value>(item.get()) {
                        Ok(Value::String(target)) => targets.push((target, line)),
                        _ => errors.push(ConfigError::at(
                            path,
                            line,
                            &entry.key,
                            "every item of a target list must be a string",
                        )),
                    }
                }
                targets
            }
            Ok(other) => {
                errors.push(at(format!(
                    "the target must be a string or a list of strings, not {}",
                    json_type(&other)
                )));
                continue;
            }
            Err(e) => {
                errors.push(at(format!("invalid value: {e}")));
                continue;
            }
        };
        for (target, line) in targets {
            match check_rule(&entry.key, &target, defaults) {
                Ok((source_ref, target_ref, selection)) => rules.push(Rule {
                    key: entry.key.clone(),
                    raw_target: target,
                    line,
                    source: source_ref,
                    target: target_ref,
                    selection,
                }),
                Err(message) => errors.push(ConfigError::at(
                    path,
                    line,
                    &entry.key,
                    if target.is_empty() {
                        message
                    } else {
                        format!("→ {target:?}: {message}")
                    },
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        // File order, also for the items of one list (stable: same line keeps its order).
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(errors))
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

const NEEDS_THREE_PARTS: &str = "needs at least registry/namespace/repository \
     (Docker Hub images are written docker.io/library/nginx, not nginx)";

/// Applies the contract's rules to one source → target pair.
fn check_rule(
    key: &str,
    target: &str,
    defaults: &Defaults,
) -> Result<(Reference, Reference, TagSelection), String> {
    if key.is_empty() {
        return Err("the source must not be empty".into());
    }
    let mut source = Reference::parse(key).map_err(|e| format!("source: {}", e.reason))?;
    if source.path_segments() < 2 {
        return Err(format!("source {NEEDS_THREE_PARTS}"));
    }
    let selection = match (source.digest.take(), source.tag.take()) {
        (Some(digest), _) => TagSelection::Digest(digest),
        (None, Some(tag)) => TagSelection::Tag(tag),
        (None, None) => TagSelection::All,
    };
    let target = if target.is_empty() {
        default_target(&source, &selection, defaults)?
    } else {
        let target = Reference::parse(target).map_err(|e| format!("target: {}", e.reason))?;
        if target.path_segments() < 2 {
            return Err(format!("target {NEEDS_THREE_PARTS}"));
        }
        if target.digest.is_some() {
            return Err(
                "a target cannot name a digest; the digest is preserved by the copy".into(),
            );
        }
        if selection == TagSelection::All && target.tag.is_some() {
            return Err(
                "the source has no tag (all tags are copied), so the target must not \
                 have one either"
                    .into(),
            );
        }
        let mut target = target;
        // Rule 7: a target without a tag takes the source's tag.
        if let TagSelection::Tag(tag) = &selection
            && target.tag.is_none()
        {
            target.tag = Some(tag.clone());
        }
        target
    };
    Ok((source, target, selection))
}

/// Rule 8: `<default-registry>/<default-namespace>/<source path minus first segment>`.
fn default_target(
    source: &Reference,
    selection: &TagSelection,
    defaults: &Defaults,
) -> Result<Reference, String> {
    let (Some(registry), Some(namespace)) = (&defaults.registry, &defaults.namespace) else {
        return Err(
            "the target is empty, which means the default registry and namespace, \
             but none are set: pass --default-registry and --default-namespace or set \
             DEFAULT_REGISTRY and DEFAULT_NAMESPACE"
                .into(),
        );
    };
    let (_, rest) = source
        .repository
        .split_once('/')
        .ok_or_else(|| format!("source {NEEDS_THREE_PARTS}"))?;
    let mut target = Reference::parse(&format!(
        "{}/{}/{rest}",
        registry.trim_end_matches('/'),
        namespace.trim_matches('/')
    ))
    .map_err(|e| format!("default target: {}", e.reason))?;
    if let TagSelection::Tag(tag) = selection {
        target.tag = Some(tag.clone());
    }
    Ok(target)
}

/// Checks `--default-registry`/`--default-namespace` values.
pub fn check_defaults(defaults: &Defaults) -> Result<(), String> {
    if let Some(registry) = &defaults.registry {
        let location = Location::parse(registry)
            .map_err(|e| format!("--default-registry {registry:?}: {}", e.reason))?;
        if location.namespace.is_some() {
            return Err(format!(
                "--default-registry {registry:?}: give only the registry host; the namespace \
                 goes in --default-namespace"
            ));
        }
    }
    if let Some(namespace) = &defaults.namespace {
        check_namespace(namespace)
            .map_err(|e| format!("--default-namespace {namespace:?}: {}", e.reason))?;
    }
    Ok(())
}
