//! A user writes auth.json with CI variables and checks with `validate` which entry each
//! image will use (SPEC §2), without any secret showing up in the output.

use crate::support;

use serde_json::Value;
use support::project::{Project, config_error, rules_of};

/// `(source_auth, target_auth)` of every rule.
fn auths(rules: &[Value]) -> Vec<(Value, Value)> {
    rules
        .iter()
        .map(|r| (r["source_auth"].clone(), r["target_auth"].clone()))
        .collect()
}

fn key(k: &str) -> Value {
    Value::String(k.into())
}

const CREDS: &str = r#"{"username": "u", "password": "p"}"#;

#[test]
fn the_longest_namespace_prefix_wins_at_a_slash_boundary() {
    let project = Project::with_images(
        r#"{
  "r.io/team/sub/app:1": "other.io/ns/app",
  "r.io/team/app:1": "other.io/ns/app",
  "r.io/teamx/app:1": "other.io/ns/app",
  "r.io/team/subx/app:1": "other.io/ns/app",
  "q.io/x/y:1": "r.io/team/copy"
}"#,
    );
    project.write(
        "auth.json",
        format!(r#"{{"r.io": {CREDS}, "r.io/team": {CREDS}, "r.io/team/sub": {CREDS}}}"#),
    );
    let rules = project.rules(&[]);
    let sources: Vec<Value> = auths(&rules).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        sources,
        [
            key("r.io/team/sub"),
            key("r.io/team"),
            key("r.io"),      // teamx is not under team
            key("r.io/team"), // team/subx is not under team/sub
            Value::Null,      // no entry for q.io: anonymous
        ]
    );
    // No entry for other.io: anonymous. r.io/team/copy is under r.io/team.
    assert_eq!(rules[0]["target_auth"], Value::Null);
    assert_eq!(rules[4]["target_auth"], key("r.io/team"));
}

#[test]
fn the_text_format_names_the_entry_or_anonymous() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/team/etcd"}"#);
    project.write("auth.json", format!(r#"{{"r.io/team": {CREDS}}}"#));
    project.validate(&[]).assert().success().stdout(
        "line 1: quay.io/coreos/etcd [3.5] → r.io/team/etcd:3.5  \
         (source auth: anonymous, target auth: r.io/team)\n\
         target r.io: kind harbor or distribution (GET /api/v2.0/ping decides at run time), \
         API the registry itself\n1 rule(s) valid\n",
    );
}

#[test]
fn a_registry_key_with_a_port_only_matches_that_port() {
    let project = Project::with_images(
        r#"{"localhost:5000/a/b:1": "localhost:5001/a/b", "localhost/a/b:1": "localhost:5000/a/c"}"#,
    );
    project.write("auth.json", format!(r#"{{"localhost:5000": {CREDS}}}"#));
    assert_eq!(
        auths(&project.rules(&[])),
        [
            (key("localhost:5000"), Value::Null),
            (Value::Null, key("localhost:5000"))
        ]
    );
}

#[test]
fn docker_hub_names_are_one_registry_for_matching() {
    let images = r#"{
  "docker.io/library/nginx:1": "r.io/ns/nginx",
  "index.docker.io/library/redis:7": "r.io/ns/redis",
  "registry-1.docker.io/bitnami/redis:7": "r.io/ns/redis"
}"#;
    for auth_key in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        let project = Project::with_images(images);
        project.write("auth.json", format!(r#"{{"{auth_key}": {CREDS}}}"#));
        let rules = project.rules(&[]);
        for rule in &rules {
            assert_eq!(rule["source_auth"], key(auth_key), "{auth_key}: {rule}");
            assert!(
                rule["source"].as_str().unwrap().starts_with("docker.io/"),
                "{rule}"
            );
        }
    }
    // A namespace key under one alias matches images written with another.
    let project = Project::with_images(images);
    project.write(
        "auth.json",
        format!(r#"{{"docker.io": {CREDS}, "index.docker.io/bitnami": {CREDS}}}"#),
    );
    let sources: Vec<Value> = auths(&project.rules(&[]))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        sources,
        [
            key("docker.io"),
            key("docker.io"),
            key("index.docker.io/bitnami")
        ]
    );
}

#[test]
fn the_same_registry_under_two_docker_hub_names_is_a_duplicate() {
    let project = Project::with_images(r#"{"docker.io/library/nginx:1": "r.io/ns/nginx"}"#);
    project.write(
        "auth.json",
        format!("{{\n  \"docker.io\": {CREDS},\n  \"index.docker.io\": {CREDS}\n}}"),
    );
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("auth.json:3: \"index.docker.io\": duplicate entry: line 2"),
        "{stderr}"
    );
}

#[test]
fn an_empty_object_means_anonymous_even_under_a_registry_with_credentials() {
    let project = Project::with_images(
        r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd", "quay.io/prometheus/node:1": "r.io/ns/node"}"#,
    );
    project.write(
        "auth.json",
        format!(r#"{{"quay.io/coreos": {{}}, "quay.io": {CREDS}, "r.io": {{"insecure": true}}}}"#),
    );
    assert_eq!(
        auths(&project.rules(&[])),
        [(Value::Null, Value::Null), (key("quay.io"), Value::Null)]
    );
}

#[test]
fn a_missing_default_auth_json_means_anonymous() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    assert_eq!(auths(&project.rules(&[])), [(Value::Null, Value::Null)]);
}

#[test]
fn an_explicit_auth_file_that_is_missing_is_an_error() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    let stderr = config_error(&mut project.validate(&["--auth", "missing.json"]));
    assert!(stderr.contains("missing.json: cannot read"), "{stderr}");
}

#[test]
fn an_auth_file_elsewhere_is_read_with_auth() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    std::fs::create_dir(project.dir.path().join("ci")).unwrap();
    project.write("ci/auth.json", format!(r#"{{"r.io": {CREDS}}}"#));
    // A broken ./auth.json is ignored when --auth names another file.
    project.write("auth.json", "{");
    assert_eq!(
        auths(&project.rules(&["--auth", "ci/auth.json"])),
        [(Value::Null, key("r.io"))]
    );
}

// `${VAR}` expansion: what is a reference to a variable shows in which variables must be set.

fn auth_with_password(password: &str) -> Project {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    project.write(
        "auth.json",
        format!(
            "{{\n  \"r.io\": {{\n    \"username\": \"u\",\n    \"password\": {password:?}\n  }}\n}}"
        ),
    );
    project
}

#[test]
fn braced_variables_are_expanded_anywhere_in_a_value() {
    let project = Project::with_images(
        r#"{"quay.io/coreos/etcd:3.5": "swr.cn-north-4.myhuaweicloud.com/ns/etcd"}"#,
    );
    project.write(
        "auth.json",
        r#"{"swr.cn-north-4.myhuaweicloud.com": {"username": "cn-north-4@${SWR_AK}", "password": "${SWR_LOGIN_KEY}"}}"#,
    );
    let mut cmd = project.validate(&["--format", "json"]);
    cmd.env("SWR_AK", "AK-VALUE")
        .env("SWR_LOGIN_KEY", "LOGIN-KEY-VALUE");
    let rules = rules_of(&mut cmd);
    assert_eq!(
        rules[0]["target_auth"],
        key("swr.cn-north-4.myhuaweicloud.com")
    );

    // Without the variables, each reference is reported.
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("username: environment variable SWR_AK is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("password: environment variable SWR_LOGIN_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn a_bare_dollar_name_is_a_variable_only_as_the_whole_value() {
    let project = auth_with_password("$TOKEN");
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("environment variable TOKEN is not set"),
        "{stderr}"
    );

    let mut cmd = project.validate(&[]);
    cmd.env("TOKEN", "t");
    cmd.assert().success();

    // Inside a longer value, $TOKEN is literal text, and `$$` is a literal `$`:
    // nothing needs to be set.
    for literal in [
        "x$TOKEN",
        "$TOKEN-x",
        "robot$name",
        "a$$b",
        "$${TOKEN}",
        "$",
        "100$",
    ] {
        let project = auth_with_password(literal);
        project.validate(&[]).assert().success();
    }
}

#[test]
fn a_harbor_robot_account_name_is_literal() {
    let project =
        Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "harbor.example.com/ns/etcd"}"#);
    project.write(
        "auth.json",
        r#"{"harbor.example.com": {"username": "robot$ci-pusher", "password": "${TOKEN}"}}"#,
    );
    let mut cmd = project.validate(&["--format", "json"]);
    cmd.env("TOKEN", "t");
    assert_eq!(
        rules_of(&mut cmd)[0]["target_auth"],
        key("harbor.example.com")
    );
}

#[test]
fn an_unset_variable_names_the_variable_the_key_and_the_line_but_no_value() {
    let project = auth_with_password("prefix-${NOT_SET_ANYWHERE}-S3CRET-SUFFIX");
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains(
            "auth.json:2: \"r.io\": password: environment variable NOT_SET_ANYWHERE is not set"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("S3CRET"), "the value leaked: {stderr}");
    assert!(!stderr.contains("prefix-"), "the value leaked: {stderr}");
}

#[test]
fn malformed_variable_references_are_errors() {
    for (password, message) in [
        ("${TOKEN", "unterminated"),
        ("${1TOKEN}", "invalid variable name"),
        ("${}", "invalid variable name"),
    ] {
        let project = auth_with_password(password);
        let stderr = config_error(&mut project.validate(&[]));
        assert!(
            stderr.contains("auth.json:2: \"r.io\": password: "),
            "{stderr}"
        );
        assert!(stderr.contains(message), "{password}: {stderr}");
    }
}

// Entry fields.

#[test]
fn a_misspelled_field_is_an_error_on_its_line() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    project.write(
        "auth.json",
        "{\n  \"r.io\": {\n    \"username\": \"u\",\n    \"pasword\": \"S3CRET-VALUE-123\"\n  }\n}",
    );
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("auth.json:4: \"r.io\": unknown field `pasword`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`password`"),
        "the valid names are listed: {stderr}"
    );
    assert!(!stderr.contains("S3CRET-VALUE-123"), "{stderr}");
}

#[test]
fn insecure_must_be_a_boolean() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    for value in [r#""true""#, "1", r#""yes""#] {
        project.write(
            "auth.json",
            format!("{{\n  \"r.io\": {{\n    \"insecure\": {value}\n  }}\n}}"),
        );
        let stderr = config_error(&mut project.validate(&[]));
        assert!(
            stderr.contains("auth.json:3: \"r.io\": invalid type"),
            "{value}: {stderr}"
        );
        assert!(stderr.contains("expected a boolean"), "{value}: {stderr}");
    }
    project.write("auth.json", r#"{"r.io": {"insecure": true}}"#);
    project.validate(&[]).assert().success();
}

#[test]
fn username_and_password_must_be_strings_and_the_value_is_not_echoed() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    project.write(
        "auth.json",
        "{\n  \"r.io\": {\n    \"username\": \"u\",\n    \"password\": 98765432123\n  }\n}",
    );
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("auth.json:4: \"r.io\": invalid type: integer, expected a string"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("98765432123"),
        "the value leaked: {stderr}"
    );
}

#[test]
fn an_entry_must_be_an_object() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    project.write("auth.json", "{\n  \"r.io\": \"S3CRET-VALUE-123\"\n}");
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("auth.json:2: \"r.io\": invalid type: string, expected an object"),
        "{stderr}"
    );
    assert!(!stderr.contains("S3CRET-VALUE-123"), "{stderr}");
}

#[test]
fn a_key_must_be_a_registry_or_registry_namespace() {
    let project = Project::with_images(r#"{"quay.io/coreos/etcd:3.5": "r.io/ns/etcd"}"#);
    for bad in ["https://r.io", "coreos", "r.io/Team", "r.io/team//"] {
        project.write("auth.json", format!("{{\n  {bad:?}: {{}}\n}}"));
        let stderr = config_error(&mut project.validate(&[]));
        assert!(
            stderr.contains(&format!(
                "auth.json:2: {bad:?}: key must be a registry or registry/namespace"
            )),
            "{bad}: {stderr}"
        );
    }
}

/// `(source_credentials, target_credentials)` of every rule.
fn sources(rules: &[Value]) -> Vec<(String, String)> {
    rules
        .iter()
        .map(|r| {
            (
                r["source_credentials"].as_str().unwrap().to_string(),
                r["target_credentials"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn validate_names_where_each_credential_comes_from_in_the_documented_order() {
    let project = Project::with_images(
        r#"{
  "a.io/x/app:1": "docker.io/team/app",
  "helper.io/x/app:1": "store.io/team/app",
  "pod.io/x/app:1": "gl.io/team/app"
}"#,
    );
    project.write("auth.json", format!(r#"{{"a.io": {CREDS}}}"#));
    let dir = project.dir.path();
    std::fs::create_dir(dir.join("docker")).unwrap();
    let secret_auth = "dXNlcjpTM2NyZXQtSW4tQ29uZmln"; // user:S3cret-In-Config
    std::fs::write(
        dir.join("docker/config.json"),
        format!(
            r#"{{"auths": {{"a.io": {{"auth": "{secret_auth}"}},
                          "https://index.docker.io/v1/": {{"auth": "{secret_auth}"}},
                          "pod.io": {{"auth": "{secret_auth}"}}}},
                "credHelpers": {{"helper.io": "ecr-login"}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("containers-auth.json"),
        format!(r#"{{"auths": {{"pod.io": {{"auth": "{secret_auth}"}}}}}}"#),
    )
    .unwrap();
    let gitlab = format!(r#"{{"auths": {{"gl.io": {{"auth": "{secret_auth}"}}}}}}"#);
    let run = |extra: &[&str]| {
        let mut cmd = project.validate(extra);
        cmd.env("DOCKER_CONFIG", dir.join("docker"))
            .env("REGISTRY_AUTH_FILE", dir.join("containers-auth.json"))
            .env("DOCKER_AUTH_CONFIG", &gitlab);
        cmd
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        sources(&rules_of(&mut run(&["--format", "json"]))),
        [
            // auth.json beats the Docker config; Docker Hub's v1 key is docker.io.
            pair("auth.json", "docker-config"),
            // No credsStore: a registry without a helper falls through to anonymous.
            pair("credential-helper:ecr-login", "anonymous"),
            // The Docker config beats the containers auth file.
            pair("docker-config", "DOCKER_AUTH_CONFIG"),
        ]
    );
    let output = run(&["--no-docker-config"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("S3cret") && !text.contains(secret_auth),
        "{text}"
    );
    assert!(
        text.contains("source auth: a.io, target auth: anonymous"),
        "{text}"
    );
    assert!(!text.contains("docker-config"), "{text}");
    let text = String::from_utf8_lossy(&run(&[]).output().unwrap().stdout).into_owned();
    assert!(
        text.contains("source auth: credential-helper:ecr-login, target auth: anonymous"),
        "{text}"
    );

    // Without the Docker config, the containers auth file is next.
    std::fs::remove_file(dir.join("docker/config.json")).unwrap();
    assert_eq!(
        sources(&rules_of(&mut run(&["--format", "json"])))[2],
        pair("containers-auth", "DOCKER_AUTH_CONFIG")
    );
}
