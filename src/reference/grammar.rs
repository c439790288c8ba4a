//! The reference grammar's pieces, checked one by one: how `name[:tag][@digest]` splits,
//! registry hosts and ports, path components, tags. [`super::Reference`] and
//! [`super::Location`] put them together; errors name the whole value and the reason.

use super::{ReferenceError, TAG_MAX};

pub(super) fn error(value: &str, reason: &str) -> ReferenceError {
    ReferenceError {
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Splits `name[:tag][@digest]`, without validating the parts.
pub(super) fn split_reference(
    value: &str,
) -> Result<(&str, Option<&str>, Option<&str>), ReferenceError> {
    if value.is_empty() {
        return Err(error(value, "reference is empty"));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(error(
            value,
            &format!("contains whitespace or control character {c:?}"),
        ));
    }
    if value.contains("://") {
        return Err(error(
            value,
            "must not contain a URL scheme; write host/namespace/repository",
        ));
    }
    let (rest, digest) = match value.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (value, None),
    };
    // A tag is the part after the last ':' when no '/' follows it (else it is a port).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains(['/', ']']) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() {
        return Err(error(value, "repository name is empty"));
    }
    Ok((name, tag, digest))
}

pub(super) fn validate_registry(value: &str, registry: &str) -> Result<(), ReferenceError> {
    if registry.contains('@') {
        return Err(error(
            value,
            "registry host must not contain user information",
        ));
    }
    let (host, port) = if let Some(stripped) = registry.strip_prefix('[') {
        let (addr, after) = stripped
            .split_once(']')
            .ok_or_else(|| error(value, "unclosed '[' in IPv6 registry address"))?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(error(value, "invalid IPv6 registry address"));
        }
        match after {
            "" => return Ok(()),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(error(value, "unexpected text after IPv6 address")),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(error(value, &format!("invalid registry host {registry:?}")));
        }
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.chars().all(|c| c.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(error(
            value,
            &format!("invalid registry port in {registry:?}"),
        ));
    }
    Ok(())
}

/// Path components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
pub(super) fn validate_path(value: &str, path: &str) -> Result<(), ReferenceError> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(error(value, "repository name must be lowercase"));
    }
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(error(
                value,
                &format!(
                    "invalid path component {component:?}: use lowercase letters, digits and \
                     single separators (. _ __ -) between them"
                ),
            ));
        }
    }
    Ok(())
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `tag` matches the tag grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`): what a tag
/// read from a registry's tag list must be before it is used in a URL or a log line.
pub fn is_valid_tag(tag: &str) -> bool {
    validate_tag(tag, tag).is_ok()
}

pub(super) fn validate_tag(value: &str, tag: &str) -> Result<(), ReferenceError> {
    if tag.is_empty() {
        return Err(error(value, "tag is empty"));
    }
    if tag.len() > TAG_MAX {
        return Err(error(
            value,
            &format!("tag is longer than {TAG_MAX} characters"),
        ));
    }
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !(first_ok && rest_ok) {
        return Err(error(
            value,
            &format!(
                "invalid tag {tag:?}: letters, digits, '_', '.', '-', not starting with '.' or '-'"
            ),
        ));
    }
    Ok(())
}
