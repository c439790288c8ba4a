//! `image-migrator config --from-file`: rules from `kubectl get ... -A -o json` output, read
//! from a file or standard input, and the command line's own checks.

use crate::support;

use predicates::prelude::*;
use serde_json::json;
use support::apiserver::{image_migrator, parse_rules};

/// What `kubectl get pods,deployments,cronjobs,replicasets -A -o json` prints: a `List`
/// whose items carry their kind.
fn kubectl_list() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "p", "namespace": "default"},
             "spec": {"initContainers": [{"name": "i", "image": "busybox:1.36"}],
                      "containers": [{"name": "c", "image": "nginx"}],
                      "ephemeralContainers": [{"name": "e", "image": "ghcr.io/acme/debug:1"}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "d", "namespace": "web"},
             "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "quay.io/org/api:2.0"}]}}}},
            {"apiVersion": "batch/v1", "kind": "CronJob",
             "metadata": {"name": "cj", "namespace": "web"},
             "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec":
                 {"containers": [{"name": "c", "image": "registry.k8s.io/sig-cli/kubectl:v1.31.0"},
                  {"name": "p", "image": "registry.k8s.io/pause:3.10"}]}}}}}},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "d-123", "namespace": "web",
                          "ownerReferences": [{"kind": "Deployment", "name": "d"}]},
             "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "quay.io/org/old:1.0"}]}}}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "s", "namespace": "web"}, "spec": {"ports": []}}
        ]
    })
}

const EXPECTED: &str = r#"{
  "docker.io/library/busybox:1.36": "harbor.example.com/mirror/busybox:1.36",
  "docker.io/library/nginx:latest": "harbor.example.com/mirror/nginx:latest",
  "ghcr.io/acme/debug:1": "harbor.example.com/mirror/debug:1",
  "quay.io/org/api:2.0": "harbor.example.com/mirror/api:2.0",
  "registry.k8s.io/pause:3.10": "harbor.example.com/mirror/pause:3.10",
  "registry.k8s.io/sig-cli/kubectl:v1.31.0": "harbor.example.com/mirror/kubectl:v1.31.0"
}
"#;

#[test]
fn from_file_writes_images_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cluster.json");
    std::fs::write(
        &input,
        serde_json::to_string_pretty(&kubectl_list()).unwrap(),
    )
    .unwrap();
    image_migrator()
        .current_dir(dir.path())
        // No kubeconfig is needed (nor read) with --from-file.
        .env("HOME", "/nonexistent")
        .args(["config", "-t", "harbor.example.com/mirror", "--from-file"])
        .arg(&input)
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        // A source without a namespace (the pause image) is a rule like the others.
        .stderr(predicate::str::contains("skipping").not());
    let text = std::fs::read_to_string(dir.path().join("images.json")).unwrap();
    assert_eq!(text, EXPECTED);
    parse_rules(&text);
    // The file passes `image-migrator validate` unchanged.
    image_migrator()
        .current_dir(dir.path())
        .env_remove("DEFAULT_REGISTRY")
        .env_remove("DEFAULT_NAMESPACE")
        .args(["validate", "--format", "json"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"target\": \"harbor.example.com/mirror/api:2.0\"",
        ));
}

#[test]
fn from_stdin_to_stdout() {
    image_migrator()
        .env("HOME", "/nonexistent")
        .args([
            "config",
            "-t",
            "harbor.example.com/mirror",
            "--from-file",
            "-",
            "-o",
            "-",
        ])
        .write_stdin(kubectl_list().to_string())
        .assert()
        .success()
        .stdout(EXPECTED);
}

#[test]
fn several_documents_and_typed_lists_are_accepted() {
    // `kubectl get deployments -o json` per kind, concatenated; items without "kind".
    let input = format!(
        "{}\n{}\n",
        json!({"kind": "DeploymentList", "apiVersion": "apps/v1", "items": [
            {"metadata": {"name": "a"}, "spec": {"template": {"spec": {"containers": [{"image": "a.io/x/a:1"}]}}}}
        ]}),
        json!({"kind": "PodList", "apiVersion": "v1", "items": [
            {"metadata": {"name": "b"}, "spec": {"containers": [{"image": "b.io/x/b:1"}]}}
        ]})
    );
    let output = image_migrator()
        .args([
            "config",
            "-t",
            "r.example/ns",
            "--from-file",
            "-",
            "-o",
            "-",
        ])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(output.status.success());
    let rules = parse_rules(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(
        rules,
        [
            ("a.io/x/a:1".to_string(), "r.example/ns/a:1".to_string()),
            ("b.io/x/b:1".to_string(), "r.example/ns/b:1".to_string()),
        ]
    );
}

#[test]
fn an_image_that_is_not_a_reference_is_skipped_with_a_warning() {
    let input = json!({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "bad", "namespace": "ns"},
         "spec": {"containers": [{"image": "Not A/Valid:Image"}, {"image": "ok.io/x/ok:1"}]}}
    ]});
    image_migrator()
        .args([
            "config",
            "-t",
            "r.example/ns",
            "--from-file",
            "-",
            "-o",
            "-",
        ])
        .write_stdin(input.to_string())
        .assert()
        .success()
        .stdout("{\n  \"ok.io/x/ok:1\": \"r.example/ns/ok:1\"\n}\n")
        .stderr(predicate::str::contains("warning"))
        .stderr(predicate::str::contains("Pod ns/bad"));
}

#[test]
fn input_that_is_not_json_exits_2() {
    image_migrator()
        .args([
            "config",
            "-t",
            "r.example/ns",
            "--from-file",
            "-",
            "-o",
            "-",
        ])
        .write_stdin("NAME   READY   STATUS\nweb    1/1     Running\n")
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("-o json"));
}

#[test]
fn a_missing_input_file_exits_2() {
    image_migrator()
        .args([
            "config",
            "-t",
            "r.example/ns",
            "--from-file",
            "/nonexistent/cluster.json",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/cluster.json"));
}

#[test]
fn a_bad_target_exits_2() {
    for bad in [
        "harbor.example.com",
        "mirror",
        "library/mirror",
        "harbor.example.com/Mirror",
        "harbor.example.com/mirror:tag",
    ] {
        image_migrator()
            .args(["config", "-t", bad, "--from-file", "-", "-o", "-"])
            .write_stdin(kubectl_list().to_string())
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains("registry/namespace"));
    }
}

#[test]
fn target_is_required() {
    image_migrator()
        .args(["config", "--from-file", "-"])
        .write_stdin("{}")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--target"));
}

#[test]
fn a_bad_namespace_exits_2() {
    image_migrator()
        .args([
            "config",
            "-t",
            "r.example/ns",
            "-n",
            "web,Bad_NS",
            "-k",
            "/nonexistent",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Bad_NS"));
}

#[test]
fn help_has_an_example_for_every_flag() {
    let output = image_migrator()
        .args(["config", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for example in [
        "-k ~/.kube/prod.yaml",
        "--context prod-eu",
        "-n web,db",
        "-t harbor.example.com/mirror",
        "-o prod-images.json",
        "--from-file cluster.json",
        "--chunk-size 100",
        "kubectl get pods,deployments",
    ] {
        assert!(help.contains(example), "no {example:?} in help:\n{help}");
    }
}
