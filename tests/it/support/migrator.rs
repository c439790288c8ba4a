//! Running the real `image-migrator` binary in a scratch directory holding auth.json and
//! images.json, and reading back what it left (report, JUnit file, output).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// The binary with a clean environment (see [`super::CLEARED_ENV`]).
pub fn command() -> assert_cmd::Command {
    super::migrator()
}

/// The same for a process the test must signal or kill (std, not assert_cmd).
pub fn std_command() -> std::process::Command {
    super::migrator_std()
}

/// A scratch directory with the two files.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// `auth` and `images` as JSON values (images: a map of source → target).
    pub fn new(auth: &Value, images: &Value) -> Workdir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("auth.json"), auth.to_string()).unwrap();
        std::fs::write(dir.path().join("images.json"), images.to_string()).unwrap();
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn report_path(&self) -> PathBuf {
        self.path().join("report.json")
    }

    pub fn junit_path(&self) -> PathBuf {
        self.path().join("junit.xml")
    }

    /// `image-migrator sync --report report.json --junit junit.xml` in this directory.
    pub fn sync(&self) -> assert_cmd::Command {
        let mut cmd = command();
        cmd.current_dir(self.path())
            .args(["sync", "--report"])
            .arg(self.report_path())
            .arg("--junit")
            .arg(self.junit_path());
        cmd
    }

    /// The same as a std command (for signals and kill -9).
    pub fn sync_std(&self) -> std::process::Command {
        let mut cmd = std_command();
        cmd.current_dir(self.path())
            .args(["sync", "--report"])
            .arg(self.report_path())
            .arg("--junit")
            .arg(self.junit_path());
        cmd
    }

    /// The report, checked against the published schema and for a summary that adds up.
    pub fn report(&self) -> Value {
        let text = std::fs::read_to_string(self.report_path())
            .unwrap_or_else(|e| panic!("no report at {}: {e}", self.report_path().display()));
        let report = serde_json::from_str(&text).unwrap();
        super::sync::check_report(&report);
        report
    }

    pub fn report_text(&self) -> String {
        std::fs::read_to_string(self.report_path()).unwrap_or_default()
    }

    pub fn junit_text(&self) -> String {
        std::fs::read_to_string(self.junit_path()).unwrap_or_default()
    }
}

/// auth.json marking each host `insecure` (plain HTTP test registries and proxies).
pub fn insecure(hosts: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for host in hosts {
        map.insert(host.to_string(), serde_json::json!({ "insecure": true }));
    }
    Value::Object(map)
}

/// The report's result whose source is `source` (`registry/repo:tag`).
pub fn result_for<'a>(report: &'a Value, source: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == source)
        .unwrap_or_else(|| panic!("no result for {source} in {report:#}"))
}

/// stdout + stderr as text, for messages and assertions.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Pushes one small two-layer image per tag into `repo` (layers differ per tag and per
/// `seed`, ~`layer_size` bytes each) and returns them in tag order.
pub fn seed_images(
    seeder: &super::seed::Seeder,
    repo: &str,
    tags: &[&str],
    seed: u64,
    layer_size: usize,
) -> Vec<super::seed::Pushed> {
    use super::seed::{ImageSpec, Media, deterministic_layer};
    tags.iter()
        .enumerate()
        .map(|(i, tag)| {
            let base = seed * 1000 + 10 * i as u64;
            let spec = ImageSpec::new(
                Media::Oci,
                "linux",
                "amd64",
                vec![
                    deterministic_layer(base, layer_size),
                    deterministic_layer(base + 1, layer_size / 4 + 1),
                ],
            );
            seeder.push_image(repo, tag, &spec)
        })
        .collect()
}

/// images.json mapping `src_host/src_repo:tag` → `dst_host/dst_repo:tag` for each tag.
pub fn tag_rules(src: &str, src_repo: &str, dst: &str, dst_repo: &str, tags: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for tag in tags {
        map.insert(
            format!("{src}/{src_repo}:{tag}"),
            Value::String(format!("{dst}/{dst_repo}:{tag}")),
        );
    }
    Value::Object(map)
}

/// Asserts that every tag of `repo` points at a manifest whose blobs (and, for an index,
/// child manifests and their blobs) all exist: no tag points at missing content.
pub fn assert_tags_complete(seeder: &super::seed::Seeder, repo: &str) -> usize {
    let tags = seeder.tags(repo);
    for tag in &tags {
        assert_manifest_complete(seeder, repo, tag);
    }
    tags.len()
}

fn assert_manifest_complete(seeder: &super::seed::Seeder, repo: &str, reference: &str) {
    let (_, bytes) = seeder
        .get_manifest(repo, reference)
        .unwrap_or_else(|| panic!("{repo}:{reference} is tagged but its manifest is missing"));
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    if let Some(children) = manifest["manifests"].as_array() {
        for child in children {
            assert_manifest_complete(seeder, repo, child["digest"].as_str().unwrap());
        }
        return;
    }
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().unwrap() {
        blobs.push(layer["digest"].as_str().unwrap().to_string());
    }
    for blob in blobs {
        assert!(
            seeder.blob_exists(repo, &blob),
            "{repo}:{reference} references blob {blob}, which is missing"
        );
    }
}
