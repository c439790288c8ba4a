//! `auth.json`: credentials per registry or registry/namespace, `${VAR}` expansion from
//! the environment (CI variables), and the longest-prefix lookup that picks the entry
//! for an image. Secrets are wrapped so they never reach a log by accident.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::source::{Entry, SourceFile, without_value};
use super::{ConfigError, ConfigErrors};
use crate::reference::Location;

/// The file read when `--auth` is not given; its absence means anonymous access.
pub const DEFAULT_PATH: &str = "auth.json";

/// A credential value; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for building an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One auth.json entry, expanded.
#[derive(Debug, Clone)]
pub struct AuthEntry {
    /// The key as written in the file.
    pub key: String,
    /// Canonical registry (Docker Hub aliases folded to `docker.io`).
    pub registry: String,
    /// Namespace prefix, when the key has one.
    pub namespace: Option<String>,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    pub insecure: bool,
    /// A forward proxy for this registry; `""` = direct, whatever the environment says.
    pub proxy: Option<String>,
    pub line: usize,
}

impl AuthEntry {
    /// Basic credentials, when both parts are present.
    pub fn credentials(&self) -> Option<(&Secret, &Secret)> {
        Some((self.username.as_ref()?, self.password.as_ref()?))
    }
}

/// Whether a key's namespace (none = the whole registry) covers `repository`: equal, or
/// a prefix ending at a `/` boundary.
pub fn namespace_covers(namespace: Option<&str>, repository: &str) -> bool {
    match namespace {
        None => true,
        Some(ns) => {
            repository == ns
                || repository
                    .strip_prefix(ns)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// The whole auth.json.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub entries: Vec<AuthEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    username: Option<String>,
    password: Option<String>,
    insecure: Option<bool>,
    proxy: Option<String>,
}

impl AuthConfig {
    /// Reads and checks auth.json; `env` resolves `${VAR}` references.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let source = SourceFile::read(path)?;
        Self::from_entries(path, source.entries(path)?, env)
    }

    /// Checks the entries of an auth file (or of the `auth` object of a `--config` file).
    pub fn from_entries(
        path: &Path,
        file_entries: Vec<Entry>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut entries: Vec<AuthEntry> = Vec::new();
        for entry in file_entries {
            let at = |message: String| ConfigError::at(path, entry.line, &entry.key, message);
            // image-syncer users write `harbor.example.com/` as often as without the slash.
            let location = entry.key.strip_suffix('/').unwrap_or(&entry.key);
            let Location {
                registry,
                namespace,
            } = match Location::parse(location) {
                Ok(location) => location,
                Err(e) => {
                    errors.push(at(format!(
                        "key must be a registry or registry/namespace: {}",
                        e.reason
                    )));
                    continue;
                }
            };
            if let Some(previous) = entries
                .iter()
                .find(|e| e.registry == registry && e.namespace == namespace)
            {
                errors.push(at(format!(
                    "duplicate entry: line {} already configures the same registry/namespace",
                    previous.line
                )));
                continue;
            }
            let raw: RawEntry = match serde_json::from_value(entry.value.to_json()) {
                Ok(raw) => raw,
                Err(e) => {
                    let message =
                        without_value(&e.to_string()).replace("struct RawEntry", "an object");
                    let line = field_line(&entry.value).unwrap_or(entry.line);
                    errors.push(ConfigError::at(
                        path,
                        line,
                        &entry.key,
                        format!(
                            "{message} (an entry is an object with optional \"username\", \
                             \"password\", \"proxy\" strings and an \"insecure\" boolean)"
                        ),
                    ));
                    continue;
                }
            };
            let mut expand_field = |field: &str, value: Option<String>| {
                value.and_then(|value| match expand(&value, env) {
                    Ok(expanded) => Some(Secret(expanded)),
                    Err(e) => {
                        errors.push(at(format!("{field}: {e}")));
                        None
                    }
                })
            };
            let username = expand_field("username", raw.username);
            let password = expand_field("password", raw.password);
            let proxy = expand_field("proxy", raw.proxy).map(|p| p.expose().to_string());
            if let Some(proxy) = &proxy
                && let Err(e) = crate::proxy_url::check(proxy)
            {
                errors.push(at(format!("proxy: {e}")));
            }
            entries.push(AuthEntry {
                key: entry.key.clone(),
                registry,
                namespace,
                username,
                password,
                insecure: raw.insecure.unwrap_or(false),
                proxy,
                line: entry.line,
            });
        }
        if errors.is_empty() {
            Ok(AuthConfig { entries })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The entry for an image: same registry, longest namespace prefix of `repository`
    /// at a `/` boundary; a registry-only key is the fallback.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<&AuthEntry> {
        self.entries
            .iter()
            .filter(|e| e.registry == registry)
            .filter(|e| namespace_covers(e.namespace.as_deref(), repository))
            .max_by_key(|e| e.namespace.as_ref().map_or(0, |ns| ns.len() + 1))
    }

    /// A registry is reached over plain HTTP (or unverified TLS) when any of its entries
    /// says `insecure: true`: the transport is per host, not per namespace.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.registry == registry && e.insecure)
    }

    /// Per-registry proxies: (registry, proxy URL or `""`), from registry-only entries
    /// or, failing that, any entry of the registry (the transport is per host).
    pub fn proxies(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for entry in self.entries.iter().filter(|e| e.proxy.is_some()) {
            if !out.iter().any(|(r, _)| *r == entry.registry) {
                out.push((&entry.registry, entry.proxy.as_deref().unwrap_or_default()));
            }
        }
        out
    }

    /// Every non-empty secret value, for masking in CI logs.
    pub fn secret_values(&self) -> Vec<&str> {
        self.entries
            .iter()
            .flat_map(|e| [e.username.as_ref(), e.password.as_ref()])
            .flatten()
            .map(Secret::expose)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The line of the field that makes an entry invalid: the first field that fails on its own
/// (a wrong type, an unknown name).
fn field_line(value: &super::source::Node) -> Option<usize> {
    let super::source::NodeKind::Map(fields) = &value.kind else {
        return None;
    };
    fields
        .iter()
        .find(|(key, node)| {
            let alone = serde_json::json!({ key.as_str(): node.to_json() });
            serde_json::from_value::<RawEntry>(alone).is_err()
        })
        .map(|(_, node)| node.line)
}

/// Why a value could not be expanded. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("unterminated ${{…}} reference")]
    Unterminated,
    #[error("invalid variable name in ${{{0}}}")]
    BadName(String),
}

/// `${NAME}` anywhere is replaced by the variable; a value that is exactly `$NAME` is
/// replaced too; `$$` is a literal `$`; any other `$` is literal (Harbor's `robot$name`).
pub fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let lookup = |name: &str| env(name).ok_or_else(|| ExpandError::Unset(name.to_string()));
    if let Some(name) = value.strip_prefix('$')
        && valid_name(name)
    {
        return lookup(name);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = after.strip_prefix('{') {
            let end = after.find('}').ok_or(ExpandError::Unterminated)?;
            let name = &after[..end];
            if !valid_name(name) {
                return Err(ExpandError::BadName(name.to_string()));
            }
            out.push_str(&lookup(name)?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "AK" => Some("ak-value".into()),
            "KEY" => Some("s3cr$t".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_rules() {
        assert_eq!(
            expand("cn-north-4@${AK}", &env).unwrap(),
            "cn-north-4@ak-value"
        );
        assert_eq!(expand("$KEY", &env).unwrap(), "s3cr$t");
        assert_eq!(expand("a$$b", &env).unwrap(), "a$b");
        assert_eq!(expand("robot$name", &env).unwrap(), "robot$name");
        assert_eq!(expand("x$KEY", &env).unwrap(), "x$KEY");
        assert_eq!(expand("$", &env).unwrap(), "$");
        assert_eq!(expand("${AK}${AK}", &env).unwrap(), "ak-valueak-value");
        assert_eq!(
            expand("${NOPE}", &env),
            Err(ExpandError::Unset("NOPE".into()))
        );
        assert_eq!(
            expand("$NOPE", &env),
            Err(ExpandError::Unset("NOPE".into()))
        );
        assert_eq!(expand("${AK", &env), Err(ExpandError::Unterminated));
        assert_eq!(
            expand("${1A}", &env),
            Err(ExpandError::BadName("1A".into()))
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    fn entry(registry: &str, namespace: Option<&str>) -> AuthEntry {
        AuthEntry {
            key: format!(
                "{registry}{}",
                namespace.map(|n| format!("/{n}")).unwrap_or_default()
            ),
            registry: registry.into(),
            namespace: namespace.map(str::to_string),
            username: None,
            password: None,
            insecure: false,
            proxy: None,
            line: 1,
        }
    }

    #[test]
    fn longest_prefix_at_slash_boundary() {
        let auth = AuthConfig {
            entries: vec![
                entry("r.io", None),
                entry("r.io", Some("team")),
                entry("r.io", Some("team/sub")),
            ],
        };
        let key = |repo| auth.lookup("r.io", repo).map(|e| e.key.as_str());
        assert_eq!(key("team/sub/app"), Some("r.io/team/sub"));
        assert_eq!(key("team/app"), Some("r.io/team"));
        assert_eq!(key("teamx/app"), Some("r.io"));
        assert_eq!(key("team/subx/app"), Some("r.io/team"));
        assert_eq!(auth.lookup("other.io", "team/app").map(|e| &e.key), None);
    }
}
