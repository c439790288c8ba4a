//! `images.json` (or YAML): the rules source → target. Each occurrence of a key, each
//! item of a target list and each tag of a `repo:t1,t2` key is its own rule in file order;
//! keys are read as image-syncer reads them (Docker Hub short names, repositories without
//! a namespace, tag lists, `/regex/` tags, `${VAR}`), and a value may be an object that
//! selects tags (`tags`, see [`super::tags`]). All problems are reported together.

use std::path::Path;

use serde_json::Value;

use super::auth::expand;
use super::pair::{check_rule, key_has_tag_part};
use super::source::{Entry, Node, NodeKind, SourceFile};
use super::tags::TagFilters;
use super::{ConfigError, ConfigErrors};
use crate::digest::Digest;
use crate::reference::Reference;

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
    /// Which of the listed tags an all-tags rule keeps (a `/regex/` key, a `tags` object).
    pub filters: TagFilters,
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

    /// `"all"`, `"selected"` (filtered), the tag, or the digest: what `validate` prints.
    pub fn tags_label(&self) -> String {
        match &self.selection {
            TagSelection::All if self.filters.is_empty() => "all".to_string(),
            TagSelection::All => "selected".to_string(),
            TagSelection::Tag(tag) => tag.clone(),
            TagSelection::Digest(digest) => digest.to_string(),
        }
    }
}

/// Reads and checks images.json (or .yaml).
pub fn load(
    path: &Path,
    defaults: &Defaults,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Rule>, ConfigErrors> {
    let source = SourceFile::read(path)?;
    from_entries(path, source.entries(path)?, defaults, env)
}

/// Targets with the line each is written on.
type Targets = Vec<(String, usize)>;
/// Problems with their lines.
type Problems = Vec<(usize, String)>;

/// A rule's value: one or more targets, and the tag filters of an object value.
struct RuleValue {
    targets: Targets,
    filters: Option<TagFilters>,
    /// Items of a target list that are not strings (the others are still checked).
    problems: Problems,
}

/// Checks the rules of an images file (or of the `images` object of a `--config` file).
pub fn from_entries(
    path: &Path,
    entries: Vec<Entry>,
    defaults: &Defaults,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Rule>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut rules = Vec::with_capacity(entries.len()); // 560 B a rule: not doubled
    if entries.is_empty() {
        errors.push(ConfigError::file(
            path,
            "has no rules; add at least one \"source\": \"target\" entry",
        ));
    }
    for entry in &entries {
        let at = |line: usize, message: String| ConfigError::at(path, line, &entry.key, message);
        let value = match rule_value(&entry.value) {
            Ok(mut value) => {
                errors.extend(value.problems.drain(..).map(|(line, m)| at(line, m)));
                value
            }
            Err(problems) => {
                errors.extend(problems.into_iter().map(|(line, m)| at(line, m)));
                continue;
            }
        };
        let key = match expand(&entry.key, env) {
            Ok(key) => key,
            Err(e) => {
                errors.push(at(entry.line, format!("source: {e}")));
                continue;
            }
        };
        if value.filters.is_some() && key_has_tag_part(&key) {
            errors.push(at(
                entry.line,
                "a rule with a \"tags\" object selects among all tags, so its key must be a \
                 repository without a tag, digest or /regex/"
                    .into(),
            ));
            continue;
        }
        for (raw_target, line) in value.targets {
            let target = match expand(&raw_target, env) {
                Ok(target) => target,
                Err(e) => {
                    errors.push(at(line, format!("→ {raw_target:?}: target: {e}")));
                    continue;
                }
            };
            let filters = value.filters.clone().unwrap_or_default();
            match check_rule(&key, &target, defaults, filters) {
                Ok(pairs) => rules.extend(pairs.into_iter().map(|checked| Rule {
                    key: entry.key.clone(),
                    raw_target: raw_target.clone(),
                    line,
                    source: checked.source,
                    target: checked.target,
                    selection: checked.selection,
                    filters: checked.filters,
                })),
                Err(message) => errors.push(at(
                    line,
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

/// A string, a list of strings, or `{"target": …, "tags": {…}}`; problems with their lines.
fn rule_value(node: &Node) -> Result<RuleValue, Problems> {
    match &node.kind {
        NodeKind::Scalar(Value::String(target)) => Ok(RuleValue {
            targets: vec![(target.clone(), node.line)],
            filters: None,
            problems: Vec::new(),
        }),
        NodeKind::List(_) => {
            let (targets, problems) = target_list(node);
            Ok(RuleValue {
                targets,
                filters: None,
                problems,
            })
        }
        NodeKind::Map(fields) => {
            let mut problems = Vec::new();
            let mut targets = None;
            let mut filters = None;
            for (field, value) in fields {
                match field.as_str() {
                    "target" => match &value.kind {
                        NodeKind::Scalar(Value::String(t)) => {
                            targets = Some(vec![(t.clone(), value.line)]);
                        }
                        NodeKind::List(_) => {
                            let (list, mut p) = target_list(value);
                            problems.append(&mut p);
                            targets = Some(list);
                        }
                        _ => problems.push((
                            value.line,
                            format!(
                                "\"target\" must be a string or a list of strings, not {}",
                                value.type_name()
                            ),
                        )),
                    },
                    "tags" => match TagFilters::from_node(value) {
                        Ok(f) => filters = Some(f),
                        Err(p) => problems.push((value.line, p)),
                    },
                    other => problems.push((
                        value.line,
                        format!(
                            "unknown field {other:?} in a rule object; the fields are \
                             \"target\" and \"tags\""
                        ),
                    )),
                }
            }
            if targets.is_none() && problems.is_empty() {
                problems.push((
                    node.line,
                    "a rule object needs a \"target\" (a string, a list, or \"\" for the \
                     default registry and namespace)"
                        .into(),
                ));
            }
            match targets {
                Some(targets) if problems.is_empty() => Ok(RuleValue {
                    targets,
                    filters: Some(filters.unwrap_or_default()),
                    problems: Vec::new(),
                }),
                _ => Err(problems),
            }
        }
        _ => Err(vec![(
            node.line,
            format!(
                "the target must be a string or a list of strings, not {} (or an object with \"target\" and \"tags\")",
                node.type_name()
            ),
        )]),
    }
}

/// The string items of a target list, and a problem for each item that is not one.
fn target_list(node: &Node) -> (Targets, Problems) {
    let NodeKind::List(items) = &node.kind else {
        return (
            Vec::new(),
            vec![(node.line, "expected a list of targets".into())],
        );
    };
    if items.is_empty() {
        return (
            Vec::new(),
            vec![(node.line, "the list of targets is empty".into())],
        );
    }
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for item in items {
        match &item.kind {
            NodeKind::Scalar(Value::String(target)) => targets.push((target.clone(), item.line)),
            _ => problems.push((
                item.line,
                "every item of a target list must be a string".to_string(),
            )),
        }
    }
    (targets, problems)
}

#[cfg(test)]
mod tests {
    use crate::config::pair::{TagSpec, parse_repository, split_tag_spec};

    #[test]
    fn tag_parts_are_split_before_the_reference_grammar() {
        assert_eq!(
            split_tag_spec("quay.io/a/b:/^v3\\.[0-9]+/x/"),
            ("quay.io/a/b", TagSpec::Regex("^v3\\.[0-9]+/x"))
        );
        assert_eq!(
            split_tag_spec("localhost:5000/a:v1,v2"),
            ("localhost:5000/a", TagSpec::List(vec!["v1", "v2"]))
        );
        assert_eq!(
            split_tag_spec("localhost:5000/a"),
            ("localhost:5000/a", TagSpec::None)
        );
        assert_eq!(
            split_tag_spec("[::1]:5000/a/b"),
            ("[::1]:5000/a/b", TagSpec::None)
        );
        // `://` is no regex (an empty one would match every tag): left to the grammar.
        assert_eq!(split_tag_spec("q.io/a://"), ("q.io/a://", TagSpec::None));
        assert!(parse_repository("q.io/a://", "source").is_err());
        let digest =
            "q.io/a@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(split_tag_spec(digest), (digest, TagSpec::None));
    }
}
