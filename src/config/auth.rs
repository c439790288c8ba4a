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
    /// `"kind"`: what the registry is, when its host does not say (Harbor is otherwise
    /// recognised by its ping).
    pub kind: Option<crate::kind::Kind>,
    /// `"region"`: SWR's or ECR's region, when the host does not say.
    pub region: Option<String>,
    /// `"api"`: the management API's base URL (private clouds, VPC endpoints, tests).
    pub api: Option<String>,
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
    kind: Option<String>,
    region: Option<String>,
    api: Option<String>,
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
            let Location {
                registry,
                namespace,
            } = match new_location(&entry.key, &entries) {
                Ok(location) => location,
                Err(message) => {
                    errors.push(at(message));
                    continue;
                }
            };
            let raw = match raw_entry(path, &entry) {
                Ok(raw) => raw,
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            };
            let mut problems = Vec::new();
            let [username, password, proxy] = expand_fields(
                [
                    ("username", raw.username),
                    ("password", raw.password),
                    ("proxy", raw.proxy),
                ],
                env,
                &mut problems,
            );
            let proxy = proxy.map(|p| p.expose().to_string());
            if let Some(proxy) = &proxy
                && let Err(e) = crate::proxy_url::check(proxy)
            {
                problems.push(format!("proxy: {e}"));
            }
            errors.extend(problems.into_iter().map(at));
            let vendor = match check_vendor(&registry, raw.kind, raw.region, raw.api) {
                Ok(vendor) => vendor,
                Err(message) => {
                    errors.push(at(message));
                    continue;
                }
            };
            entries.push(AuthEntry {
                key: entry.key.clone(),
                registry,
                namespace,
                username,
                password,
                insecure: raw.insecure.unwrap_or(false),
                proxy,
                kind: vendor.0,
                region: vendor.1,
                api: vendor.2,
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

    /// What auth.json says of a registry's kind, region and management API: from its
    /// registry-only entry first, else any entry of it (the API is per registry, not per
    /// namespace).
    pub fn vendor(&self, registry: &str) -> VendorFields {
        let mut entries: Vec<&AuthEntry> = self
            .entries
            .iter()
            .filter(|e| e.registry == registry)
            .collect();
        entries.sort_by_key(|e| e.namespace.is_some());
        VendorFields {
            kind: entries.iter().find_map(|e| e.kind),
            region: entries.iter().find_map(|e| e.region.clone()),
            api: entries.iter().find_map(|e| e.api.clone()),
        }
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

/// auth.json's `kind`, `region` and `api` of one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorFields {
    pub kind: Option<crate::kind::Kind>,
    pub region: Option<String>,
    pub api: Option<String>,
}

type Vendor = (Option<crate::kind::Kind>, Option<String>, Option<String>);

/// Checks `kind`, `region` and `api`: a known kind, a region name, an http(s) base URL
/// without query; SWR and ECR need a region when their host does not name one.
fn check_vendor(
    registry: &str,
    kind: Option<String>,
    region: Option<String>,
    api: Option<String>,
) -> Result<Vendor, String> {
    use crate::kind::{self, Kind};
    let kind = match kind {
        None => None,
        Some(value) => Some(Kind::parse(&value).ok_or_else(|| {
            format!(
                "kind: {value:?} is not a kind this tool knows; expected one of {}",
                kind::SETTABLE.map(|k| format!("\"{k}\"")).join(", ")
            )
        })?),
    };
    if let Some(region) = &region
        && !kind::is_region(region)
    {
        return Err(format!(
            "region: {region:?} is not a region name (lowercase letters, digits and '-', \
             e.g. \"cn-north-4\" or \"eu-west-1\")"
        ));
    }
    if let Some(api) = &api {
        let lower = api.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        if rest.is_none_or(|rest| rest.is_empty() || rest.starts_with('/'))
            || api.contains(['?', '#', ' '])
        {
            return Err(format!(
                "api: {api:?} is not a base URL; expected http(s)://host[:port][/path], \
                 e.g. \"https://swr-api.cn-north-4.myhuaweicloud.com\""
            ));
        }
    }
    let host = kind::from_host(registry);
    let effective = kind.or(host.as_ref().map(|h| h.kind));
    if let Some(effective) = effective
        && effective.needs_region()
        && region.is_none()
        && host.as_ref().and_then(|h| h.region.as_ref()).is_none()
    {
        return Err(format!(
            "region: required for kind \"{effective}\" when the host does not name the region \
             (add e.g. \"region\": \"cn-north-4\")"
        ));
    }
    let api = api.map(|a| a.trim_end_matches('/').to_string());
    Ok((kind, region, api))
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

/// The registry (and namespace) an entry's key names, unless an earlier entry names it.
fn new_location(key: &str, earlier: &[AuthEntry]) -> Result<Location, String> {
    // image-syncer users write `harbor.example.com/` as often as without the slash.
    let location = Location::parse(key.strip_suffix('/').unwrap_or(key))
        .map_err(|e| format!("key must be a registry or registry/namespace: {}", e.reason))?;
    match earlier
        .iter()
        .find(|e| e.registry == location.registry && e.namespace == location.namespace)
    {
        Some(previous) => Err(format!(
            "duplicate entry: line {} already configures the same registry/namespace",
            previous.line
        )),
        None => Ok(location),
    }
}

/// `${VAR}` expanded in each field present; what cannot be is a problem named by its
/// field, never by its value.
fn expand_fields<const N: usize>(
    fields: [(&str, Option<String>); N],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> [Option<Secret>; N] {
    fields.map(|(field, value)| {
        value.and_then(|value| match expand(&value, env) {
            Ok(expanded) => Some(Secret(expanded)),
            Err(e) => {
                problems.push(format!("{field}: {e}"));
                None
            }
        })
    })
}

/// An entry's fields, or an error that names what is wrong without repeating the value
/// (it may be a secret).
fn raw_entry(path: &Path, entry: &Entry) -> Result<RawEntry, ConfigError> {
    serde_json::from_value(entry.value.to_json()).map_err(|e| {
        let message = without_value(&e.to_string()).replace("struct RawEntry", "an object");
        let line = field_line(&entry.value).unwrap_or(entry.line);
        ConfigError::at(
            path,
            line,
            &entry.key,
            format!(
                "{message} (an entry is an object with optional \"username\", \"password\", \
                 \"proxy\", \"kind\", \"region\", \"api\" strings and an \"insecure\" boolean)"
            ),
        )
    })
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
            kind: None,
            region: None,
            api: None,
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

    #[test]
    fn kind_region_and_api_are_checked() {
        let ok = |registry: &str, kind: Option<&str>, region: Option<&str>, api: Option<&str>| {
            check_vendor(
                registry,
                kind.map(str::to_string),
                region.map(str::to_string),
                api.map(str::to_string),
            )
        };
        assert_eq!(
            ok("h.io", Some("harbor"), None, Some("http://h.io:8080/")).unwrap(),
            (
                Some(crate::kind::Kind::Harbor),
                None,
                Some("http://h.io:8080".into())
            )
        );
        assert!(ok("swr.cn-north-4.myhuaweicloud.com", None, None, None).is_ok());
        assert!(ok("swr.internal", Some("swr"), Some("cn-north-4"), None).is_ok());
        let error = |r, k, g, a| ok(r, k, g, a).unwrap_err();
        assert!(error("h.io", Some("gitlab"), None, None).contains("\"harbor\", \"swr\""));
        assert!(error("h.io", Some("swr"), None, None).starts_with("region: required"));
        assert!(error("h.io", None, Some("Mars 1"), None).starts_with("region:"));
        assert!(error("h.io", None, None, Some("swr-api.x")).starts_with("api:"));
        assert!(error("h.io", None, None, Some("https://x/?a=1")).starts_with("api:"));
    }
}
