//! A user writes images.json and runs `image-migrator validate` to see how each rule of
//! SPEC §3 is resolved before anything is copied.

use crate::support;

use predicates::prelude::*;
use support::project::{Project, config_error, rules_of, triple};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn t(source: &str, target: &str, tags: &str) -> (String, String, String) {
    (source.into(), target.into(), tags.into())
}

#[test]
fn the_spec_example_resolves_to_three_rules_with_their_lines() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd:1.0.0": "swr.cn-north-4.myhuaweicloud.com/test/etcd:1.0.0",
  "quay.io/coreos/etcd": "swr.cn-north-4.myhuaweicloud.com/test/etcd",
  "quay.io/coreos/etcd:2.7.3": "swr.cn-north-4.myhuaweicloud.com/test/etcd"
}"#,
    );
    let rules = project.rules(&[]);
    let swr = "swr.cn-north-4.myhuaweicloud.com/test/etcd";
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("quay.io/coreos/etcd", &format!("{swr}:1.0.0"), "1.0.0"),
            t("quay.io/coreos/etcd", swr, "all"),
            t("quay.io/coreos/etcd", &format!("{swr}:2.7.3"), "2.7.3"),
        ]
    );
    let lines: Vec<u64> = rules.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4]);
    for rule in &rules {
        let mut keys: Vec<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "filters",
                "line",
                "source",
                "source_auth",
                "source_credentials",
                "tags",
                "target",
                "target_auth",
                "target_credentials"
            ]
        );
    }
}

#[test]
fn text_format_lists_each_rule_on_its_line_and_counts_them() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd:3.5.0": "r.example.com/mirror/etcd",
  "quay.io/coreos/etcd": "r.example.com/mirror/etcd"
}"#,
    );
    project.validate(&[]).assert().success().stdout(
        "line 2: quay.io/coreos/etcd [3.5.0] → r.example.com/mirror/etcd:3.5.0  \
         (source auth: anonymous, target auth: anonymous)\n\
         line 3: quay.io/coreos/etcd [all] → r.example.com/mirror/etcd  \
         (source auth: anonymous, target auth: anonymous)\n\
         target r.example.com: kind harbor or distribution (GET /api/v2.0/ping decides at \
         run time), API the registry itself\n\
         2 rule(s) valid\n",
    );
    // Text is the default; `--format text` says the same.
    project
        .validate(&["--format", "text"])
        .assert()
        .success()
        .stdout(predicate::str::ends_with("2 rule(s) valid\n"));
}

// Rules 1–3: the largest unit is one repository. As image-syncer (and docker pull) read
// them, Docker Hub short names and repositories without a namespace are accepted.

#[test]
fn docker_hub_short_names_are_read_as_docker_pull_reads_them() {
    let project = Project::with_images(
        r#"{
  "nginx": "r.example.com/ns/nginx",
  "nginx:1.25": "r.example.com/ns/nginx",
  "library/nginx:1.26": "calico/nginx-mirror",
  "calico/node:v3.27.0": "",
  "registry.hub.docker.com/library/redis:7": "r.example.com/ns/redis"
}"#,
    );
    let rules = project.rules(&["--default-registry", "h.io", "--default-namespace", "m"]);
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("docker.io/library/nginx", "r.example.com/ns/nginx", "all"),
            t(
                "docker.io/library/nginx",
                "r.example.com/ns/nginx:1.25",
                "1.25"
            ),
            t(
                "docker.io/library/nginx",
                "docker.io/calico/nginx-mirror:1.26",
                "1.26"
            ),
            t("docker.io/calico/node", "h.io/m/node:v3.27.0", "v3.27.0"),
            t("docker.io/library/redis", "r.example.com/ns/redis:7", "7"),
        ]
    );
}

#[test]
fn repositories_without_a_namespace_are_sources_and_targets() {
    let project = Project::with_images(
        r#"{
  "registry.k8s.io/pause:3.9": "",
  "localhost:5000/app": "r.example.com/app",
  "quay.io/coreos/etcd:3.5": "r.example.com/etcd"
}"#,
    );
    let rules = project.rules(&["--default-registry", "h.io", "--default-namespace", "m"]);
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("registry.k8s.io/pause", "h.io/m/pause:3.9", "3.9"),
            t("localhost:5000/app", "r.example.com/app", "all"),
            t("quay.io/coreos/etcd", "r.example.com/etcd:3.5", "3.5"),
        ]
    );
}

#[test]
fn a_whole_registry_cannot_be_a_source_or_a_target() {
    for (source, target) in [
        ("quay.io", "r.example.com/ns/etcd"),
        ("quay.io:3.5", "r.example.com/ns/etcd"),
        ("quay.io/coreos/etcd", "r.example.com"),
    ] {
        let project = Project::with_images(&format!(r#"{{"{source}": "{target}"}}"#));
        let stderr = config_error(&mut project.validate(&[]));
        assert!(
            stderr.contains("names a registry, not a repository"),
            "{source}: {stderr}"
        );
        assert!(stderr.contains(&format!("{source:?}")), "{stderr}");
    }
}

#[test]
fn docker_hub_images_are_written_with_docker_io_and_library() {
    let project =
        Project::with_images(r#"{"docker.io/library/nginx:1.25": "r.example.com/mirror/nginx"}"#);
    let rules = project.rules(&[]);
    assert_eq!(
        triple(&rules[0]),
        t(
            "docker.io/library/nginx",
            "r.example.com/mirror/nginx:1.25",
            "1.25"
        )
    );
}

#[test]
fn deeper_namespaces_are_fine_on_both_sides() {
    let project = Project::with_images(
        r#"{"registry.gitlab.com/group/sub/app:v1": "localhost:5000/a/b/c/app"}"#,
    );
    assert_eq!(
        triple(&project.rules(&[])[0]),
        t(
            "registry.gitlab.com/group/sub/app",
            "localhost:5000/a/b/c/app:v1",
            "v1"
        )
    );
}

// Rule 4: the source is never empty; one source to several targets = several rules.

#[test]
fn an_empty_source_is_refused() {
    let project = Project::with_images("{\n  \"\": \"r.example.com/ns/etcd\"\n}");
    let stderr = config_error(&mut project.validate(&[]));
    assert!(stderr.contains("images.json:2: \"\": "), "{stderr}");
    assert!(stderr.contains("the source must not be empty"), "{stderr}");
}

#[test]
fn a_repeated_key_is_a_separate_rule_each_time_in_file_order() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd:3.5.0": "a.example.com/ns/etcd",
  "docker.io/library/nginx:1.25": "a.example.com/ns/nginx",
  "quay.io/coreos/etcd:3.5.0": "b.example.com/ns/etcd"
}"#,
    );
    let rules = project.rules(&[]);
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t(
                "quay.io/coreos/etcd",
                "a.example.com/ns/etcd:3.5.0",
                "3.5.0"
            ),
            t(
                "docker.io/library/nginx",
                "a.example.com/ns/nginx:1.25",
                "1.25"
            ),
            t(
                "quay.io/coreos/etcd",
                "b.example.com/ns/etcd:3.5.0",
                "3.5.0"
            ),
        ]
    );
    assert_eq!(rules[0]["line"], 2);
    assert_eq!(rules[2]["line"], 4);
}

#[test]
fn an_array_value_is_one_rule_per_target_each_on_its_own_line() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd:3.5.0": [
    "a.example.com/ns/etcd",
    "b.example.com/ns/etcd:stable"
  ]
}"#,
    );
    let rules = project.rules(&[]);
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t(
                "quay.io/coreos/etcd",
                "a.example.com/ns/etcd:3.5.0",
                "3.5.0"
            ),
            t(
                "quay.io/coreos/etcd",
                "b.example.com/ns/etcd:stable",
                "3.5.0"
            ),
        ]
    );
    assert_eq!(rules[0]["line"], 3);
    assert_eq!(rules[1]["line"], 4);
}

// Rule 5: the target repository name may differ.

#[test]
fn the_target_may_rename_the_repository() {
    let project = Project::with_images(
        r#"{"quay.io/coreos/etcd:3.5.0": "r.example.com/backup/etcd-server"}"#,
    );
    assert_eq!(
        triple(&project.rules(&[])[0]),
        t(
            "quay.io/coreos/etcd",
            "r.example.com/backup/etcd-server:3.5.0",
            "3.5.0"
        )
    );
}

// Rule 6: no source tag = every tag; the target must not have a tag.

#[test]
fn a_source_without_tag_copies_all_tags_to_an_untagged_target() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd": "r.example.com/ns/etcd"}"#);
    assert_eq!(
        triple(&project.rules(&[])[0]),
        t("quay.io/coreos/etcd", "r.example.com/ns/etcd", "all")
    );
}

#[test]
fn a_source_without_tag_refuses_a_tagged_target() {
    let project =
        Project::with_images("{\n  \"quay.io/coreos/etcd\": \"r.example.com/ns/etcd:latest\"\n}");
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("images.json:2: \"quay.io/coreos/etcd\""),
        "{stderr}"
    );
    assert!(stderr.contains("the target must not have one"), "{stderr}");
}

// Rule 7: a source tag = that tag; an untagged target takes it.

#[test]
fn a_tagged_source_gives_its_tag_to_an_untagged_target_and_keeps_an_explicit_one() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd:2.7.3": "r.example.com/ns/etcd",
  "quay.io/coreos/etcd:3.5.0": "r.example.com/ns/etcd:stable"
}"#,
    );
    let rules = project.rules(&[]);
    assert_eq!(
        triple(&rules[0]),
        t(
            "quay.io/coreos/etcd",
            "r.example.com/ns/etcd:2.7.3",
            "2.7.3"
        )
    );
    assert_eq!(
        triple(&rules[1]),
        t(
            "quay.io/coreos/etcd",
            "r.example.com/ns/etcd:stable",
            "3.5.0"
        )
    );
}

// Rule 8: an empty target goes to the default registry and namespace.

const EMPTY_TARGETS: &str = r#"{
  "quay.io/coreos/etcd:3.5.0": "",
  "registry.gitlab.com/group/sub/app": ""
}"#;

fn expect_defaults_applied(rules: &[serde_json::Value], registry: &str, namespace: &str) {
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t(
                "quay.io/coreos/etcd",
                &format!("{registry}/{namespace}/etcd:3.5.0"),
                "3.5.0"
            ),
            // The source path minus its first segment: sub/app.
            t(
                "registry.gitlab.com/group/sub/app",
                &format!("{registry}/{namespace}/sub/app"),
                "all"
            ),
        ]
    );
}

#[test]
fn an_empty_target_uses_the_default_flags() {
    let project = Project::with_images(EMPTY_TARGETS);
    let rules = project.rules(&[
        "--default-registry",
        "swr.cn-north-4.myhuaweicloud.com",
        "--default-namespace",
        "team-a",
    ]);
    expect_defaults_applied(&rules, "swr.cn-north-4.myhuaweicloud.com", "team-a");
}

#[test]
fn an_empty_target_accepts_the_registry_and_namespace_aliases() {
    let project = Project::with_images(EMPTY_TARGETS);
    let rules = project.rules(&["--registry", "r.example.com", "--namespace", "mirror"]);
    expect_defaults_applied(&rules, "r.example.com", "mirror");
}

#[test]
fn an_empty_target_uses_the_default_environment_variables() {
    let project = Project::with_images(EMPTY_TARGETS);
    let mut cmd = project.validate(&["--format", "json"]);
    cmd.env("DEFAULT_REGISTRY", "env.example.com")
        .env("DEFAULT_NAMESPACE", "from-env");
    expect_defaults_applied(&rules_of(&mut cmd), "env.example.com", "from-env");
}

#[test]
fn a_default_flag_beats_its_environment_variable() {
    let project = Project::with_images(EMPTY_TARGETS);
    let mut cmd = project.validate(&["--format", "json", "--registry", "flag.example.com"]);
    cmd.env("DEFAULT_REGISTRY", "env.example.com")
        .env("DEFAULT_NAMESPACE", "from-env");
    expect_defaults_applied(&rules_of(&mut cmd), "flag.example.com", "from-env");

    let mut cmd = project.validate(&["--format", "json", "--default-namespace", "from-flag"]);
    cmd.env("DEFAULT_REGISTRY", "env.example.com")
        .env("DEFAULT_NAMESPACE", "from-env");
    expect_defaults_applied(&rules_of(&mut cmd), "env.example.com", "from-flag");
}

#[test]
fn an_empty_target_without_defaults_is_an_error_for_each_such_rule() {
    let project = Project::with_images(EMPTY_TARGETS);
    let stderr = config_error(&mut project.validate(&[]));
    assert!(stderr.contains("(2 problems)"), "{stderr}");
    for (line, key) in [
        (2, "quay.io/coreos/etcd:3.5.0"),
        (3, "registry.gitlab.com/group/sub/app"),
    ] {
        assert!(
            stderr.contains(&format!("images.json:{line}: {key:?}: the target is empty")),
            "{stderr}"
        );
    }
    assert!(stderr.contains("--default-registry"), "{stderr}");
    assert!(stderr.contains("DEFAULT_NAMESPACE"), "{stderr}");
}

#[test]
fn an_empty_target_with_only_one_default_is_an_error() {
    let project = Project::with_images(EMPTY_TARGETS);
    config_error(&mut project.validate(&["--registry", "r.example.com"]));
    let mut cmd = project.validate(&[]);
    cmd.env("DEFAULT_NAMESPACE", "team-a");
    config_error(&mut cmd);
}

#[test]
fn defaults_are_not_needed_when_no_target_is_empty() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd": "r.example.com/ns/etcd"}"#);
    project.validate(&[]).assert().success();
}

#[test]
fn a_default_registry_with_a_namespace_is_refused() {
    let project = Project::with_images(EMPTY_TARGETS);
    let stderr = config_error(&mut project.validate(&[
        "--registry",
        "r.example.com/team",
        "--namespace",
        "team",
    ]));
    assert!(stderr.contains("--default-namespace"), "{stderr}");
}

// Rule 9: a digest source copies exactly that manifest.

#[test]
fn a_digest_source_is_pushed_by_digest_or_under_the_target_tag() {
    let project = Project::with_images(&format!(
        r#"{{
  "quay.io/coreos/etcd@{DIGEST}": "r.example.com/ns/etcd",
  "quay.io/coreos/etcd@{DIGEST}": "r.example.com/ns/etcd:pinned"
}}"#
    ));
    let rules = project.rules(&[]);
    assert_eq!(
        triple(&rules[0]),
        t("quay.io/coreos/etcd", "r.example.com/ns/etcd", DIGEST)
    );
    assert_eq!(
        triple(&rules[1]),
        t(
            "quay.io/coreos/etcd",
            "r.example.com/ns/etcd:pinned",
            DIGEST
        )
    );
}

#[test]
fn a_digest_source_with_an_empty_target_keeps_no_tag() {
    let project = Project::with_images(&format!(r#"{{"quay.io/coreos/etcd@{DIGEST}": ""}}"#));
    let rules = project.rules(&["--registry", "r.example.com", "--namespace", "mirror"]);
    assert_eq!(
        triple(&rules[0]),
        t("quay.io/coreos/etcd", "r.example.com/mirror/etcd", DIGEST)
    );
}

#[test]
fn a_malformed_digest_is_refused() {
    let project =
        Project::with_images(r#"{"quay.io/coreos/etcd@sha256:1234": "r.example.com/ns/etcd"}"#);
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("images.json:1: \"quay.io/coreos/etcd@sha256:1234\""),
        "{stderr}"
    );
}

// Forms image-syncer users bring.

#[test]
fn variables_in_keys_and_targets_are_expanded_and_an_unset_one_is_named() {
    let project = Project::with_images(
        r#"{
  "${SRC_REGISTRY}/coreos/etcd:3.5": "$DST_REPO",
  "quay.io/coreos/etcd:3.4": "${DST}/etcd"
}"#,
    );
    let mut cmd = project.validate(&["--format", "json"]);
    cmd.env("SRC_REGISTRY", "quay.io")
        .env("DST", "r.example.com/ns")
        .env("DST_REPO", "r.example.com/ns/etcd");
    let rules = support::project::rules_of(&mut cmd);
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("quay.io/coreos/etcd", "r.example.com/ns/etcd:3.5", "3.5"),
            t("quay.io/coreos/etcd", "r.example.com/ns/etcd:3.4", "3.4"),
        ]
    );
    let mut cmd = project.validate(&[]);
    cmd.env("SRC_REGISTRY", "quay.io")
        .env("DST_REPO", "r.example.com/ns/etcd");
    let stderr = config_error(&mut cmd);
    assert!(
        stderr.contains("images.json:3: \"quay.io/coreos/etcd:3.4\": → \"${DST}/etcd\": target: environment variable DST is not set"),
        "{stderr}"
    );
    // A `$` that is not `${VAR}` or a whole `$VAR` value stays literal (and is refused here).
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.example.com/ns$x/etcd"}"#);
    let stderr = config_error(&mut project.validate(&[]));
    assert!(stderr.contains("invalid path component"), "{stderr}");
}

#[test]
fn a_digest_target_must_be_the_sources_own_digest() {
    let same = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let project = Project::with_images(&format!(
        r#"{{"quay.io/coreos/etcd@{same}": "r.example.com/ns/etcd@{same}"}}"#
    ));
    let rules = project.rules(&[]);
    assert_eq!(
        triple(&rules[0]),
        t("quay.io/coreos/etcd", "r.example.com/ns/etcd", same)
    );
    let project = Project::with_images(&format!(
        r#"{{"quay.io/coreos/etcd@{same}": "r.example.com/ns/etcd@{other}"}}"#
    ));
    let stderr = config_error(&mut project.validate(&[]));
    assert!(stderr.contains("other than the source's own"), "{stderr}");
}

#[test]
fn registry_hub_docker_com_and_a_trailing_slash_are_auth_keys_like_the_others() {
    let project = Project::with_images(
        r#"{"registry.hub.docker.com/library/nginx:1.25": "r.example.com/team/nginx"}"#,
    );
    project.write(
        "auth.json",
        r#"{
  "registry.hub.docker.com": {"username": "hub", "password": "pw"},
  "r.example.com/team/": {"username": "team", "password": "pw"}
}"#,
    );
    let rules = project.rules(&["--no-docker-config"]);
    assert_eq!(rules[0]["source"], "docker.io/library/nginx");
    assert_eq!(rules[0]["source_auth"], "registry.hub.docker.com");
    assert_eq!(rules[0]["target_auth"], "r.example.com/team/");
}

#[test]
fn tag_lists_map_in_order_and_a_count_mismatch_is_an_error() {
    let project =
        Project::with_images(r#"{"quay.io/coreos/etcd:v1,v2": "r.example.com/ns/etcd:one,two"}"#);
    let rules = project.rules(&[]);
    assert_eq!(
        rules.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("quay.io/coreos/etcd", "r.example.com/ns/etcd:one", "v1"),
            t("quay.io/coreos/etcd", "r.example.com/ns/etcd:two", "v2"),
        ]
    );
    let project =
        Project::with_images(r#"{"quay.io/coreos/etcd:v1,v2": "r.example.com/ns/etcd:one"}"#);
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("the source names 2 tag(s) and the target 1"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_each_rules_filters() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd": {
    "target": ["r.example.com/ns/etcd", ""],
    "tags": {"include": ["^v3\\."], "exclude": ["-rc", "alpha"], "semver": ">=3.4.0, <4",
             "latest": 5, "newest": 3, "created_within": "90d"}
  }
}"#,
    );
    let rules = project.rules(&["--default-registry", "h.io", "--default-namespace", "m"]);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["target"], "h.io/m/etcd");
    for rule in &rules {
        assert_eq!(rule["tags"], "selected");
        assert_eq!(
            rule["filters"],
            serde_json::json!({"include": ["^v3\\."], "exclude": ["-rc", "alpha"],
                "semver": ">=3.4.0, <4", "created_within": "90d", "latest": 5, "newest": 3})
        );
    }
    let output = project
        .validate(&["--default-registry", "h.io", "--default-namespace", "m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("line 3: quay.io/coreos/etcd [selected: include /^v3\\./; exclude /-rc/ /alpha/; semver >=3.4.0, <4; created within 90d; latest 5; newest 3] → r.example.com/ns/etcd "),
        "{text}"
    );
}
