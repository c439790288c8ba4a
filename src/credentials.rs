//! Which credentials a repository is accessed with: its auth.json entry, else what the
//! machine has (`config::machine`), else anonymous. Credential helpers
//! (`docker-credential-<name> get`) run here, at most once per registry per run and once
//! more after the registry refused what they gave (ECR tokens expire). What a helper
//! says is a secret: it is handed to `on_secret` (masking in CI) and never printed.
//!
//! Cloud sign-in: a registry of kind SWR without a username and password in auth.json,
//! with `HUAWEICLOUD_SDK_AK` / `_SK` set, signs in as `<region>@<AK>` with the long-term
//! login key `hex(HMAC-SHA256(SK, AK))` (`swr-aksk`); these come before the machine's
//! Docker config, because the keys were given for this run. A registry of kind ECR
//! without them, with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` set, signs in as `AWS`
//! with the password of ECR's `GetAuthorizationToken` (`ecr-api`): asked of a
//! [`CloudSignIn`] (the registry client, which talks to the network; this module does not)
//! once per registry per run, and once more after the registry refused it (it expires).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{AuthConfig, CloudKeys, Found, MachineCredentials};
pub use crate::config::{AwsKeys, CredentialSource, Credentials, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::kind::Kind;

mod ecr;
use ecr::EcrSlot;
pub use ecr::{CloudSignIn, EcrSignIn};

/// How long a helper may take to answer.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// Credentials for one repository, with where they came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub credentials: Credentials,
    pub source: CredentialSource,
    /// Tells credentials apart in token caches (changes when a helper is asked again).
    pub key: CredentialKey,
}

/// Which credentials these are, without the secrets: a token is cached per credentials,
/// and a helper asked again gives new ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialKey {
    Anonymous,
    /// An auth.json entry, by its key as written.
    AuthJson(String),
    /// What the machine's Docker or containers configuration holds for a registry.
    Machine {
        source: CredentialSource,
        registry: String,
    },
    /// A credential helper's answer; `run` counts the times it was asked in this run.
    Helper {
        helper: HelperId,
        run: u32,
    },
    /// ECR's `GetAuthorizationToken` for a registry; `run` counts the times it was asked.
    EcrToken {
        registry: String,
        run: u32,
    },
}

/// A credential helper asked about one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HelperId {
    /// `<name>` of `docker-credential-<name>`.
    pub name: String,
    pub server_url: String,
}

#[derive(Default)]
struct HelperSlot {
    answer: Option<std::result::Result<Credentials, String>>,
    runs: u32,
}

/// All credential sources of a run.
pub struct CredentialStore {
    auth: AuthConfig,
    machine: MachineCredentials,
    helpers: Mutex<HashMap<HelperId, Arc<Mutex<HelperSlot>>>>,
    /// ECR sign-ins, by registry.
    ecr: Mutex<HashMap<String, Arc<Mutex<EcrSlot>>>>,
    on_secret: Box<dyn Fn(&str) + Send + Sync>,
    cloud: CloudKeys,
    /// SWR's login key, derived once from the Huawei keys.
    swr_login_key: Option<Secret>,
}

impl CredentialStore {
    /// `on_secret` sees every secret a helper returns before it is used.
    pub fn new(
        auth: AuthConfig,
        machine: MachineCredentials,
        on_secret: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        CredentialStore {
            auth,
            machine,
            helpers: Mutex::new(HashMap::new()),
            ecr: Mutex::new(HashMap::new()),
            on_secret,
            cloud: CloudKeys::default(),
            swr_login_key: None,
        }
    }

    /// The clouds' keys (from the environment), for signing API requests and signing in;
    /// each value, and SWR's login key derived from them, goes to `on_secret` now.
    pub fn with_cloud(mut self, cloud: CloudKeys) -> Self {
        self.swr_login_key = cloud.huawei.as_ref().map(|keys| {
            Secret::new(crate::signing::swr_login_key(
                keys.ak.expose(),
                keys.sk.expose(),
            ))
        });
        for secret in cloud
            .secret_values()
            .into_iter()
            .chain(self.swr_login_key.as_ref().map(Secret::expose))
        {
            (self.on_secret)(secret);
        }
        self.cloud = cloud;
        self
    }

    pub fn auth(&self) -> &AuthConfig {
        &self.auth
    }

    pub fn cloud(&self) -> &CloudKeys {
        &self.cloud
    }

    /// The kind of a registry, as auth.json or its host says (Harbor's ping is not asked).
    pub fn kind(&self, registry: &str) -> Option<Kind> {
        self.kind_region(registry).0
    }

    /// The kind and region of a registry, as auth.json or its host says.
    fn kind_region(&self, registry: &str) -> (Option<Kind>, Option<String>) {
        let fields = self.auth.vendor(registry);
        let host = crate::kind::from_host(registry);
        (
            fields.kind.or(host.as_ref().map(|h| h.kind)),
            fields.region.or(host.and_then(|h| h.region)),
        )
    }

    /// The cloud sign-in a registry gets when auth.json gives it no username and password.
    fn cloud_source(&self, registry: &str) -> Option<CredentialSource> {
        match self.kind_region(registry) {
            (Some(Kind::Swr), Some(_)) if self.cloud.huawei.is_some() => {
                Some(CredentialSource::SwrAksk)
            }
            (Some(Kind::Ecr), Some(_)) if self.cloud.aws.is_some() => {
                Some(CredentialSource::EcrApi)
            }
            _ => None,
        }
    }

    /// Where the credentials for a repository come from, without running any helper.
    pub fn source(&self, registry: &str, repository: &str) -> CredentialSource {
        if self.auth_entry(registry, repository).is_some() {
            return CredentialSource::AuthJson;
        }
        if let Some(source) = self.cloud_source(registry) {
            return source;
        }
        match self.machine.lookup(registry, repository) {
            Some(Found::Static(source, _)) => source,
            Some(Found::Helper { name, .. }) => CredentialSource::Helper(name),
            None => CredentialSource::Anonymous,
        }
    }

    /// The credentials for a repository; a helper that fails is an error naming it and the
    /// registry. `sign_in` asks ECR for its password (the first time, and after a refusal).
    pub fn get(
        &self,
        registry: &str,
        repository: &str,
        sign_in: &dyn CloudSignIn,
    ) -> Result<Resolved> {
        if let Some((key, username, password)) = self.auth_entry(registry, repository) {
            return Ok(Resolved {
                credentials: Credentials::Basic { username, password },
                source: CredentialSource::AuthJson,
                key: CredentialKey::AuthJson(key),
            });
        }
        if let Some(CredentialSource::EcrApi) = self.cloud_source(registry) {
            return self.ecr(registry, sign_in);
        }
        if let Some(CredentialSource::SwrAksk) = self.cloud_source(registry)
            && let (Some(keys), Some(login_key), (_, Some(region))) = (
                &self.cloud.huawei,
                &self.swr_login_key,
                self.kind_region(registry),
            )
        {
            return Ok(Resolved {
                credentials: Credentials::Basic {
                    username: Secret::new(format!("{region}@{}", keys.ak.expose())),
                    password: login_key.clone(),
                },
                source: CredentialSource::SwrAksk,
                key: CredentialKey::Machine {
                    source: CredentialSource::SwrAksk,
                    registry: registry.to_string(),
                },
            });
        }
        match self.machine.lookup(registry, repository) {
            Some(Found::Static(source, credentials)) => Ok(Resolved {
                key: CredentialKey::Machine {
                    source: source.clone(),
                    registry: registry.to_string(),
                },
                credentials,
                source,
            }),
            Some(Found::Helper { name, server_url }) => {
                self.helper_answer(registry, HelperId { name, server_url })
            }
            None => Ok(Resolved {
                credentials: Credentials::Anonymous,
                source: CredentialSource::Anonymous,
                key: CredentialKey::Anonymous,
            }),
        }
    }

    /// A credential helper's answer, asked once (and again after a refusal).
    fn helper_answer(&self, registry: &str, helper: HelperId) -> Result<Resolved> {
        let slot = self.slot(&helper);
        let mut slot = slot.lock().unwrap();
        if slot.answer.is_none() {
            slot.runs += 1;
            let answer = run_helper(&helper.name, &helper.server_url);
            if let Ok(credentials) = &answer {
                for secret in secrets(credentials) {
                    (self.on_secret)(secret);
                }
            }
            slot.answer = Some(answer);
        }
        let credentials = slot.answer.clone().unwrap().map_err(|message| {
            Error::new(
                ErrorKind::Auth,
                format!(
                    "{registry}: credential helper docker-credential-{}: {message}",
                    helper.name
                ),
            )
        })?;
        Ok(Resolved {
            credentials,
            source: CredentialSource::Helper(helper.name.clone()),
            key: CredentialKey::Helper {
                run: slot.runs,
                helper,
            },
        })
    }

    /// The registry refused `resolved`: a helper's answer, or ECR's password, is forgotten
    /// so it is asked once more (only once per run). Returns whether anything changed.
    pub fn refused(&self, resolved: &Resolved, registry: &str, repository: &str) -> bool {
        if let CredentialKey::EcrToken { run, .. } = &resolved.key {
            return self.ecr_refused(registry, *run);
        }
        let CredentialSource::Helper(name) = &resolved.source else {
            return false;
        };
        let Some(Found::Helper { server_url, .. }) = self.machine.lookup(registry, repository)
        else {
            return false;
        };
        let helper = HelperId {
            name: name.clone(),
            server_url,
        };
        let slot = self.slot(&helper);
        let mut slot = slot.lock().unwrap();
        let current = CredentialKey::Helper {
            helper,
            run: slot.runs,
        };
        if slot.runs >= 2 || current != resolved.key {
            // Asked again already (by this job or a parallel one).
            return current != resolved.key;
        }
        slot.answer = None;
        true
    }

    fn slot(&self, helper: &HelperId) -> Arc<Mutex<HelperSlot>> {
        self.helpers
            .lock()
            .unwrap()
            .entry(helper.clone())
            .or_default()
            .clone()
    }

    fn auth_entry(&self, registry: &str, repository: &str) -> Option<(String, Secret, Secret)> {
        let entry = self.auth.lookup(registry, repository)?;
        let (username, password) = entry.credentials()?;
        Some((entry.key.clone(), username.clone(), password.clone()))
    }
}

fn secrets(credentials: &Credentials) -> Vec<&str> {
    match credentials {
        Credentials::Anonymous => vec![],
        Credentials::Basic { username, password } => vec![username.expose(), password.expose()],
        Credentials::IdentityToken(t) | Credentials::RegistryToken(t) => vec![t.expose()],
    }
}

/// `docker-credential-<name> get` with the server URL on stdin. "credentials not found"
/// means anonymous, as for Docker. Errors never carry what the helper printed on stdout.
fn run_helper(name: &str, server_url: &str) -> std::result::Result<Credentials, String> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{program} is not on PATH"),
            _ => format!("cannot start {program}: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server_url.as_bytes());
    }
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > HELPER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", HELPER_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for it failed: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    read_answer(status, &stdout, &stderr)
}

/// What a helper's exit status and output say. Errors never carry what it printed on
/// stdout (the secret's place).
fn read_answer(
    status: std::process::ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> std::result::Result<Credentials, String> {
    if !status.success() {
        let said = String::from_utf8_lossy(stdout);
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        let first_line = String::from_utf8_lossy(stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>();
        let detail = if first_line.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", first_line.trim())
        };
        return Err(format!("get failed ({status}){detail}"));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(stdout)
        .map_err(|_| "the answer is not JSON with \"Username\" and \"Secret\"".to_string())?;
    if answer.secret.is_empty() {
        return Ok(Credentials::Anonymous);
    }
    Ok(if answer.username == "<token>" {
        Credentials::IdentityToken(Secret::new(answer.secret))
    } else {
        Credentials::Basic {
            username: Secret::new(answer.username),
            password: Secret::new(answer.secret),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> CredentialStore {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let entries = r#"{"r.io/team": {"username": "u", "password": "p"}}"#;
        std::fs::write(&path, entries).unwrap();
        let auth = AuthConfig::load(&path, &|_| None).unwrap();
        let docker = r#"{"auths": {"other.io": {"username": "m", "password": "q"}}}"#;
        let env = |name: &str| (name == "DOCKER_AUTH_CONFIG").then(|| docker.to_string());
        let machine = MachineCredentials::load(&env).unwrap();
        CredentialStore::new(auth, machine, Box::new(|_| {}))
    }

    #[test]
    fn each_source_has_its_own_kind_of_key() {
        let store = store();
        struct NoSignIn;
        impl CloudSignIn for NoSignIn {
            fn ecr_password(&self, _: &EcrSignIn<'_>) -> Result<Secret> {
                unreachable!("no ECR registry here")
            }
        }
        let key = |registry: &str, repository: &str| {
            store.get(registry, repository, &NoSignIn).unwrap().key
        };
        assert_eq!(
            key("r.io", "team/app"),
            CredentialKey::AuthJson("r.io/team".into())
        );
        assert_eq!(
            key("other.io", "x/y"),
            CredentialKey::Machine {
                source: CredentialSource::DockerAuthConfig,
                registry: "other.io".into()
            }
        );
        assert_eq!(key("r.io", "elsewhere/app"), CredentialKey::Anonymous);
        // Keys tell credentials apart, not repositories: one entry, one key.
        assert_eq!(key("r.io", "team/a"), key("r.io", "team/b"));
    }
}
