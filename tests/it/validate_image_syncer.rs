//! A user arrives with files written for image-syncer: its example auth/images files in
//! JSON and YAML, its older single `--config` file, and the rules of its CI. The fixtures
//! in tests/fixtures/image-syncer/ have the same shapes (our own names and values); each is
//! read unchanged and resolves to the rules image-syncer means.

use crate::support;

use std::path::PathBuf;

use serde_json::Value;
use support::project::{Project, rules_of, triple};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/image-syncer")
        .join(name)
        .display()
        .to_string()
}

fn validate(args: &[&str]) -> Vec<Value> {
    let project = Project::new();
    let mut cmd = project.validate(&["--format", "json"]);
    cmd.env("ALIYUN_USER", "aliyun-user")
        .env("ALIYUN_PASS", "aliyun-pass")
        .args(args);
    rules_of(&mut cmd)
}

fn t(source: &str, target: &str, tags: &str) -> (String, String, String) {
    (source.into(), target.into(), tags.into())
}

const FLANNEL: &str = "quay.io/coreos/flannel";
const MIRROR: &str = "registry.cn-hangzhou.aliyuncs.com/mirror/flannel";

#[test]
fn the_example_images_files_give_the_same_rules_in_json_and_yaml() {
    let digest = "sha256:0d2ef9e979fc063645dcbed51374233c6bcf4ab49308c0478702565e96b9bc9e";
    let yaml = validate(&[
        "--auth",
        &fixture("auth.yaml"),
        "--images",
        &fixture("images.yaml"),
    ]);
    let expected = vec![
        t(FLANNEL, MIRROR, "all"),
        t(FLANNEL, &format!("{MIRROR}:v0.15.1"), "v0.15.1"),
        t(FLANNEL, &format!("{MIRROR}:v0.15.1"), "v0.15.1"),
        t(FLANNEL, &format!("{MIRROR}:v0.16.0"), "v0.16.0"),
        t(FLANNEL, MIRROR, digest),
        t(FLANNEL, &format!("{MIRROR}-a:v0.17.0"), "v0.17.0"),
        t(FLANNEL, &format!("{MIRROR}-b:v0.17.0"), "v0.17.0"),
        t(FLANNEL, MIRROR, "selected"),
    ];
    assert_eq!(yaml.iter().map(triple).collect::<Vec<_>>(), expected);
    let lines: Vec<u64> = yaml.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 5, 5, 6, 8, 9, 10]);
    assert_eq!(
        yaml[7]["filters"],
        serde_json::json!({"include": ["^v0\\.1[5-9]\\."]})
    );
    // quay.io/coreos (the longer key) wins over quay.io; ${VAR} and $VAR are expanded.
    assert_eq!(yaml[0]["source_auth"], "quay.io/coreos");
    assert_eq!(yaml[0]["target_auth"], "registry.cn-hangzhou.aliyuncs.com");

    let json = validate(&[
        "--auth",
        &fixture("auth.json"),
        "--images",
        &fixture("images.json"),
    ]);
    let without_digest: Vec<_> = expected
        .iter()
        .filter(|rule| rule.2 != digest)
        .cloned()
        .collect();
    assert_eq!(json.iter().map(triple).collect::<Vec<_>>(), without_digest);
}

#[test]
fn the_single_config_file_holds_auth_and_images() {
    for file in ["config.yaml", "config.json"] {
        let rules = validate(&["--config", &fixture(file)]);
        assert_eq!(
            rules.iter().map(triple).collect::<Vec<_>>(),
            vec![
                t(FLANNEL, MIRROR, "all"),
                t(FLANNEL, &format!("{MIRROR}:v0.15.1"), "v0.15.1"),
                t(FLANNEL, &format!("{MIRROR}:v0.15.1"), "v0.15.1"),
                t(FLANNEL, &format!("{MIRROR}:v0.16.0"), "v0.16.0"),
            ],
            "{file}"
        );
        assert_eq!(rules[0]["source_auth"], "quay.io", "{file}");
        assert_eq!(
            rules[0]["target_auth"], "registry.cn-hangzhou.aliyuncs.com",
            "{file}"
        );
    }
}

#[test]
fn the_ci_rules_with_short_names_and_digests_resolve() {
    let rules = validate(&[
        "--auth",
        &fixture("ci-auth.yml"),
        "--images",
        &fixture("ci-images.yml"),
    ]);
    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t(
                "quay.io/prometheus/node-exporter",
                "localhost:5000/mirror-test/node-exporter:v1.7.0",
                "v1.7.0"
            ),
            t(
                "docker.io/library/busybox",
                "localhost:5000/mirror-test/busybox:1.36.1",
                "1.36.1"
            ),
            t(
                "docker.io/cilium/cilium",
                "localhost:5000/mirror-test/cilium:v1.15.0",
                "v1.15.0"
            ),
            t(
                "docker.io/cilium/cilium",
                "localhost:5000/mirror-test/cilium",
                digest
            ),
            t(
                "docker.io/cilium/cilium",
                "localhost:5000/mirror-test/cilium:v1.15.0-pinned",
                digest
            ),
        ]
    );
    let lines: Vec<u64> = rules.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [5, 8, 11, 15, 16]);
}
