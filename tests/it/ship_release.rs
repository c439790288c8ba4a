//! The action starts from the image the release pipeline publishes, not from a compile:
//! action.yml names `ghcr.io/image-migrator/image-migrator:<this version>`, and
//! `ci/release-version` (run to prepare a release, and again by the release workflow to
//! refuse an unprepared tag) rewrites that reference together with the crate version.
//! Its tests run the real script on copies of the real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PUBLISHED: &str = "ghcr.io/image-migrator/image-migrator";

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn action(text: &str) -> serde_norway::Value {
    serde_norway::from_str(text).expect("action.yml is YAML")
}

#[test]
fn action_starts_from_the_published_image_of_this_version() {
    let action = action(&std::fs::read_to_string(repo_file("action.yml")).unwrap());
    assert_eq!(action["runs"]["using"].as_str(), Some("docker"));
    assert_eq!(
        action["runs"]["image"].as_str(),
        Some(format!("docker://{PUBLISHED}:{}", env!("CARGO_PKG_VERSION")).as_str()),
        "run `ci/release-version {}`",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        action["runs"]["entrypoint"].as_str(),
        Some("/usr/local/bin/image-migrator-action")
    );
}

#[test]
fn release_workflow_publishes_the_image_the_action_names() {
    let workflow = std::fs::read_to_string(repo_file(".github/workflows/release.yml")).unwrap();
    assert!(
        workflow.contains(&format!("IMAGE: {PUBLISHED}")),
        "{workflow}"
    );
    assert!(workflow.contains("ci/release-version"), "{workflow}");
}

/// A copy of the files ci/release-version edits, with the script itself.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ci")).unwrap();
    for name in [
        "ci/release-version",
        "action.yml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        std::fs::copy(repo_file(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn release_version(dir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(dir.join("ci/release-version"))
        .args(args)
        .output()
        .unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The lines of `after` that differ from `before` (same line count expected).
fn changed_lines(before: &str, after: &str) -> Vec<(String, String)> {
    assert_eq!(before.lines().count(), after.lines().count());
    before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .map(|(b, a)| (b.to_string(), a.to_string()))
        .collect()
}

#[test]
fn release_version_bumps_the_action_image_and_the_crate_version() {
    let dir = checkout();
    let (action_before, toml_before, lock_before) = (
        read(dir.path(), "action.yml"),
        read(dir.path(), "Cargo.toml"),
        read(dir.path(), "Cargo.lock"),
    );
    let out = release_version(dir.path(), &["v7.8.9"]);
    assert!(out.status.success(), "{out:?}");

    let action_after = read(dir.path(), "action.yml");
    assert_eq!(
        action(&action_after)["runs"]["image"].as_str(),
        Some(format!("docker://{PUBLISHED}:7.8.9").as_str())
    );
    assert_eq!(changed_lines(&action_before, &action_after).len(), 1);
    let old = env!("CARGO_PKG_VERSION");
    assert_eq!(
        changed_lines(&toml_before, &read(dir.path(), "Cargo.toml")),
        vec![(
            format!("version = \"{old}\""),
            "version = \"7.8.9\"".to_string()
        )]
    );
    let lock_changes = changed_lines(&lock_before, &read(dir.path(), "Cargo.lock"));
    assert_eq!(
        lock_changes,
        vec![(
            format!("version = \"{old}\""),
            "version = \"7.8.9\"".to_string()
        )]
    );
    let lock = read(dir.path(), "Cargo.lock");
    assert!(lock.contains("name = \"image-migrator\"\nversion = \"7.8.9\"\n"));

    // Running it again changes nothing; a fork's own image repository is accepted.
    let out = release_version(dir.path(), &["7.8.9"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(dir.path(), "action.yml"), action_after);
    let out = release_version(dir.path(), &["7.8.10", "ghcr.io/my-org/image-migrator"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        action(&read(dir.path(), "action.yml"))["runs"]["image"].as_str(),
        Some("docker://ghcr.io/my-org/image-migrator:7.8.10")
    );
}

#[test]
fn release_version_dockerfile_makes_the_action_build_from_source() {
    let dir = checkout();
    let out = release_version(dir.path(), &["--dockerfile"]);
    assert!(out.status.success(), "{out:?}");
    let after = action(&read(dir.path(), "action.yml"));
    assert_eq!(after["runs"]["image"].as_str(), Some("Dockerfile"));
    assert_eq!(
        read(dir.path(), "Cargo.toml"),
        read(Path::new(env!("CARGO_MANIFEST_DIR")), "Cargo.toml")
    );
}

#[test]
fn release_version_refuses_bad_arguments_and_changes_nothing() {
    let dir = checkout();
    let before = (
        read(dir.path(), "action.yml"),
        read(dir.path(), "Cargo.toml"),
    );
    for (args, message) in [
        (vec!["1.2"], "version '1.2' is not X.Y.Z"),
        (vec!["latest"], "version 'latest' is not X.Y.Z"),
        (
            vec!["1.2.3", "ghcr.io/My-Org/x"],
            "image 'ghcr.io/My-Org/x' is not a lowercase repository",
        ),
        (
            vec!["1.2.3", "ghcr.io/o/x:tag"],
            "is not a lowercase repository",
        ),
        (vec![], "usage: ci/release-version"),
    ] {
        let out = release_version(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(
        (
            read(dir.path(), "action.yml"),
            read(dir.path(), "Cargo.toml")
        ),
        before
    );
}
