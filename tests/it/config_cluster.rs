//! `image-migrator config` against a (test) API server: what it reads, which URLs it asks
//! for, and the images.json it writes.

use crate::support;

use predicates::prelude::*;
use serde_json::json;
use support::apiserver::{ApiServer, image_migrator, parse_rules, workload};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs `config` with a kubeconfig trusting the server's CA and returns the rules printed
/// on stdout, plus stderr.
fn run(server: &ApiServer, extra: &[&str]) -> (Vec<(String, String)>, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::apiserver::Certs::b64(&server.certs.ca_pem);
    let kubeconfig =
        server.write_kubeconfig(dir.path(), &[("certificate-authority-data", &ca)], &[]);
    let output = image_migrator()
        .args(["config", "-t", "harbor.example.com/mirror", "-o", "-", "-k"])
        .arg(&kubeconfig)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "failed: {stderr}");
    (parse_rules(&stdout), stderr)
}

fn sources(rules: &[(String, String)]) -> Vec<&str> {
    rules.iter().map(|(s, _)| s.as_str()).collect()
}

#[test]
fn every_workload_kind_is_read() {
    let server = ApiServer::builder()
        .object(
            "Deployment",
            workload("Deployment", "web", "front", &["nginx:1.27"]),
        )
        .object(
            "StatefulSet",
            workload("StatefulSet", "db", "pg", &["postgres:16"]),
        )
        .object(
            "DaemonSet",
            workload(
                "DaemonSet",
                "kube-system",
                "agent",
                &["quay.io/prometheus/node-exporter:v1.8.0"],
            ),
        )
        .object(
            "ReplicaSet",
            workload("ReplicaSet", "web", "bare-rs", &["ghcr.io/acme/bare:2"]),
        )
        .object(
            "Job",
            workload("Job", "batch", "migrate", &["ghcr.io/acme/migrate:3"]),
        )
        .object(
            "CronJob",
            workload("CronJob", "batch", "nightly", &["ghcr.io/acme/nightly:4"]),
        )
        .object("Pod", workload("Pod", "default", "loose", &["busybox"]))
        .start();
    let (rules, _) = run(&server, &[]);
    assert_eq!(
        rules,
        [
            (
                "docker.io/library/busybox:latest",
                "harbor.example.com/mirror/busybox:latest"
            ),
            (
                "docker.io/library/nginx:1.27",
                "harbor.example.com/mirror/nginx:1.27"
            ),
            (
                "docker.io/library/postgres:16",
                "harbor.example.com/mirror/postgres:16"
            ),
            ("ghcr.io/acme/bare:2", "harbor.example.com/mirror/bare:2"),
            (
                "ghcr.io/acme/migrate:3",
                "harbor.example.com/mirror/migrate:3"
            ),
            (
                "ghcr.io/acme/nightly:4",
                "harbor.example.com/mirror/nightly:4"
            ),
            (
                "quay.io/prometheus/node-exporter:v1.8.0",
                "harbor.example.com/mirror/node-exporter:v1.8.0"
            ),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Cluster-wide list URLs, one per kind, nothing namespaced.
    let paths = server.list_paths();
    assert_eq!(
        paths,
        [
            "/apis/apps/v1/deployments",
            "/apis/apps/v1/statefulsets",
            "/apis/apps/v1/daemonsets",
            "/apis/apps/v1/replicasets",
            "/apis/batch/v1/jobs",
            "/apis/batch/v1/cronjobs",
            "/api/v1/pods",
        ]
    );
}

#[test]
fn owned_replicasets_are_skipped_but_all_pods_are_read() {
    let mut owned = workload(
        "ReplicaSet",
        "web",
        "front-abc",
        &["ghcr.io/acme/owned-rs:1"],
    );
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "front", "uid": "u1", "controller": true}]);
    let mut owned_pod = workload("Pod", "web", "front-abc-xyz", &["ghcr.io/acme/owned-pod:1"]);
    owned_pod["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "front-abc", "uid": "u2"}]);
    let server = ApiServer::builder()
        .object("ReplicaSet", owned)
        .object("Pod", owned_pod)
        .start();
    let (rules, _) = run(&server, &[]);
    assert_eq!(sources(&rules), ["ghcr.io/acme/owned-pod:1"]);
}

#[test]
fn init_and_ephemeral_containers_are_included() {
    let mut pod = workload("Pod", "default", "debugged", &["app:1"]);
    pod["spec"]["initContainers"] = json!([{"name": "init", "image": "ghcr.io/acme/init:0.1"}]);
    pod["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "docker.io/nicolaka/netshoot:v0.13"}]);
    let mut deploy = workload("Deployment", "default", "d", &["app:1"]);
    deploy["spec"]["template"]["spec"]["initContainers"] =
        json!([{"name": "wait", "image": "busybox:1.36"}]);
    let server = ApiServer::builder()
        .object("Pod", pod)
        .object("Deployment", deploy)
        .start();
    let (rules, _) = run(&server, &[]);
    assert_eq!(
        sources(&rules),
        [
            "docker.io/library/app:1",
            "docker.io/library/busybox:1.36",
            "docker.io/nicolaka/netshoot:v0.13",
            "ghcr.io/acme/init:0.1",
        ]
    );
}

#[test]
fn lists_are_followed_page_by_page() {
    let mut builder = ApiServer::builder();
    for i in 0..5 {
        builder = builder.object(
            "Pod",
            workload(
                "Pod",
                "default",
                &format!("p{i}"),
                &[&format!("ghcr.io/acme/svc{i}:1")],
            ),
        );
    }
    let server = builder.start();
    let (rules, _) = run(&server, &["--chunk-size", "2"]);
    assert_eq!(rules.len(), 5, "every page must be read: {rules:?}");

    let pod_requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    assert_eq!(pod_requests.len(), 3, "5 items in pages of 2");
    assert!(pod_requests.iter().all(|r| r.param("limit") == Some("2")));
    let continues: Vec<_> = pod_requests.iter().map(|r| r.param("continue")).collect();
    assert_eq!(continues, [None, Some("tok-2"), Some("tok-4")]);
}

#[test]
fn default_page_size_is_sent() {
    let server = ApiServer::builder()
        .object("Pod", workload("Pod", "a", "p", &["x/y:1"]))
        .start();
    run(&server, &[]);
    let requests = server.requests();
    let lists: Vec<_> = requests.iter().filter(|r| r.path != "/version").collect();
    assert!(
        lists.iter().all(|r| r.param("limit") == Some("500")),
        "{lists:?}"
    );
}

#[test]
fn namespaces_flag_only_uses_namespaced_urls() {
    let server = ApiServer::builder()
        .object(
            "Deployment",
            workload("Deployment", "web", "a", &["ghcr.io/acme/web:1"]),
        )
        .object(
            "CronJob",
            workload("CronJob", "db", "b", &["ghcr.io/acme/backup:1"]),
        )
        .object(
            "Pod",
            workload("Pod", "other", "c", &["ghcr.io/acme/other:1"]),
        )
        .start();
    let (rules, _) = run(&server, &["-n", "web,db"]);
    assert_eq!(
        sources(&rules),
        ["ghcr.io/acme/backup:1", "ghcr.io/acme/web:1"]
    );

    let paths = server.list_paths();
    assert_eq!(paths.len(), 14, "7 kinds x 2 namespaces: {paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| p.contains("/namespaces/web/") || p.contains("/namespaces/db/")),
        "{paths:?}"
    );
    assert!(paths.contains(&"/apis/apps/v1/namespaces/web/deployments".to_string()));
    assert!(paths.contains(&"/apis/batch/v1/namespaces/db/cronjobs".to_string()));
    assert!(paths.contains(&"/api/v1/namespaces/db/pods".to_string()));
}

#[test]
fn a_forbidden_kind_is_a_warning_naming_kind_and_namespace() {
    let server = ApiServer::builder()
        .object(
            "DaemonSet",
            workload("DaemonSet", "web", "ds", &["ghcr.io/acme/hidden:1"]),
        )
        .object(
            "Deployment",
            workload("Deployment", "web", "d", &["ghcr.io/acme/seen:1"]),
        )
        .forbid("daemonsets", Some("web"))
        .start();
    let (rules, stderr) = run(&server, &["-n", "web"]);
    assert_eq!(sources(&rules), ["ghcr.io/acme/seen:1"]);
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("daemonsets"), "{stderr}");
    assert!(stderr.contains("namespace web"), "{stderr}");
}

#[test]
fn a_forbidden_kind_cluster_wide_is_a_warning_too() {
    let server = ApiServer::builder()
        .object("Pod", workload("Pod", "web", "p", &["ghcr.io/acme/pod:1"]))
        .forbid("secrets", None)
        .forbid("jobs", None)
        .start();
    let (rules, stderr) = run(&server, &[]);
    assert_eq!(sources(&rules), ["ghcr.io/acme/pod:1"]);
    assert!(stderr.contains("jobs in all namespaces"), "{stderr}");
    assert!(!stderr.contains("cronjobs in"), "{stderr}");
}

#[test]
fn digest_pinned_images_become_digest_rules_without_target_tag() {
    let server = ApiServer::builder()
        .object(
            "Deployment",
            workload(
                "Deployment",
                "web",
                "d",
                &[
                    &format!("redis:7.2@{DIGEST}"),
                    &format!("quay.io/org/tool@{DIGEST}"),
                ],
            ),
        )
        .start();
    let (rules, _) = run(&server, &[]);
    assert_eq!(
        rules,
        [
            (
                format!("docker.io/library/redis@{DIGEST}"),
                "harbor.example.com/mirror/redis".to_string()
            ),
            (
                format!("quay.io/org/tool@{DIGEST}"),
                "harbor.example.com/mirror/tool".to_string()
            ),
        ]
    );
}

#[test]
fn same_image_written_differently_is_one_rule() {
    let server = ApiServer::builder()
        .object("Pod", workload("Pod", "a", "p1", &["nginx"]))
        .object(
            "Pod",
            workload("Pod", "b", "p2", &["docker.io/library/nginx:latest"]),
        )
        .object(
            "Pod",
            workload("Pod", "c", "p3", &["index.docker.io/library/nginx"]),
        )
        .start();
    let (rules, stderr) = run(&server, &[]);
    assert_eq!(sources(&rules), ["docker.io/library/nginx:latest"]);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn two_sources_on_one_target_are_both_kept_with_a_warning() {
    let server = ApiServer::builder()
        .object(
            "Pod",
            workload(
                "Pod",
                "a",
                "p1",
                &["nginx:1.27", "quay.io/bitnami/nginx:1.27"],
            ),
        )
        .start();
    let (rules, stderr) = run(&server, &[]);
    assert_eq!(
        sources(&rules),
        ["docker.io/library/nginx:1.27", "quay.io/bitnami/nginx:1.27"]
    );
    assert!(
        rules
            .iter()
            .all(|(_, t)| t == "harbor.example.com/mirror/nginx:1.27")
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("harbor.example.com/mirror/nginx:1.27"))
        .unwrap_or_else(|| panic!("no collision warning in {stderr}"));
    assert!(line.starts_with("warning"), "{line}");
    assert!(line.contains("docker.io/library/nginx:1.27"), "{line}");
    assert!(line.contains("quay.io/bitnami/nginx:1.27"), "{line}");
}

#[test]
fn output_file_is_sorted_pretty_json_ending_with_newline() {
    let server = ApiServer::builder()
        .object(
            "Pod",
            workload(
                "Pod",
                "a",
                "p",
                &["zeta/z:1", "quay.io/a/a:1", "alpha:2", "m.io/m/m"],
            ),
        )
        .start();
    let dir = tempfile::tempdir().unwrap();
    let ca = support::apiserver::Certs::b64(&server.certs.ca_pem);
    let kubeconfig =
        server.write_kubeconfig(dir.path(), &[("certificate-authority-data", &ca)], &[]);
    image_migrator()
        .current_dir(dir.path())
        .env("KUBECONFIG", &kubeconfig)
        .args(["config", "--target", "registry.local:5000/team/sub"])
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("images.json"));
    let text = std::fs::read_to_string(dir.path().join("images.json")).unwrap();
    assert_eq!(
        text,
        "{\n  \"docker.io/library/alpha:2\": \"registry.local:5000/team/sub/alpha:2\",\n  \
         \"docker.io/zeta/z:1\": \"registry.local:5000/team/sub/z:1\",\n  \
         \"m.io/m/m:latest\": \"registry.local:5000/team/sub/m:latest\",\n  \
         \"quay.io/a/a:1\": \"registry.local:5000/team/sub/a:1\"\n}\n"
    );
}

#[test]
fn a_server_error_exits_1_with_a_message() {
    let server = ApiServer::builder().start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: a network error, exit code 1.
    let ca = support::apiserver::Certs::b64(&server.certs.ca_pem);
    let kubeconfig =
        server.write_kubeconfig(dir.path(), &[("certificate-authority-data", &ca)], &[]);
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&server.url, "https://127.0.0.1:1");
    std::fs::write(&kubeconfig, text).unwrap();
    image_migrator()
        .args(["config", "-t", "r.io/ns", "-o", "-", "-k"])
        .arg(&kubeconfig)
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "cannot reach the API server at https://127.0.0.1:1",
        ));
}
