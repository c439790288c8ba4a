//! Throwaway OCI distribution registries in Docker, one per test, started with
//! testcontainers.
//!
//! Each [`TestRegistry`] is a fresh container (nothing shared between tests), ready to
//! answer `GET /v2/` when `start*` returns, and removed (with its volume) when dropped —
//! also when the test panics.
//!
//! The image is `$IMAGE_MIGRATOR_TEST_REGISTRY` (default `registry:2`). `ci/lib.sh`
//! sets it, building `image-migrator/test-registry:2.8.2` from Debian's docker-registry
//! when `registry:2` cannot be pulled. When the variable is unset and `registry:2` is not
//! present locally, that local image is used if it exists.
//!
//! testcontainers' CLI client (0.15) is used: it drives the `docker` command, which
//! negotiates the API version. Newer testcontainers releases talk to the daemon through
//! bollard with a fixed API version (1.44+), which Debian 12's docker.io (API 1.41)
//! rejects with "client version is too new".

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use testcontainers::clients::Cli;
use testcontainers::core::WaitFor;
use testcontainers::{Container, GenericImage};

/// Environment variable naming the registry image the tests run.
pub const IMAGE_ENV: &str = "IMAGE_MIGRATOR_TEST_REGISTRY";
/// Default for [`IMAGE_ENV`].
pub const DEFAULT_IMAGE: &str = "registry:2";
/// The image `ci/lib.sh` builds when `registry:2` cannot be pulled.
pub const LOCAL_IMAGE: &str = "image-migrator/test-registry:2.8.2";
/// Where the registry reads the htpasswd file (a directory mounted from the host).
const HTPASSWD_DIR: &str = "/auth";
const HTPASSWD_PATH: &str = "/auth/htpasswd";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry container. `host` is `127.0.0.1:PORT`, plain HTTP.
pub struct TestRegistry {
    container: Container<'static, GenericImage>,
    /// Holds the htpasswd file while the container runs.
    _config_dir: Option<tempfile::TempDir>,
    /// `127.0.0.1:PORT` — use as the registry part of image references.
    pub host: String,
    /// Basic-auth credentials, when started with [`TestRegistry::start_with_htpasswd`].
    pub credentials: Option<(String, String)>,
    /// Serving HTTPS ([`TestRegistry::start_tls`]).
    pub tls: bool,
    /// The client certificate and key (PEM) an mTLS registry demands
    /// ([`TestRegistry::start_mtls`]).
    pub client_identity: Option<(String, String)>,
}

/// A ureq TLS config that skips verification (test setup only), with a client
/// certificate when one is given.
pub fn setup_tls(identity: Option<&(String, String)>) -> ureq::tls::TlsConfig {
    let mut tls = ureq::tls::TlsConfig::builder().disable_verification(true);
    if let Some((cert, key)) = identity {
        let chain: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(cert.as_bytes())
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let key = ureq::tls::PrivateKey::from_pem(key.as_bytes()).expect("client key");
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
    }
    tls.build()
}

impl TestRegistry {
    /// An anonymous registry: anyone may pull and push. Deletes are enabled.
    pub fn start() -> TestRegistry {
        Self::launch(&[], &[], false)
    }

    /// An anonymous registry serving HTTPS with this certificate and key (PEM).
    /// A plain registry whose storage refuses deletes (distribution's default: `DELETE`
    /// of a manifest answers `405 UNSUPPORTED`).
    pub fn start_without_deletes() -> TestRegistry {
        Self::launch(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")], &[], false)
    }

    pub fn start_tls(cert_pem: &str, key_pem: &str) -> TestRegistry {
        let env = [
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/auth/server.crt"),
            ("REGISTRY_HTTP_TLS_KEY", "/auth/server.key"),
        ];
        let files = [
            ("server.crt", cert_pem.as_bytes().to_vec()),
            ("server.key", key_pem.as_bytes().to_vec()),
        ];
        Self::launch(&env, &files, true)
    }

    /// HTTPS that demands a client certificate signed by `client_ca_pem` (Docker's mTLS
    /// registries); `client_identity` is what the test setup itself connects with.
    pub fn start_mtls(
        cert_pem: &str,
        key_pem: &str,
        client_ca_pem: &str,
        client_identity: (String, String),
    ) -> TestRegistry {
        let env = [
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/auth/server.crt"),
            ("REGISTRY_HTTP_TLS_KEY", "/auth/server.key"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS", "[/auth/client-ca.pem]"),
        ];
        let files = [
            ("server.crt", cert_pem.as_bytes().to_vec()),
            ("server.key", key_pem.as_bytes().to_vec()),
            ("client-ca.pem", client_ca_pem.as_bytes().to_vec()),
        ];
        Self::launch_with(&env, &files, true, Some(client_identity))
    }

    /// A registry with `auth: token`: clients are sent to `realm` for tokens, which must
    /// be JWTs for `service` from `issuer`, signed by a key whose certificate chains to
    /// `root_cert_pem` (the JWT header's `x5c`). The registry never calls the realm.
    pub fn start_with_token(
        realm: &str,
        service: &str,
        issuer: &str,
        root_cert_pem: &str,
    ) -> TestRegistry {
        let env = [
            ("REGISTRY_AUTH", "token"),
            ("REGISTRY_AUTH_TOKEN_REALM", realm),
            ("REGISTRY_AUTH_TOKEN_SERVICE", service),
            ("REGISTRY_AUTH_TOKEN_ISSUER", issuer),
            ("REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE", "/auth/root.pem"),
        ];
        let files = [("root.pem", root_cert_pem.as_bytes().to_vec())];
        Self::launch(&env, &files, false)
    }

    /// A registry that requires HTTP basic auth (`htpasswd` backend, realm
    /// `image-migrator-test`) for every request, including `GET /v2/`.
    pub fn start_with_htpasswd(user: &str, password: &str) -> TestRegistry {
        Self::start_with_htpasswd_users(&[(user, password)])
    }

    /// Like [`TestRegistry::start_with_htpasswd`] with several users in the one htpasswd
    /// file (each may read and write everything); `credentials` are the first user's.
    /// The registry logs the authenticated user of each request (`auth.user.name`).
    pub fn start_with_htpasswd_users(users: &[(&str, &str)]) -> TestRegistry {
        assert!(!users.is_empty(), "at least one user");
        // Cost 4 (the minimum): the registry checks the hash on every request.
        let htpasswd: String = users
            .iter()
            .map(|(user, password)| {
                let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
                format!("{user}:{hash}\n")
            })
            .collect();
        let env = [
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "image-migrator-test"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", HTPASSWD_PATH),
        ];
        let files = [("htpasswd", htpasswd.into_bytes())];
        let mut reg = Self::launch(&env, &files, false);
        reg.credentials = Some((users[0].0.to_string(), users[0].1.to_string()));
        reg
    }

    /// The image registries are started from (see the module docs).
    pub fn image() -> &'static str {
        static IMAGE: OnceLock<String> = OnceLock::new();
        IMAGE.get_or_init(|| match std::env::var(IMAGE_ENV) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ if image_present(DEFAULT_IMAGE) => DEFAULT_IMAGE.to_string(),
            _ if image_present(LOCAL_IMAGE) => LOCAL_IMAGE.to_string(),
            _ => DEFAULT_IMAGE.to_string(),
        })
    }

    /// `http://127.0.0.1:PORT` (`https://…` for a TLS registry).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// The Docker container id.
    pub fn container_id(&self) -> &str {
        self.container.id()
    }

    /// The registry's log (it logs to stderr), for diagnosing a failed test.
    pub fn logs(&self) -> String {
        container_logs(self.container.id())
    }

    /// Starts the container with `env`; `files` are written to a host directory mounted
    /// at `/auth`.
    fn launch(env: &[(&str, &str)], files: &[(&str, Vec<u8>)], tls: bool) -> TestRegistry {
        Self::launch_with(env, files, tls, None)
    }

    fn launch_with(
        env: &[(&str, &str)],
        files: &[(&str, Vec<u8>)],
        tls: bool,
        client_identity: Option<(String, String)>,
    ) -> TestRegistry {
        static DOCKER: OnceLock<Cli> = OnceLock::new();
        let docker = DOCKER.get_or_init(Cli::default);
        let image = Self::image();
        let (name, tag) = split_image(image);
        let mut spec = GenericImage::new(name, tag)
            .with_exposed_port(5000)
            .with_env_var("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .with_wait_for(WaitFor::message_on_stderr("listening on"));
        for (key, value) in env {
            spec = spec.with_env_var(*key, *value);
        }
        let config_dir = (!files.is_empty()).then(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            for (name, content) in files {
                std::fs::write(dir.path().join(name), content).expect("write config file");
            }
            dir
        });
        if let Some(dir) = &config_dir {
            let path: PathBuf = dir.path().to_path_buf();
            spec = spec.with_volume(path.display().to_string(), HTPASSWD_DIR);
        }
        let container = docker.run(spec);
        let host = format!("127.0.0.1:{}", container.get_host_port_ipv4(5000));
        let reg = TestRegistry {
            container,
            _config_dir: config_dir,
            host,
            credentials: None,
            tls,
            client_identity,
        };
        reg.wait_ready();
        reg
    }

    /// Poll `GET /v2/` until the registry answers (200, or 401 when auth is on).
    fn wait_ready(&self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(setup_tls(self.client_identity.as_ref()))
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let url = format!("{}/v2/", self.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match agent.get(&url).call() {
                Ok(resp) if matches!(resp.status().as_u16(), 200 | 401) => return,
                Ok(resp) => last = format!("HTTP {}", resp.status()),
                Err(e) => last = e.to_string(),
            }
            if !container_running(self.container.id()) {
                panic!(
                    "registry container {} ({}) exited before answering; log:\n{}",
                    self.container.id(),
                    Self::image(),
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "registry at {} not ready after {:?} (last: {last}); log:\n{}",
            self.host,
            READY_TIMEOUT,
            self.logs()
        );
    }
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("host", &self.host)
            .field("container", &self.container.id())
            .finish()
    }
}

fn container_running(id: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", id])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
        .unwrap_or(false)
}

fn container_logs(id: &str) -> String {
    match docker(&["logs", id]) {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("(docker logs failed: {e})"),
    }
}

/// `name:tag` → (`name`, `tag`); a `:` inside a registry host is not a tag.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

fn docker<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::io::Result<Output> {
    Command::new("docker").args(args).output()
}

fn image_present(image: &str) -> bool {
    docker(&["image", "inspect", image])
        .map(|o| o.status.success())
        .unwrap_or(false)
}
