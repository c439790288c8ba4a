//! `ci/demo` is what the README tells a newcomer to run first: it must work, and it must
//! leave no registry container or sample image behind, whether it succeeds or fails
//! half-way. Runs the real script with this build's binary (no release build).

use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs ci/demo with `bin` as the image-migrator binary and a label value of its own.
fn run_demo(bin: &str, id: &str) -> Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/demo"))
        .env("IMAGE_MIGRATOR_BIN", bin)
        .env("IMAGE_MIGRATOR_DEMO_ID", id)
        .output()
        .expect("run ci/demo")
}

/// The container ids the demo logged ("... registry: host:port (container ID)").
fn logged_containers(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split("(container ").nth(1))
        .map(|rest| rest.trim_end_matches(')').to_string())
        .collect()
}

fn container_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", id])
        .output()
        .unwrap()
        .status
        .success()
}

fn labelled_containers(id: &str) -> String {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=image-migrator.demo={id}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The sample image tags the demo built ("<source host>/demo/...").
fn demo_images(source_host: &str) -> String {
    let out = Command::new("docker")
        .args(["images", "-q", &format!("{source_host}/demo/*")])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

/// The work directory the demo logged when it started.
fn work_dir(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("[ci] work directory: "))
        .map(str::to_string)
}

fn source_host(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("[ci] source registry: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("source registry logged")
        .to_string()
}

#[test]
fn demo_migrates_and_removes_its_containers() {
    let id = format!("test-ok-{}", std::process::id());
    let out = run_demo(env!("CARGO_BIN_EXE_image-migrator"), &id);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The demo did its job: four digests compared equal, nothing DIFFERENT.
    assert_eq!(stdout.matches("\nsame  ").count(), 4, "{stdout}");
    assert!(!stdout.contains("DIFFERENT"), "{stdout}");

    let containers = logged_containers(&stderr);
    assert_eq!(containers.len(), 2, "two registries expected: {stderr}");
    for c in &containers {
        assert!(!container_exists(c), "container {c} survived the demo");
    }
    assert_eq!(
        labelled_containers(&id),
        "",
        "containers labelled {id} left"
    );
    assert_eq!(demo_images(&source_host(&stderr)), "", "sample images left");

    let work = work_dir(&stderr).expect("work directory logged");
    assert!(
        stdout.ends_with(&format!("files and reports are in {work}\n")),
        "{stdout}"
    );
    assert!(std::path::Path::new(&work).join("report.json").exists());
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn demo_that_fails_half_way_still_removes_its_containers() {
    // A binary that fails: the demo stops at `validate`, after both registries started
    // and the sample images were pushed.
    let id = format!("test-fail-{}", std::process::id());
    let out = run_demo("/bin/false", &id);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let containers = logged_containers(&stderr);
    assert_eq!(containers.len(), 2, "two registries expected: {stderr}");
    for c in &containers {
        assert!(
            !container_exists(c),
            "container {c} survived the failed demo"
        );
    }
    assert_eq!(labelled_containers(&id), "");
    assert_eq!(demo_images(&source_host(&stderr)), "", "sample images left");
    std::fs::remove_dir_all(work_dir(&stderr).expect("work directory logged")).unwrap();
}
