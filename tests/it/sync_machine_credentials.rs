//! A CI job where `docker login` (or a credential helper, or GitLab's DOCKER_AUTH_CONFIG)
//! already holds the credentials: no username or password in auth.json at all. Real
//! htpasswd registries; the helper is a real script on PATH that logs its calls.

use crate::support;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

const SRC_PW: &str = "src-Machine-Pa55";
const DST_PW: &str = "dst-Machine-Pa55";

fn image(seed: u64) -> ImageSpec {
    ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, 2_000)],
    )
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A Docker config directory holding `config`.
fn docker_config(config: serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

/// `docker-credential-rotating` in a fresh directory: logs each call (`get <server>`),
/// answers `reader` with the password in `password-<n>` for its n-th call (else the
/// right one).
fn rotating_helper() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"#!/bin/sh
dir=$(dirname "$0")
read -r server || true
echo "get $server" >> "$dir/calls.log"
n=$(wc -l < "$dir/calls.log")
pw={SRC_PW}
[ -f "$dir/password-$n" ] && pw=$(cat "$dir/password-$n")
printf '{{"ServerURL":"%s","Username":"reader","Secret":"%s"}}' "$server" "$pw"
"#
    );
    let path = dir.path().join("docker-credential-rotating");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn calls(helper: &Path) -> Vec<String> {
    std::fs::read_to_string(helper.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn path_with(dir: &Path) -> String {
    let mut paths: Vec<PathBuf> = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

struct Registries {
    src: TestRegistry,
    dst: TestRegistry,
    target: Seeder,
}

fn registries(tags: &[&str]) -> Registries {
    let src = TestRegistry::start_with_htpasswd("reader", SRC_PW);
    let dst = TestRegistry::start_with_htpasswd("writer", DST_PW);
    let source = Seeder::for_registry(&src);
    for (i, tag) in tags.iter().enumerate() {
        source.push_image("private/app", tag, &image(40 + i as u64));
    }
    let target = Seeder::for_registry(&dst);
    Registries { src, dst, target }
}

impl Registries {
    /// auth.json says only that both are plain HTTP: no credentials in it.
    fn run(&self, target_repo: &str) -> SyncRun {
        SyncRun::new()
            .insecure(&self.src.host)
            .insecure(&self.dst.host)
            .rule(
                &format!("{}/private/app", self.src.host),
                &format!("{}/{target_repo}", self.dst.host),
            )
    }

    fn assert_no_secret(&self, run: &support::sync::RunResult) {
        let report = run.file(support::sync::REPORT);
        for secret in [SRC_PW, DST_PW, &b64(&format!("reader:{SRC_PW}"))] {
            assert!(!report.contains(secret), "the report shows a secret");
            assert!(!run.stderr.contains(secret), "the log shows a secret");
            let output: Vec<&str> = run
                .stdout
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .collect();
            assert!(
                !output.join("\n").contains(secret),
                "the output shows a secret"
            );
        }
    }
}

/// The secrets the run asked GitHub Actions to mask.
fn masked(run: &support::sync::RunResult) -> Vec<&str> {
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .collect()
}

#[test]
fn docker_config_auths_and_docker_auth_config_need_no_auth_json_credentials() {
    let r = registries(&["v1"]);
    let config = docker_config(json!({
        "auths": { format!("http://{}/v2/", r.src.host): { "auth": b64(&format!("reader:{SRC_PW}")) } }
    }));
    let gitlab = json!({
        "auths": { r.dst.host.clone(): { "username": "writer", "password": DST_PW } }
    });
    let setup = r
        .run("mirror/app")
        .env("DOCKER_CONFIG", &config.path().display().to_string())
        .env("DOCKER_AUTH_CONFIG", &gitlab.to_string())
        .env("GITHUB_ACTIONS", "true");
    let run = setup.run();
    run.assert_all("copied");
    assert_eq!(r.target.tags("mirror/app"), ["v1"]);
    r.assert_no_secret(&run);
    for secret in [SRC_PW, DST_PW] {
        assert!(
            masked(&run).contains(&secret),
            "{secret} not masked: {}",
            run.stdout
        );
    }

    // --no-docker-config: anonymous again, and the registry says no.
    let run = setup.arg_clone("--no-docker-config").run();
    run.assert_code(1);
    let result = run.result_for(&format!("{}/mirror/app", r.dst.host));
    assert_eq!(result["error"]["kind"], "auth", "{}", run.pretty());

    // auth.json's own credentials win over the Docker config's.
    let run = r
        .run("mirror/precedence")
        .auth(
            &r.src.host,
            json!({ "username": "reader", "password": "not-the-password", "insecure": true }),
        )
        .env("DOCKER_CONFIG", &config.path().display().to_string())
        .env("DOCKER_AUTH_CONFIG", &gitlab.to_string())
        .run();
    run.assert_code(1);
    let result = run.result_for(&format!("{}/mirror/precedence", r.dst.host));
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("auth.json entry"), "{message}");
    assert!(!run.stderr.contains("not-the-password"));
}

#[test]
fn a_credential_helper_runs_once_per_registry_and_once_more_after_a_refusal() {
    let r = registries(&["v1", "v2", "v3"]);
    let helper = rotating_helper();
    let config = docker_config(json!({
        "auths": { r.dst.host.clone(): { "username": "writer", "password": DST_PW } },
        "credHelpers": { r.src.host.clone(): "rotating" }
    }));
    let path = path_with(helper.path());
    let config_dir = config.path().display().to_string();

    // Three images from one registry, in parallel: one call.
    let run = r
        .run("mirror/app")
        .env("DOCKER_CONFIG", &config_dir)
        .env("PATH", &path)
        .env("GITHUB_ACTIONS", "true")
        .run();
    run.assert_all("copied");
    assert_eq!(run.count("total"), 3);
    // What the helper said is masked before it is used.
    assert!(masked(&run).contains(&SRC_PW), "{}", run.stdout);
    assert_eq!(calls(helper.path()), [format!("get {}", r.src.host)]);
    r.assert_no_secret(&run);

    // The first answer is refused (an expired token): the helper is asked once more and
    // its new answer works. Never a third time.
    std::fs::remove_file(helper.path().join("calls.log")).unwrap();
    std::fs::write(helper.path().join("password-1"), "expired-Secret-1").unwrap();
    let run = r
        .run("mirror/rotated")
        .env("DOCKER_CONFIG", &config_dir)
        .env("PATH", &path)
        .run();
    run.assert_all("copied");
    assert_eq!(calls(helper.path()).len(), 2, "{:?}", calls(helper.path()));
    assert!(!run.stderr.contains("expired-Secret-1"));
    assert_eq!(r.target.tags("mirror/rotated"), ["v1", "v2", "v3"]);
}

#[test]
fn a_missing_helper_fails_only_its_registry_with_a_clear_error() {
    let r = registries(&["v1"]);
    // Something on the target registry to copy from, reachable with the Docker config.
    r.target.push_image("other/app", "v1", &image(60));
    let config = docker_config(json!({
        "auths": { r.dst.host.clone(): { "username": "writer", "password": DST_PW } },
        "credHelpers": { r.src.host.clone(): "not-installed" }
    }));
    let run = r
        .run("mirror/app")
        .rule(
            &format!("{}/other/app:v1", r.dst.host),
            &format!("{}/mirror/other:v1", r.dst.host),
        )
        .env("DOCKER_CONFIG", &config.path().display().to_string())
        .run();
    run.assert_code(1);
    let failed = run.result_for(&format!("{}/mirror/app", r.dst.host));
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "auth", "{}", run.pretty());
    let message = failed["error"]["message"].as_str().unwrap();
    for needle in ["docker-credential-not-installed", &r.src.host, "PATH"] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
    let copied = run.result_for(&format!("{}/mirror/other:v1", r.dst.host));
    assert_eq!(copied["status"], "copied", "{}", run.pretty());
}
