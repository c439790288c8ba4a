//! Reads a kubeconfig file and resolves one context into what a client needs to reach the
//! API server: the server URL, how to trust it, and which credentials to present. It is
//! kept apart from the HTTP client so the file format (and its many unsupported corners)
//! can be checked without a network.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::KubeError;

/// The subset of a kubeconfig file this tool understands. Unknown fields are ignored, as
/// kubectl does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeconfigFile {
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    contexts: Vec<Named<ContextEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    /// The entry itself: `cluster:`, `context:` or `user:` depending on the list.
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    value: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterEntry {
    #[serde(default)]
    server: String,
    certificate_authority: Option<String>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    tls_server_name: Option<String>,
    proxy_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ContextEntry {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    user: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UserEntry {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    client_certificate: Option<String>,
    client_certificate_data: Option<String>,
    client_key: Option<String>,
    client_key_data: Option<String>,
    username: Option<String>,
    password: Option<String>,
    exec: Option<serde_norway::Value>,
    auth_provider: Option<serde_norway::Value>,
    #[serde(rename = "as")]
    impersonate: Option<String>,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserEntry { .. }")
    }
}

/// Credentials sent with every request. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
        }
    }
}

/// A client certificate and its private key, both PEM. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity { cert_pem: .., key_pem: <redacted> }")
    }
}

/// Everything needed to talk to one cluster as one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// The context that was chosen, for messages.
    pub context: String,
    /// `https://host:port[/prefix]`, without a trailing slash.
    pub server: String,
    /// PEM bundle of the CA(s) that sign the server certificate; `None` = the usual roots.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify: true`.
    pub insecure: bool,
    pub identity: Option<ClientIdentity>,
    pub credentials: Credentials,
}

/// Where the kubeconfig lives when `-k` is not given: `$KUBECONFIG` is handled by clap,
/// this is the `~/.kube/config` fallback.
pub fn default_path() -> Result<PathBuf, KubeError> {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".kube").join("config")),
        None => Err(KubeError::Kubeconfig {
            path: PathBuf::from("~/.kube/config"),
            message: "HOME is not set; pass -k/--kubeconfig or set KUBECONFIG".into(),
        }),
    }
}

/// Picks the file to read from a `-k`/`$KUBECONFIG` value, which may be a `:`-separated
/// list like kubectl's. Lists are not merged: the first file that exists is used.
pub fn choose_path(value: &Path) -> PathBuf {
    if value.exists() {
        return value.to_path_buf();
    }
    let candidates: Vec<PathBuf> = std::env::split_paths(value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .or(candidates.first())
        .cloned()
        .unwrap_or_else(|| value.to_path_buf())
}

/// Reads the kubeconfig at `path` and resolves `context` (or the current context).
pub fn load(path: &Path, context: Option<&str>) -> Result<ClusterAccess, KubeError> {
    let text = std::fs::read_to_string(path).map_err(|e| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        message: format!("cannot read it: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    resolve(&text, base, context).map_err(|message| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses kubeconfig text; relative file paths in it are taken relative to `base`.
pub fn resolve(text: &str, base: &Path, context: Option<&str>) -> Result<ClusterAccess, String> {
    let file: KubeconfigFile = if text.trim().is_empty() {
        KubeconfigFile::default()
    } else {
        serde_norway::from_str(text).map_err(|e| format!("not a valid kubeconfig: {e}"))?
    };

    let context_name = match context {
        Some(name) => name.to_string(),
        None => file
            .current_context
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or("no current-context is set; pass --context NAME")?,
    };
    let ctx = find(&file.contexts, &context_name).ok_or_else(|| {
        format!(
            "context {context_name:?} not found (contexts: {})",
            names(&file.contexts)
        )
    })?;
    let cluster = find(&file.clusters, &ctx.cluster).ok_or_else(|| {
        format!(
            "cluster {:?} of context {context_name:?} not found",
            ctx.cluster
        )
    })?;
    let user =
        if ctx.user.is_empty() {
            None
        } else {
            Some(find(&file.users, &ctx.user).ok_or_else(|| {
                format!("user {:?} of context {context_name:?} not found", ctx.user)
            })?)
        };

    let server = server_of(cluster, &ctx.cluster)?;

    let ca_pem = read_data_or_file(
        base,
        "certificate-authority-data",
        cluster.certificate_authority_data.as_deref(),
        "certificate-authority",
        cluster.certificate_authority.as_deref(),
    )?;
    if ca_pem.is_some() && cluster.insecure_skip_tls_verify {
        return Err(format!(
            "cluster {:?}: certificate-authority and insecure-skip-tls-verify cannot both be set",
            ctx.cluster
        ));
    }

    let (identity, credentials) = match user {
        None => (None, Credentials::None),
        Some(user) => resolve_user(base, &ctx.user, user)?,
    };

    Ok(ClusterAccess {
        context: context_name,
        server,
        ca_pem,
        insecure: cluster.insecure_skip_tls_verify,
        identity,
        credentials,
    })
}

/// The cluster's API server URL, checked, and the settings of a cluster entry that are
/// refused rather than ignored.
fn server_of(cluster: &ClusterEntry, name: &str) -> Result<String, String> {
    let server = cluster.server.trim().trim_end_matches('/').to_string();
    if server.is_empty() {
        return Err(format!("cluster {name:?} has no server"));
    }
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(format!(
            "server {server:?} of cluster {name:?} must start with https:// or http://"
        ));
    }
    if cluster.tls_server_name.is_some() {
        return Err(format!(
            "cluster {name:?}: tls-server-name is not supported"
        ));
    }
    if cluster.proxy_url.is_some() {
        return Err(format!(
            "cluster {name:?}: proxy-url is not supported (HTTPS_PROXY/NO_PROXY are honoured)"
        ));
    }
    Ok(server)
}

fn resolve_user(
    base: &Path,
    name: &str,
    user: &UserEntry,
) -> Result<(Option<ClientIdentity>, Credentials), String> {
    if user.exec.is_some() {
        return Err(format!(
            "user {name:?} uses an exec credential plugin, which is not supported; \
             use a token, tokenFile or client certificate, or pass --from-file with \
             the output of kubectl get ... -o json"
        ));
    }
    if user.auth_provider.is_some() {
        return Err(format!(
            "user {name:?} uses an auth-provider, which is not supported; \
             use a token, tokenFile or client certificate, or pass --from-file with \
             the output of kubectl get ... -o json"
        ));
    }
    if user.impersonate.is_some() {
        return Err(format!(
            "user {name:?}: impersonation (as) is not supported"
        ));
    }

    let cert = read_data_or_file(
        base,
        "client-certificate-data",
        user.client_certificate_data.as_deref(),
        "client-certificate",
        user.client_certificate.as_deref(),
    )?;
    let key = read_data_or_file(
        base,
        "client-key-data",
        user.client_key_data.as_deref(),
        "client-key",
        user.client_key.as_deref(),
    )?;
    let identity = match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => Some(ClientIdentity { cert_pem, key_pem }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(format!(
                "user {name:?} has a client certificate but no client key"
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "user {name:?} has a client key but no client certificate"
            ));
        }
    };

    Ok((identity, user_credentials(base, name, user)?))
}

/// A user's token (a tokenFile wins over an inline token, as in client-go) or username and
/// password.
fn user_credentials(base: &Path, name: &str, user: &UserEntry) -> Result<Credentials, String> {
    let token = match user.token_file.as_deref().filter(|f| !f.is_empty()) {
        Some(file) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read tokenFile {}: {e}", path.display()))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(format!("tokenFile {} is empty", path.display()));
            }
            Some(token)
        }
        None => user.token.clone().filter(|t| !t.is_empty()),
    };
    let username = user.username.clone().filter(|u| !u.is_empty());
    let credentials = match (token, username) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "user {name:?} sets both a token and a username/password; choose one"
            ));
        }
        (Some(token), None) => Credentials::Bearer(token),
        (None, Some(username)) => Credentials::Basic {
            username,
            password: user.password.clone().unwrap_or_default(),
        },
        (None, None) => Credentials::None,
    };
    Ok(credentials)
}

/// `*-data` (base64, inline) wins over the file variant, as in client-go.
fn read_data_or_file(
    base: &Path,
    data_field: &str,
    data: Option<&str>,
    file_field: &str,
    file: Option<&str>,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(data) = data.filter(|d| !d.trim().is_empty()) {
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(Some)
            .map_err(|e| format!("{data_field} is not valid base64: {e}"));
    }
    match file.filter(|f| !f.is_empty()) {
        Some(file) => {
            let path = base.join(file);
            std::fs::read(&path)
                .map(Some)
                .map_err(|e| format!("cannot read {file_field} {}: {e}", path.display()))
        }
        None => Ok(None),
    }
}

fn find<'a, T>(entries: &'a [Named<T>], name: &str) -> Option<&'a T> {
    entries
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_ref())
}

fn names<T>(entries: &[Named<T>]) -> String {
    if entries.is_empty() {
        return "none".into();
    }
    entries
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTg==
- name: other
  cluster:
    server: https://other.example:443
    insecure-skip-tls-verify: true
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: alice
    namespace: apps
- name: other
  context:
    cluster: other
    user: bob
users:
- name: alice
  user:
    token: abc123
- name: bob
  user:
    username: bob
    password: secret
"#;

    #[test]
    fn current_context_with_token_and_ca_data() {
        let access = resolve(BASE, Path::new("/nowhere"), None).unwrap();
        assert_eq!(access.context, "dev");
        assert_eq!(access.server, "https://10.0.0.1:6443");
        assert_eq!(access.ca_pem.as_deref(), Some(&b"-----BEGIN"[..]));
        assert!(!access.insecure);
        assert_eq!(access.credentials, Credentials::Bearer("abc123".into()));
    }

    #[test]
    fn explicit_context_with_basic_auth_and_insecure() {
        let access = resolve(BASE, Path::new("/nowhere"), Some("other")).unwrap();
        assert!(access.insecure);
        assert_eq!(access.ca_pem, None);
        assert_eq!(
            access.credentials,
            Credentials::Basic {
                username: "bob".into(),
                password: "secret".into()
            }
        );
        assert!(!format!("{:?}", access.credentials).contains("secret"));
    }

    #[test]
    fn unknown_context_lists_the_known_ones() {
        let err = resolve(BASE, Path::new("/"), Some("prod")).unwrap_err();
        assert!(err.contains("\"prod\" not found"), "{err}");
        assert!(err.contains("dev, other"), "{err}");
    }

    #[test]
    fn relative_files_are_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "CA").unwrap();
        std::fs::write(dir.path().join("token"), "tok\n").unwrap();
        let text = r#"
current-context: c
clusters: [{name: k, cluster: {server: "https://k:6443", certificate-authority: ca.pem}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {tokenFile: token, token: ignored}}]
"#;
        let access = resolve(text, dir.path(), None).unwrap();
        assert_eq!(access.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(access.credentials, Credentials::Bearer("tok".into()));
    }

    #[test]
    fn exec_and_auth_provider_are_not_supported() {
        for user in [
            "{exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}",
            "{auth-provider: {name: gcp}}",
        ] {
            let text = format!(
                "current-context: c\nclusters: [{{name: k, cluster: {{server: 'https://k'}}}}]\n\
                 contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n\
                 users: [{{name: u, user: {user}}}]\n"
            );
            let err = resolve(&text, Path::new("/"), None).unwrap_err();
            assert!(err.contains("not supported"), "{err}");
        }
    }

    #[test]
    fn missing_current_context_is_an_error() {
        let err = resolve("clusters: []", Path::new("/"), None).unwrap_err();
        assert!(err.contains("--context"), "{err}");
    }
}
