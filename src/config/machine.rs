//! Credentials the machine already has, for registries auth.json does not cover: Docker's
//! config (`auths`, `credHelpers`, `credsStore`), the containers auth file, and GitLab's
//! `DOCKER_AUTH_CONFIG`, in that order. Only reads files and variables: a credential
//! helper is named here and run by the layer that talks to registries.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::auth::Secret;
use super::{ConfigError, ConfigErrors};
use crate::reference::{DOCKER_HUB, canonical_registry};

/// What a registry is accessed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: Secret,
        password: Secret,
    },
    /// An OAuth2 refresh token, exchanged at the token service (`docker login` to some
    /// registries, helpers answering `Username: "<token>"`).
    IdentityToken(Secret),
    /// A bearer token sent to the registry as is.
    RegistryToken(Secret),
}

/// Where a registry's credentials come from; `validate` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    AuthJson,
    DockerConfig,
    Helper(String),
    ContainersAuth,
    DockerAuthConfig,
    /// SWR's login key, derived from `HUAWEICLOUD_SDK_AK` / `_SK`.
    SwrAksk,
    /// ECR's `GetAuthorizationToken`, signed with `AWS_*`.
    EcrApi,
    Anonymous,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::AuthJson => f.write_str("auth.json"),
            CredentialSource::DockerConfig => f.write_str("docker-config"),
            CredentialSource::Helper(name) => write!(f, "credential-helper:{name}"),
            CredentialSource::ContainersAuth => f.write_str("containers-auth"),
            CredentialSource::DockerAuthConfig => f.write_str("DOCKER_AUTH_CONFIG"),
            CredentialSource::SwrAksk => f.write_str("swr-aksk"),
            CredentialSource::EcrApi => f.write_str("ecr-api"),
            CredentialSource::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// What the machine has for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Static(CredentialSource, Credentials),
    /// Run `docker-credential-<name> get` with `server_url` on stdin.
    Helper {
        name: String,
        server_url: String,
    },
}

/// One `auths` map (Docker config, containers auth file, `DOCKER_AUTH_CONFIG`).
#[derive(Debug, Clone, Default)]
struct Auths {
    /// (registry, namespace) → credentials, keys folded as Docker and podman fold them.
    entries: Vec<(String, Option<String>, Credentials)>,
}

/// The Docker config, the containers auth file and `DOCKER_AUTH_CONFIG`, read once.
#[derive(Debug, Clone, Default)]
pub struct MachineCredentials {
    docker_auths: Auths,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
    containers: Auths,
    gitlab: Auths,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl MachineCredentials {
    /// Reads the sources that exist; a source that exists but cannot be read is a
    /// configuration error naming it (never a value in it).
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut machine = MachineCredentials::default();
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let docker_path = match (set("DOCKER_CONFIG"), set("HOME")) {
            (Some(dir), _) => Some(PathBuf::from(dir).join("config.json")),
            (None, Some(home)) => Some(PathBuf::from(home).join(".docker/config.json")),
            (None, None) => None,
        };
        if let Some(path) = docker_path.filter(|p| p.exists()) {
            match read_config(&path) {
                Ok(raw) => {
                    machine.docker_auths = auths(&path, raw.auths, &mut errors);
                    machine.cred_helpers = raw
                        .cred_helpers
                        .into_iter()
                        .map(|(host, name)| (fold_key(&host).0, name))
                        .collect();
                    machine.creds_store = raw.creds_store.filter(|s| !s.is_empty());
                }
                Err(e) => errors.push(e),
            }
        }
        let containers_path = set("REGISTRY_AUTH_FILE")
            .map(PathBuf::from)
            .or_else(|| set("XDG_RUNTIME_DIR").map(|d| Path::new(&d).join("containers/auth.json")));
        if let Some(path) = containers_path.filter(|p| p.exists()) {
            match read_config(&path) {
                Ok(raw) => machine.containers = auths(&path, raw.auths, &mut errors),
                Err(e) => errors.push(e),
            }
        }
        if let Some(text) = set("DOCKER_AUTH_CONFIG") {
            let name = Path::new("DOCKER_AUTH_CONFIG");
            match serde_json::from_str::<RawConfig>(&text) {
                Ok(raw) => machine.gitlab = auths(name, raw.auths, &mut errors),
                Err(e) => errors.push(ConfigError::file(
                    name,
                    format!(
                        "the variable is not a Docker config JSON ({}); expected {{\"auths\": {{...}}}}",
                        super::source::without_value(&e.to_string())
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(machine)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// What the machine has for `repository` on `registry`, in the documented order.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<Found> {
        if let Some(credentials) = self.docker_auths.lookup(registry, repository) {
            return Some(Found::Static(CredentialSource::DockerConfig, credentials));
        }
        let helper = self
            .cred_helpers
            .get(registry)
            .or(self.creds_store.as_ref());
        if let Some(name) = helper {
            return Some(Found::Helper {
                name: name.clone(),
                server_url: helper_server_url(registry),
            });
        }
        if let Some(credentials) = self.containers.lookup(registry, repository) {
            return Some(Found::Static(CredentialSource::ContainersAuth, credentials));
        }
        if let Some(credentials) = self.gitlab.lookup(registry, repository) {
            return Some(Found::Static(
                CredentialSource::DockerAuthConfig,
                credentials,
            ));
        }
        None
    }

    /// Every non-empty secret read from files or variables, for masking in CI logs.
    pub fn secret_values(&self) -> Vec<&str> {
        [&self.docker_auths, &self.containers, &self.gitlab]
            .into_iter()
            .flat_map(|a| a.entries.iter())
            .flat_map(|(_, _, c)| match c {
                Credentials::Anonymous => vec![],
                Credentials::Basic { username, password } => vec![username, password],
                Credentials::IdentityToken(t) | Credentials::RegistryToken(t) => vec![t],
            })
            .map(Secret::expose)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl Auths {
    fn lookup(&self, registry: &str, repository: &str) -> Option<Credentials> {
        self.entries
            .iter()
            .filter(|(r, _, _)| r == registry)
            .filter(|(_, ns, _)| super::auth::namespace_covers(ns.as_deref(), repository))
            .max_by_key(|(_, ns, _)| ns.as_ref().map_or(0, |ns| ns.len() + 1))
            .map(|(_, _, c)| c.clone())
    }
}

/// The server URL a helper is asked about: Docker Hub's historical key, else the host.
fn helper_server_url(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// `https://index.docker.io/v1/`, `registry.example.com/ns`, `http://host:5000/v2/` →
/// (registry with Docker Hub's aliases folded, namespace).
fn fold_key(key: &str) -> (String, Option<String>) {
    let key = key.trim();
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    let (host, path) = match rest.split_once('/') {
        Some((host, path)) => (host, Some(path)),
        None => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    let registry = if host == "registry.hub.docker.com" {
        DOCKER_HUB.to_string()
    } else {
        canonical_registry(&host)
    };
    // Docker's `/v1/` and `/v2/` suffixes are API paths, not namespaces.
    let namespace = path
        .filter(|p| !p.is_empty() && *p != "v1" && *p != "v2")
        .map(str::to_string);
    (registry, namespace)
}

fn read_config(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        ConfigError::file(
            path,
            format!(
                "not a Docker config JSON: {}",
                super::source::without_value(&e.to_string())
            ),
        )
    })
}

fn auths(path: &Path, raw: BTreeMap<String, RawAuth>, errors: &mut Vec<ConfigError>) -> Auths {
    let mut entries = Vec::new();
    for (key, auth) in raw {
        let (registry, namespace) = fold_key(&key);
        match credentials(auth) {
            Ok(Some(credentials)) => entries.push((registry, namespace, credentials)),
            Ok(None) => {}
            Err(message) => {
                errors.push(ConfigError::file(path, format!("auths {key:?}: {message}")))
            }
        }
    }
    Auths { entries }
}

/// One `auths` entry; `None` for an empty one (a `credsStore` keeps the secret elsewhere).
fn credentials(raw: RawAuth) -> Result<Option<Credentials>, String> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    if let Some(token) = non_empty(raw.registrytoken) {
        return Ok(Some(Credentials::RegistryToken(Secret::new(token))));
    }
    if let Some(token) = non_empty(raw.identitytoken) {
        return Ok(Some(Credentials::IdentityToken(Secret::new(token))));
    }
    if let Some(auth) = non_empty(raw.auth) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("\"auth\" is not base64 of \"username:password\"")?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or("\"auth\" is not base64 of \"username:password\"")?;
        return Ok(Some(Credentials::Basic {
            username: Secret::new(username),
            password: Secret::new(password),
        }));
    }
    match (non_empty(raw.username), non_empty(raw.password)) {
        (Some(username), Some(password)) => Ok(Some(Credentials::Basic {
            username: Secret::new(username),
            password: Secret::new(password),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_as_docker_and_podman_write_them() {
        assert_eq!(
            fold_key("https://index.docker.io/v1/"),
            ("docker.io".into(), None)
        );
        assert_eq!(
            fold_key("registry.hub.docker.com"),
            ("docker.io".into(), None)
        );
        assert_eq!(fold_key("registry-1.docker.io"), ("docker.io".into(), None));
        assert_eq!(fold_key("http://r.io:5000/v2/"), ("r.io:5000".into(), None));
        assert_eq!(
            fold_key("quay.io/team/app"),
            ("quay.io".into(), Some("team/app".into()))
        );
    }

    fn config(json: &str) -> MachineCredentials {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let path = dir.path().display().to_string();
        MachineCredentials::load(&|name| (name == "DOCKER_CONFIG").then(|| path.clone())).unwrap()
    }

    #[test]
    fn auths_then_cred_helpers_then_creds_store() {
        let machine = config(
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"},
                          "r.io": {"identitytoken": "idt"}, "s.io": {}},
                "credHelpers": {"ecr.io": "ecr-login", "r.io": "never"},
                "credsStore": "desktop"}"#,
        );
        let basic = Credentials::Basic {
            username: Secret::new("u"),
            password: Secret::new("p"),
        };
        assert_eq!(
            machine.lookup("docker.io", "library/nginx"),
            Some(Found::Static(CredentialSource::DockerConfig, basic))
        );
        assert_eq!(
            machine.lookup("r.io", "a/b"),
            Some(Found::Static(
                CredentialSource::DockerConfig,
                Credentials::IdentityToken(Secret::new("idt"))
            ))
        );
        let helper = |name: &str, url: &str| {
            Some(Found::Helper {
                name: name.into(),
                server_url: url.into(),
            })
        };
        assert_eq!(
            machine.lookup("ecr.io", "a/b"),
            helper("ecr-login", "ecr.io")
        );
        assert_eq!(machine.lookup("s.io", "a/b"), helper("desktop", "s.io"));
        let machine = config(r#"{"credsStore": "desktop"}"#);
        assert_eq!(
            machine.lookup("docker.io", "x/y"),
            helper("desktop", "https://index.docker.io/v1/")
        );
    }

    #[test]
    fn a_broken_file_names_itself_not_its_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"r.io": {"auth": "hunter2"}}}"#,
        )
        .unwrap();
        let path = dir.path().display().to_string();
        let errors =
            MachineCredentials::load(&|name| (name == "DOCKER_CONFIG").then(|| path.clone()))
                .unwrap_err();
        let text = errors.0[0].to_string();
        assert!(
            text.contains("config.json") && text.contains("r.io"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}
