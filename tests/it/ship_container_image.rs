//! The container image built from this repository's Dockerfile migrates images the way
//! both CI systems run it: as a GitHub container action (workspace at
//! /github/workspace, INPUT_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files) and
//! as a GitLab job (`entrypoint: [""]` plus a `sh -c` script writing JUnit).
//!
//! The image is `$IMAGE_MIGRATOR_IMAGE`; when unset, `ci/image` builds `image-migrator:dev`
//! first (reusing Docker's cache), so this test never skips.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};

const SECRET_PASSWORD: &str = "Pa55-Zebra-Quokka-771";

fn image() -> &'static str {
    support::image_under_test()
}

/// Every input of action.yml with its default, as the runner sets them.
fn action_input_defaults() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let action: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let inputs = action["inputs"].as_mapping().expect("inputs");
    inputs
        .iter()
        .map(|(name, spec)| {
            let name = name.as_str().unwrap().to_string();
            let default = spec["default"].as_str().unwrap_or_default().to_string();
            (name, default)
        })
        .collect()
}

fn action_entrypoint() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let action: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    // The runner starts the published image (tests/it/ship_release.rs); the image under
    // test here is the one built from this checkout, with the same entrypoint.
    assert_eq!(action["runs"]["using"].as_str(), Some("docker"));
    action["runs"]["entrypoint"].as_str().unwrap().to_string()
}

struct Scene {
    source: TestRegistry,
    target: TestRegistry,
    workspace: tempfile::TempDir,
    digest: String,
}

/// A password-protected source with one image, an open target, and a workspace holding
/// auth.json and images.json (one good rule, one whose source does not exist).
fn scene() -> Scene {
    let source = TestRegistry::start_with_htpasswd("ci-user", SECRET_PASSWORD);
    let target = TestRegistry::start();
    let pushed = Seeder::for_registry(&source).push_image(
        "apps/web",
        "1.0",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![deterministic_layer(41, 20_000)],
        ),
    );
    let workspace = tempfile::tempdir().unwrap();
    let auth = format!(
        r#"{{
  "{src}": {{ "username": "${{SRC_USER}}", "password": "${{SRC_PASSWORD}}", "insecure": true }},
  "{dst}": {{ "insecure": true }}
}}
"#,
        src = source.host,
        dst = target.host
    );
    std::fs::write(workspace.path().join("auth.json"), auth).unwrap();
    let images = format!(
        r#"{{
  "{src}/apps/web:1.0": "{dst}/mirror/web",
  "{src}/apps/missing:1.0": "{dst}/mirror/missing"
}}
"#,
        src = source.host,
        dst = target.host
    );
    std::fs::write(workspace.path().join("images.json"), images).unwrap();
    Scene {
        source,
        target,
        workspace,
        digest: pushed.manifest_digest,
    }
}

/// `docker run` the way the GitHub runner runs a container action.
fn run_as_github_action(workspace: &Path, overrides: &[(&str, &str)]) -> Output {
    let commands = workspace.join("_file_commands");
    std::fs::create_dir_all(&commands).unwrap();
    let mut docker = Command::new("docker");
    docker.args(["run", "--rm", "--network", "host"]);
    docker.args(["--workdir", "/github/workspace"]);
    docker.args(["-v", &format!("{}:/github/workspace", workspace.display())]);
    docker.args([
        "-v",
        &format!("{}:/github/file_commands", commands.display()),
    ]);
    docker.args(["-e", "GITHUB_ACTIONS=true", "-e", "CI=true"]);
    docker.args(["-e", "GITHUB_OUTPUT=/github/file_commands/output"]);
    docker.args(["-e", "GITHUB_STEP_SUMMARY=/github/file_commands/summary"]);
    docker.args(["-e", "GITHUB_WORKSPACE=/github/workspace"]);
    docker.args([
        "-e",
        "SRC_USER=ci-user",
        "-e",
        &format!("SRC_PASSWORD={SECRET_PASSWORD}"),
    ]);
    for (name, default) in action_input_defaults() {
        let value = overrides
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(default, |(_, v)| v.to_string());
        docker.args(["-e", &format!("INPUT_{}={value}", name.to_uppercase())]);
    }
    docker.args(["--entrypoint", &action_entrypoint(), image()]);
    docker.output().expect("docker run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn image_reports_its_version() {
    let out = Command::new("docker")
        .args(["run", "--rm", image(), "--version"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("image-migrator "),
        "{}",
        text(&out.stdout)
    );
    // GitLab needs a shell in the image.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "",
            image(),
            "sh",
            "-c",
            "echo shell-ok",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "shell-ok");
}

/// This checkout's commit, the one ci/image passes as REVISION.
fn checkout_commit() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "git rev-parse HEAD: {out:?}");
    text(&out.stdout).trim().to_string()
}

#[test]
fn image_carries_oci_labels_and_names_its_commit() {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            image(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let labels: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let label = |key: &str| {
        labels[format!("org.opencontainers.image.{key}")]
            .as_str()
            .unwrap_or_else(|| panic!("label {key} missing: {labels}"))
            .to_string()
    };
    let commit = checkout_commit();
    assert_eq!(label("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        label("revision"),
        commit,
        "{} was built from another commit: rebuild it with ci/image",
        image()
    );
    assert_eq!(label("licenses"), env!("CARGO_PKG_LICENSE"));
    let source = std::env::var("IMAGE_MIGRATOR_SOURCE")
        .unwrap_or_else(|_| "https://github.com/image-migrator/image-migrator".into());
    assert_eq!(label("source"), source);

    // The binary inside names the same commit (passed in: the build context has no .git).
    let out = Command::new("docker")
        .args(["run", "--rm", image(), "--version"])
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        format!(
            "image-migrator {} (commit {})\n",
            env!("CARGO_PKG_VERSION"),
            &commit[..12]
        )
    );
}

#[test]
fn github_action_copies_reports_and_summarises() {
    let scene = scene();
    let ws = scene.workspace.path();
    let out = run_as_github_action(ws, &[("proc", "2"), ("junit", "junit.xml")]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // One image failed (missing source), fail_on_error defaults to true.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The secret is masked before anything else is logged, and appears nowhere else.
    let masks: Vec<&str> = stdout
        .lines()
        .take_while(|l| l.starts_with("::add-mask::"))
        .collect();
    assert!(
        masks.contains(&format!("::add-mask::{SECRET_PASSWORD}").as_str()),
        "the password must be masked before any other output: {stdout}"
    );
    assert_eq!(stdout.matches(SECRET_PASSWORD).count(), 1, "{stdout}");
    assert!(!stderr.contains(SECRET_PASSWORD));
    assert!(stdout.contains("::group::"), "{stdout}");
    assert!(stdout.contains("::endgroup::"), "{stdout}");
    assert!(
        stdout.contains("::error title=") && stdout.contains("apps/missing"),
        "failed image annotated: {stdout}"
    );

    // The copy is exact.
    let copied = Seeder::for_registry(&scene.target).manifest_digest("mirror/web", "1.0");
    assert_eq!(copied.as_deref(), Some(scene.digest.as_str()));

    // Outputs.
    let outputs = std::fs::read_to_string(ws.join("_file_commands/output")).unwrap();
    for line in [
        "report=image-migrator-report.json",
        "copied=1",
        "unchanged=0",
        "failed=1",
        "total=2",
    ] {
        assert!(
            outputs.lines().any(|l| l == line),
            "{line} missing in:\n{outputs}"
        );
    }
    // action.yml declares every output the tool writes.
    let action =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap();
    let declared: Vec<&str> = action
        .split("\noutputs:\n")
        .nth(1)
        .expect("action.yml has outputs")
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.trim().strip_suffix(':'))
        .collect();
    for line in outputs.lines() {
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        assert!(
            declared.contains(&key),
            "output {key} is written but not declared in action.yml ({declared:?})"
        );
    }
    // The job summary: a table with both images.
    let summary = std::fs::read_to_string(ws.join("_file_commands/summary")).unwrap();
    assert!(summary.contains("## image-migrator"), "{summary}");
    assert!(
        summary.contains("| ✅ copied |") && summary.contains("/mirror/web:1.0"),
        "{summary}"
    );
    assert!(
        summary.contains("| ❌ failed |") && summary.contains("apps/missing"),
        "{summary}"
    );
    assert!(!summary.contains(SECRET_PASSWORD));
    // The report and JUnit file land in the workspace.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join("image-migrator-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["summary"]["copied"], 1);
    assert_eq!(report["summary"]["failed"], 1);
    assert!(ws.join("junit.xml").exists());
    let _ = &scene.source;
}

#[test]
fn github_action_fail_on_error_false_lets_the_step_pass() {
    let scene = scene();
    let out = run_as_github_action(
        scene.workspace.path(),
        &[
            ("fail_on_error", "false"),
            ("referrers", "true"),
            ("request_timeout", "2m"),
            ("min_speed", "2048"),
            ("min_speed_window", "30s"),
            ("limit_rate", "20M"),
            ("chunk_size", "16M"),
            ("prune", "true"),
            ("prune_protect", "^release-\n^keep$"),
            ("max_prune", "7"),
            ("immutable_tags", "^v[0-9]"),
            ("fail_on_drift", "true"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outputs =
        std::fs::read_to_string(scene.workspace.path().join("_file_commands/output")).unwrap();
    assert!(outputs.contains("failed=1"), "{outputs}");
    // The `referrers` input reaches the tool.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scene.workspace.path().join("image-migrator-report.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["settings"]["referrers"], true, "{report:#}");
    // So do the time bounds.
    assert_eq!(report["settings"]["request_timeout_seconds"], 120.0);
    assert_eq!(report["settings"]["min_speed_bytes_per_second"], 2048);
    assert_eq!(report["settings"]["min_speed_window_seconds"], 30.0);
    // And the link settings.
    assert_eq!(report["settings"]["limit_rate_bytes_per_second"], 20 << 20);
    assert_eq!(report["settings"]["chunk_size_bytes"], 16 << 20);
    // And the mirror's: one --prune-protect per line of the input.
    assert_eq!(report["settings"]["prune"], true);
    assert_eq!(
        report["settings"]["prune_protect"],
        serde_json::json!(["^release-", "^keep$"])
    );
    assert_eq!(report["settings"]["max_prune"], 7);
    assert_eq!(report["settings"]["immutable_tags"], "^v[0-9]");
    assert_eq!(report["settings"]["fail_on_drift"], true);
}

#[test]
fn github_action_annotates_configuration_errors_at_their_line() {
    let scene = scene();
    let ws = scene.workspace.path();
    std::fs::write(
        ws.join("images.json"),
        // A bare registry as the target (`nginx` alone would be Docker Hub's nginx).
        "{\n  \"docker.io/library/nginx:1\": \"quay.io\"\n}\n",
    )
    .unwrap();
    let out = run_as_github_action(ws, &[("fail_on_error", "false")]);
    // Configuration errors fail the step whatever fail_on_error says.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("::error file=images.json,line=2,"),
        "annotation with file and line expected: {stdout}"
    );
    assert!(
        Seeder::for_registry(&scene.target)
            .tags("mirror/web")
            .is_empty()
    );
}

#[test]
fn gitlab_job_script_writes_junit() {
    let scene = scene();
    let ws = scene.workspace.path();
    let script = "image-migrator validate && image-migrator sync --report image-migrator-report.json --junit junit.xml; echo \"exit=$?\"";
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "host", "--entrypoint", ""])
        .args(["-v", &format!("{}:/builds/group/project", ws.display())])
        .args([
            "-w",
            "/builds/group/project",
            "-e",
            "GITLAB_CI=true",
            "-e",
            "CI=true",
        ])
        .args([
            "-e",
            "SRC_USER=ci-user",
            "-e",
            &format!("SRC_PASSWORD={SECRET_PASSWORD}"),
        ])
        .args([image(), "sh", "-c", script])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("exit=1"),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let junit = std::fs::read_to_string(ws.join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"2\""), "{junit}");
    assert!(junit.contains("failures=\"1\""), "{junit}");
    assert!(
        junit.contains(&format!(
            "{}/apps/web:1.0 -&gt; {}/mirror/web:1.0",
            scene.source.host, scene.target.host
        )) || junit.contains(&format!(
            "{}/apps/web:1.0 -> {}/mirror/web:1.0",
            scene.source.host, scene.target.host
        )),
        "{junit}"
    );
    assert!(junit.contains("<failure"), "{junit}");
    assert!(junit.contains("apps/missing"), "{junit}");
    assert!(!junit.contains(SECRET_PASSWORD));
    assert!(!stdout.contains(SECRET_PASSWORD) && !text(&out.stderr).contains(SECRET_PASSWORD));
    let copied = Seeder::for_registry(&scene.target).manifest_digest("mirror/web", "1.0");
    assert_eq!(copied.as_deref(), Some(scene.digest.as_str()));
}

#[test]
fn github_action_reads_an_image_syncer_config_file() {
    let scene = scene();
    let ws = scene.workspace.path();
    let auth = std::fs::read_to_string(ws.join("auth.json")).unwrap();
    let images = std::fs::read_to_string(ws.join("images.json")).unwrap();
    // auth.json and images.json stay in the workspace, untouched: the action must not
    // pass them along with --config (that would be a usage error).
    std::fs::write(
        ws.join("config.json"),
        format!(
            "{{\"auth\": {auth}, \"images\": {}}}",
            images.replace("apps/missing", "apps/web")
        ),
    )
    .unwrap();
    let out = run_as_github_action(ws, &[("config_file", "config.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join("image-migrator-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["settings"]["images_file"], "config.json");
    assert_eq!(
        Seeder::for_registry(&scene.target)
            .manifest_digest("mirror/web", "1.0")
            .as_deref(),
        Some(scene.digest.as_str())
    );
}
