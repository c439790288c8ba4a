//! One source → target pair of an images.json rule, checked against the contract: the
//! grammar of each side as image-syncer writes it (tag lists `:v1,v2`, `/regex/` tags,
//! digests), how the target's tags take the source's, and where an empty target sends an
//! image (the default registry and namespace).

use super::images::{Defaults, TagSelection};
use super::tags::TagFilters;
use crate::reference::{Location, Reference, check_namespace, looks_like_registry};

/// The tag part of a key or target: none, a list (`:v1,v2`, one tag is a list of one), or
/// a `/regex/`.
#[derive(Debug, PartialEq)]
pub(super) enum TagSpec<'a> {
    None,
    List(Vec<&'a str>),
    Regex(&'a str),
}

/// Splits `name[:tags][@digest]` into the name (with any digest) and its tag part, before
/// the reference grammar sees it (a list or a regex is not a tag).
pub(super) fn split_tag_spec(value: &str) -> (&str, TagSpec<'_>) {
    // `:/…/` can only be a regex: a port is digits, and a path follows a `/`, not `:/`.
    if let Some(i) = value.find(":/")
        && value.len() >= i + 4
        && value.ends_with('/')
    {
        return (&value[..i], TagSpec::Regex(&value[i + 2..value.len() - 1]));
    }
    let (rest, digest_at) = match value.find('@') {
        Some(i) => (&value[..i], i),
        None => (value, value.len()),
    };
    match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains(['/', ']']) && digest_at == value.len() => (
            &value[..i],
            TagSpec::List(rest[i + 1..].split(',').collect()),
        ),
        _ => (value, TagSpec::None),
    }
}

/// Whether a key names tags, a digest or a regex (an object rule must not).
pub(super) fn key_has_tag_part(key: &str) -> bool {
    key.contains('@') || split_tag_spec(key).1 != TagSpec::None
}

/// A repository reference as `docker pull` reads it; a lone registry host is refused.
pub(super) fn parse_repository(value: &str, side: &str) -> Result<Reference, String> {
    let name = value.split(['@', ':']).next().unwrap_or_default();
    if !value.contains('/') && looks_like_registry(name) && !value.starts_with('[') {
        return Err(format!(
            "{side} {value:?} names a registry, not a repository; a rule copies one \
             repository (e.g. {value}/namespace/repository)"
        ));
    }
    Reference::parse_normalized(value).map_err(|e| format!("{side}: {}", e.reason))
}

/// A reference with its tag part checked: every tag of a list against the grammar, a
/// regex compiled.
fn parse_with_tags<'a>(value: &'a str, side: &str) -> Result<(Reference, TagSpec<'a>), String> {
    let (name, spec) = split_tag_spec(value);
    let reference = parse_repository(name, side)?;
    if let TagSpec::List(tags) = &spec {
        for tag in tags {
            if tag.is_empty() {
                return Err(format!(
                    "{side}: the tag list {:?} has an empty item",
                    tags.join(",")
                ));
            }
            Reference::parse_normalized(&format!("{name}:{tag}"))
                .map_err(|e| format!("{side}: {}", e.reason))?;
        }
    }
    Ok((reference, spec))
}

/// One source → target pair of a rule, checked.
pub(super) struct Checked {
    pub(super) source: Reference,
    pub(super) target: Reference,
    pub(super) selection: TagSelection,
    pub(super) filters: TagFilters,
}

/// Applies the contract's rules to one source → target pair; a tag list gives one pair per
/// tag.
pub(super) fn check_rule(
    key: &str,
    target: &str,
    defaults: &Defaults,
    mut filters: TagFilters,
) -> Result<Vec<Checked>, String> {
    if key.is_empty() {
        return Err("the source must not be empty".into());
    }
    let (mut source, source_spec) = parse_with_tags(key, "source")?;
    let source_digest = source.digest.take();
    let source_tags: Vec<String> = match source_spec {
        TagSpec::List(tags) => tags.into_iter().map(str::to_string).collect(),
        TagSpec::Regex(pattern) => {
            filters
                .add_include(pattern)
                .map_err(|e| format!("source: {e}"))?;
            Vec::new()
        }
        TagSpec::None => Vec::new(),
    };
    source.tag = None;
    let selection_of = |tag: Option<&String>| match (&source_digest, tag) {
        (Some(digest), _) => TagSelection::Digest(digest.clone()),
        (None, Some(tag)) => TagSelection::Tag(tag.clone()),
        (None, None) => TagSelection::All,
    };
    if target.is_empty() {
        let selections: Vec<TagSelection> = if source_tags.is_empty() {
            vec![selection_of(None)]
        } else {
            source_tags.iter().map(|t| selection_of(Some(t))).collect()
        };
        return to_default_targets(&source, selections, defaults, &filters);
    }
    let (mut target_ref, target_spec) = parse_with_tags(target, "target")?;
    let target_tags: Vec<String> = match target_spec {
        TagSpec::List(tags) => tags.into_iter().map(str::to_string).collect(),
        TagSpec::Regex(_) => {
            return Err("a target cannot have a /regex/ tag; regexes select source tags".into());
        }
        TagSpec::None => Vec::new(),
    };
    if let Some(digest) = target_ref.digest.take()
        && source_digest.as_ref() != Some(&digest)
    {
        return Err(
            "a target cannot name a digest other than the source's own; the digest is \
             preserved by the copy"
                .into(),
        );
    }
    target_ref.tag = None;
    check_tag_mapping(&source_tags, source_digest.is_some(), &target_tags)?;
    if source_tags.is_empty() {
        // All tags (maybe filtered), or a digest (pushed under the target's tag, if any).
        target_ref.tag = target_tags.into_iter().next();
        return Ok(vec![Checked {
            source,
            target: target_ref,
            selection: selection_of(None),
            filters,
        }]);
    }
    Ok(source_tags
        .iter()
        .enumerate()
        .map(|(i, tag)| Checked {
            source: source.clone(),
            // Rule 7: a target without a tag takes the source's tag.
            target: target_ref.with_tag(target_tags.get(i).unwrap_or(tag)),
            selection: selection_of(Some(tag)),
            filters: filters.clone(),
        })
        .collect())
}

/// A rule without a target: each selection goes to its default target (rule 8).
fn to_default_targets(
    source: &Reference,
    selections: Vec<TagSelection>,
    defaults: &Defaults,
    filters: &TagFilters,
) -> Result<Vec<Checked>, String> {
    selections
        .into_iter()
        .map(|selection| {
            Ok(Checked {
                target: default_target(source, &selection, defaults)?,
                source: source.clone(),
                selection,
                filters: filters.clone(),
            })
        })
        .collect()
}

/// Whether the target's tags can take the source's: tags map in order, a source of all tags
/// gives the target none, and a digest source goes under one tag at most.
fn check_tag_mapping(
    source_tags: &[String],
    digest_source: bool,
    target_tags: &[String],
) -> Result<(), String> {
    if source_tags.is_empty() && !digest_source && !target_tags.is_empty() {
        return Err(
            "the source has no tag (all tags are copied), so the target must not have one \
             either"
                .into(),
        );
    }
    if !source_tags.is_empty() && !target_tags.is_empty() && source_tags.len() != target_tags.len()
    {
        return Err(format!(
            "the source names {} tag(s) and the target {}; tags are mapped in order, so the \
             counts must match",
            source_tags.len(),
            target_tags.len()
        ));
    }
    if digest_source && target_tags.len() > 1 {
        return Err("a digest source copies one manifest: give the target at most one tag".into());
    }
    Ok(())
}

/// Rule 8: `<default-registry>/<default-namespace>/<source path minus its first segment>`;
/// a repository without a namespace keeps its whole name.
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
    let rest = source
        .repository
        .split_once('/')
        .map_or(source.repository.as_str(), |(_, rest)| rest);
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
