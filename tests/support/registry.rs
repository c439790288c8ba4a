//! Throwaway OCI distribution registries in Docker, one per test.
//!
//! Each [`TestRegistry`] is a fresh container (nothing shared between tests), published
//! on `127.0.0.1:<random port>`, ready to answer `GET /v2/` when `start*` returns, and
//! removed (with its volume) when dropped — also when the test panics.
//!
//! The image is `$IMAGE_MIGRATOR_TEST_REGISTRY` (default `registry:2`). `ci/lib.sh`
//! sets it, building `image-migrator/test-registry:2.8.2` from Debian's docker-registry
//! when `registry:2` cannot be pulled. When the variable is unset and `registry:2` is not
//! present locally, that local image is used if it exists.
//!
//! Containers are driven through the `docker` CLI rather than testcontainers:
//! testcontainers 0.28 (bollard 0.21) speaks Docker API 1.53 only, and older daemons
//! (Debian 12's docker.io 20.10 answers 1.41) reject it with "client version 1.53 is too
//! new". The CLI negotiates the API version, so this works with any daemon.

use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable naming the registry image the tests run.
pub const IMAGE_ENV: &str = "IMAGE_MIGRATOR_TEST_REGISTRY";
/// Default for [`IMAGE_ENV`].
pub const DEFAULT_IMAGE: &str = "registry:2";
/// The image `ci/lib.sh` builds when `registry:2` cannot be pulled.
pub const LOCAL_IMAGE: &str = "image-migrator/test-registry:2.8.2";
/// Label on every container started here.
pub const CONTAINER_LABEL: &str = "image-migrator-test=1";
/// When set (ci/lib.sh sets it), containers also get the label
/// `image-migrator-test-run=<value>`, so that run can remove its own leftovers.
pub const RUN_ID_ENV: &str = "IMAGE_MIGRATOR_TEST_RUN_ID";

/// Where the registry image reads an htpasswd file from (the directory exists in both
/// `registry:2` and the local image, so `docker cp` can write into it).
const HTPASSWD_PATH: &str = "/etc/docker/registry/htpasswd";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry container. `host` is `127.0.0.1:PORT`, plain HTTP.
pub struct TestRegistry {
    container: Container,
    /// `127.0.0.1:PORT` — use as the registry part of image references.
    pub host: String,
    /// Basic-auth credentials, when started with [`TestRegistry::start_with_htpasswd`].
    pub credentials: Option<(String, String)>,
}

impl TestRegistry {
    /// An anonymous registry: anyone may pull and push. Deletes are enabled.
    pub fn start() -> TestRegistry {
        Self::launch(&[], None)
    }

    /// A registry that requires HTTP basic auth (`htpasswd` backend, realm
    /// `image-migrator-test`) for every request, including `GET /v2/`.
    pub fn start_with_htpasswd(user: &str, password: &str) -> TestRegistry {
        // Cost 4 (the minimum): the registry checks the hash on every request.
        let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
        let env = [
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "image-migrator-test"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", HTPASSWD_PATH),
        ];
        let mut reg = Self::launch(&env, Some(format!("{user}:{hash}\n")));
        reg.credentials = Some((user.to_string(), password.to_string()));
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

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The Docker container id.
    pub fn container_id(&self) -> &str {
        &self.container.id
    }

    /// The registry's log (it logs to stderr), for diagnosing a failed test.
    pub fn logs(&self) -> String {
        self.container.logs()
    }

    fn launch(env: &[(&str, &str)], htpasswd: Option<String>) -> TestRegistry {
        let image = Self::image();
        let mut args: Vec<String> = vec![
            "create".into(),
            "--label".into(),
            CONTAINER_LABEL.into(),
            "-p".into(),
            "127.0.0.1::5000".into(),
            "-e".into(),
            "REGISTRY_STORAGE_DELETE_ENABLED=true".into(),
        ];
        if let Ok(run) = std::env::var(RUN_ID_ENV) {
            args.push("--label".into());
            args.push(format!("image-migrator-test-run={run}"));
        }
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(image.to_string());
        let id = docker_ok(&args).trim().to_string();
        // From here on, dropping `container` removes it, even if a step below panics.
        let container = Container { id };

        if let Some(content) = htpasswd {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, content).expect("write htpasswd");
            docker_ok(&[
                "cp".to_string(),
                file.display().to_string(),
                format!("{}:{HTPASSWD_PATH}", container.id),
            ]);
        }
        docker_ok(&["start".to_string(), container.id.clone()]);

        let ports = docker_ok(&["port".to_string(), container.id.clone(), "5000/tcp".into()]);
        let host = ports
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no 127.0.0.1 port mapping for 5000/tcp in {ports:?}"))
            .to_string();

        let reg = TestRegistry {
            container,
            host,
            credentials: None,
        };
        reg.wait_ready();
        reg
    }

    /// Poll `GET /v2/` until the registry answers (200, or 401 when auth is on).
    fn wait_ready(&self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
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
            if !self.container.running() {
                panic!(
                    "registry container {} ({}) exited before answering; log:\n{}",
                    self.container.id,
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
            .field("container", &self.container.id)
            .finish()
    }
}

/// Owns a container id; removes the container and its anonymous volume on drop.
struct Container {
    id: String,
}

impl Container {
    fn running(&self) -> bool {
        docker(&["inspect", "-f", "{{.State.Running}}", &self.id])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
            .unwrap_or(false)
    }

    fn logs(&self) -> String {
        match docker(&["logs", &self.id]) {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("(docker logs failed: {e})"),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.id]);
    }
}

fn docker<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::io::Result<Output> {
    Command::new("docker").args(args).output()
}

/// Run docker, panic with its stderr unless it succeeds, return its stdout.
fn docker_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let out = docker(args).unwrap_or_else(|e| {
        panic!("cannot run `docker` ({e}); the integration tests need Docker: run ci/test")
    });
    if !out.status.success() {
        panic!(
            "docker {args:?} failed ({}): {}\n(hint: ci/test starts Docker and provides the \
             registry image; or set {IMAGE_ENV})",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_present(image: &str) -> bool {
    docker(&["image", "inspect", image])
        .map(|o| o.status.success())
        .unwrap_or(false)
}
