//! A user makes mistakes in images.json or auth.json: `validate` (and `sync`, which checks
//! the same way first) reports every one of them together, each with the file, the line and
//! the key, exits 2, and never shows a secret.

use crate::support;

use support::project::{Project, config_error};

const GOOD_RULE: &str = r#""quay.io/coreos/etcd:3.5.0": "r.example.com/ns/etcd""#;

fn images_error(images: impl AsRef<[u8]>) -> String {
    let project = Project::new();
    project.write("images.json", images);
    config_error(&mut project.validate(&[]))
}

#[test]
fn all_problems_of_both_files_are_reported_together_with_file_line_and_key() {
    let project = Project::with_images(
        r#"{
  "quay.io/coreos/etcd:3.5.0": "r.example.com/ns/etcd",
  "nginx:1.25,,1.26": "r.example.com/ns/nginx",
  "quay.io/coreos/etcd": "r.example.com/ns/etcd:latest",
  "quay.io/coreos/etcd:3.4.0": "r.example.com/ns/etcd"
}"#,
    );
    project.write(
        "auth.json",
        "{\n  \"r.example.com\": {\"pasword\": \"x\"}\n}",
    );
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.starts_with("error: configuration is invalid (3 problems); nothing was copied:\n"),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().skip(1).map(str::trim).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("auth.json:2: \"r.example.com\": unknown field `pasword`"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("images.json:3: \"nginx:1.25,,1.26\": "),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("images.json:4: \"quay.io/coreos/etcd\": "),
        "{stderr}"
    );
}

#[test]
fn sync_refuses_the_same_configuration_before_copying_anything() {
    let project = Project::with_images("{\n  \"quay.io\": \"r.example.com/ns/nginx\"\n}");
    let mut cmd = project.validate(&[]);
    // Same command without the subcommand = sync; it must stop at the configuration.
    let mut sync = support::migrator();
    sync.current_dir(project.dir.path());
    let validate_err = config_error(&mut cmd);
    let sync_err = config_error(&mut sync);
    assert_eq!(validate_err, sync_err);
    assert!(
        !project
            .dir
            .path()
            .join("image-migrator-report.json")
            .exists(),
        "no report is written for an invalid configuration"
    );
}

#[test]
fn errors_in_a_list_point_at_the_item_in_file_order() {
    let stderr = images_error(
        r#"{
  "quay.io/coreos/etcd:3.5.0": [
    "r.example.com/ns/etcd",
    "r.example.com/NS/etcd",
    42
  ]
}"#,
    );
    let lines: Vec<&str> = stderr.lines().skip(1).map(str::trim).collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("images.json:4: \"quay.io/coreos/etcd:3.5.0\": → \"r.example.com/NS/etcd\": target: repository name must be lowercase"), "{stderr}");
    assert_eq!(
        lines[1],
        "images.json:5: \"quay.io/coreos/etcd:3.5.0\": every item of a target list must be a string"
    );
}

#[test]
fn a_trailing_comma_is_reported_on_its_own_line_not_the_closing_brace() {
    // After the last rule.
    let stderr = images_error(format!("{{\n  {GOOD_RULE},\n  {GOOD_RULE},\n\n}}\n"));
    assert!(
        stderr.contains("images.json:3: invalid JSON: trailing comma (column 55)"),
        "{stderr}"
    );
    // After the last item of a list of targets.
    let stderr = images_error(
        "{\n  \"quay.io/coreos/etcd:3.5.0\": [\n    \"r.example.com/ns/etcd\",\n  ]\n}",
    );
    assert!(
        stderr.contains("images.json:3: invalid JSON: trailing comma"),
        "{stderr}"
    );
    // After the last field of an auth.json entry.
    let project = Project::with_images(format!("{{{GOOD_RULE}}}").as_str());
    project.write(
        "auth.json",
        "{\n  \"r.example.com\": {\n    \"insecure\": true,\n  }\n}",
    );
    let stderr = config_error(&mut project.validate(&[]));
    assert!(
        stderr.contains("auth.json:3: invalid JSON: trailing comma"),
        "{stderr}"
    );
}

#[test]
fn a_comment_is_reported_on_its_line() {
    let stderr = images_error(format!("{{\n  // mirror etcd\n  {GOOD_RULE}\n}}\n"));
    assert!(stderr.contains("images.json:2: invalid JSON"), "{stderr}");
}

#[test]
fn a_missing_comma_is_reported_on_the_next_line() {
    let stderr = images_error(format!("{{\n  {GOOD_RULE}\n  {GOOD_RULE}\n}}\n"));
    assert!(
        stderr.contains("images.json:3: invalid JSON: expected `,` or `}`"),
        "{stderr}"
    );
}

#[test]
fn a_syntax_error_in_auth_json_gives_its_line() {
    let project = Project::with_images(format!("{{{GOOD_RULE}}}").as_str());
    project.write(
        "auth.json",
        "{\n  \"r.example.com\": {\n    \"username\": \"u\"\n    \"password\": \"p\"\n  }\n}",
    );
    let stderr = config_error(&mut project.validate(&[]));
    assert!(stderr.contains("auth.json:4: invalid JSON"), "{stderr}");
}

#[test]
fn an_empty_file_is_an_error() {
    for content in ["", "  \n\n"] {
        let stderr = images_error(content);
        assert!(stderr.contains("images.json: is empty"), "{stderr}");
    }
    let project = Project::with_images(format!("{{{GOOD_RULE}}}").as_str());
    project.write("auth.json", "");
    let stderr = config_error(&mut project.validate(&[]));
    assert!(stderr.contains("auth.json: is empty"), "{stderr}");
}

#[test]
fn an_object_without_rules_is_an_error() {
    let stderr = images_error("{}");
    assert!(stderr.contains("images.json: has no rules"), "{stderr}");
}

#[test]
fn an_array_instead_of_an_object_is_an_error() {
    let stderr = images_error(r#"["quay.io/coreos/etcd:3.5.0"]"#);
    assert!(
        stderr.contains("images.json:1: the top level must be a JSON object"),
        "{stderr}"
    );
}

#[test]
fn a_byte_order_mark_is_an_error() {
    let mut content = vec![0xEF, 0xBB, 0xBF];
    content.extend(format!("{{{GOOD_RULE}}}").bytes());
    let stderr = images_error(content);
    assert!(
        stderr.contains("images.json: starts with a UTF-8 byte order mark"),
        "{stderr}"
    );
}

#[test]
fn invalid_utf8_is_reported_on_its_line() {
    let mut content = format!("{{\n  {GOOD_RULE},\n  \"quay.io/coreos/").into_bytes();
    content.extend([0xFF, 0xFE]);
    content.extend(b"etcd\": \"r.example.com/ns/etcd\"\n}\n");
    let stderr = images_error(content);
    assert!(
        stderr.contains("images.json:3: is not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_target_with_a_digest_is_refused() {
    let stderr = images_error(
        "{\n  \"quay.io/coreos/etcd:3.5.0\": \"r.example.com/ns/etcd@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n}",
    );
    assert!(
        stderr.contains("images.json:2: \"quay.io/coreos/etcd:3.5.0\""),
        "{stderr}"
    );
    assert!(stderr.contains("a target cannot name a digest"), "{stderr}");
}

#[test]
fn an_uppercase_repository_is_refused_on_either_side() {
    let stderr = images_error(
        "{\n  \"quay.io/CoreOS/etcd:3.5.0\": \"r.example.com/ns/etcd\",\n  \"quay.io/coreos/etcd:3.5.0\": \"r.example.com/ns/Etcd\"\n}",
    );
    assert!(stderr.contains("images.json:2: \"quay.io/CoreOS/etcd:3.5.0\": → \"r.example.com/ns/etcd\": source: repository name must be lowercase"), "{stderr}");
    assert!(stderr.contains("images.json:3: \"quay.io/coreos/etcd:3.5.0\": → \"r.example.com/ns/Etcd\": target: repository name must be lowercase"), "{stderr}");
}

#[test]
fn a_tag_longer_than_128_characters_is_refused() {
    let ok = "a".repeat(128);
    let project = Project::with_images(&format!(
        r#"{{"quay.io/coreos/etcd:{ok}": "r.example.com/ns/etcd"}}"#
    ));
    project.validate(&[]).assert().success();

    let long = "a".repeat(129);
    let stderr = images_error(format!(
        r#"{{"quay.io/coreos/etcd:{long}": "r.example.com/ns/etcd"}}"#
    ));
    assert!(
        stderr.contains("tag is longer than 128 characters"),
        "{stderr}"
    );
    let stderr = images_error(format!(
        r#"{{"quay.io/coreos/etcd:1": "r.example.com/ns/etcd:{long}"}}"#
    ));
    assert!(stderr.contains("target: "), "{stderr}");
    assert!(
        stderr.contains("tag is longer than 128 characters"),
        "{stderr}"
    );
}

#[test]
fn a_target_that_is_not_a_string_is_refused() {
    for (value, kind) in [("5", "a number"), ("true", "a boolean"), ("null", "null")] {
        let stderr = images_error(format!("{{\n  \"quay.io/coreos/etcd:3.5.0\": {value}\n}}"));
        assert!(
            stderr.contains(&format!("images.json:2: \"quay.io/coreos/etcd:3.5.0\": the target must be a string or a list of strings, not {kind}")),
            "{value}: {stderr}"
        );
    }
}

#[test]
fn an_empty_list_of_targets_is_refused() {
    let stderr = images_error("{\n  \"quay.io/coreos/etcd:3.5.0\": []\n}");
    assert!(
        stderr
            .contains("images.json:2: \"quay.io/coreos/etcd:3.5.0\": the list of targets is empty"),
        "{stderr}"
    );
}

#[test]
fn the_images_file_can_be_named_and_is_named_in_errors() {
    let project = Project::new();
    std::fs::create_dir(project.dir.path().join("ci")).unwrap();
    project.write(
        "ci/rules.json",
        "{\n  \"quay.io\": \"r.example.com/ns/nginx\"\n}",
    );
    let stderr = config_error(&mut project.validate(&["--images", "ci/rules.json"]));
    assert!(stderr.contains("ci/rules.json:2: \"quay.io\""), "{stderr}");

    let stderr = config_error(&mut project.validate(&["--images", "nope.json"]));
    assert!(stderr.contains("nope.json: cannot read"), "{stderr}");
}

#[test]
fn no_secret_value_ever_appears_in_the_output() {
    const SECRETS: [&str; 4] = [
        "S3CRET-VALUE-123",
        "S3CRET-USER-456",
        "S3CRET-LITERAL-789",
        "424242424242",
    ];
    let env = |cmd: &mut assert_cmd::Command| {
        cmd.env("REG_USER", SECRETS[1]).env("REG_PASS", SECRETS[0]);
    };
    let images = format!("{{\n  {GOOD_RULE},\n  \"quay.io/coreos/etcd:3.4.0\": \"\"\n}}");

    // Valid configuration, both formats.
    let project = Project::with_images(&images);
    project.write(
        "auth.json",
        format!(
            r#"{{"r.example.com": {{"username": "${{REG_USER}}", "password": "$REG_PASS"}},
"quay.io": {{"username": "u", "password": "{}"}}}}"#,
            SECRETS[2]
        ),
    );
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let mut cmd = project.validate(&[
            "--format",
            format,
            "--registry",
            "r.example.com",
            "--namespace",
            "ns",
        ]);
        env(&mut cmd);
        let output = cmd.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        outputs.push(output);
    }

    // Invalid configuration: an unset variable next to set ones, a typo, a value of the wrong type.
    project.write(
        "auth.json",
        format!(
            "{{\n\"r.example.com\": {{\"username\": \"${{REG_USER}}\", \"password\": \"$REG_PASS-${{NOT_SET_ANYWHERE}}\"}},\n\
             \"quay.io\": {{\"username\": \"u\", \"pasword\": \"{}\"}},\n\
             \"ghcr.io\": {{\"username\": \"u\", \"password\": {}}},\n\
             \"docker.io\": \"{}\"\n}}",
            SECRETS[2], SECRETS[3], SECRETS[2]
        ),
    );
    let mut cmd = project.validate(&[]);
    env(&mut cmd);
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains("(5 problems)"),
        "every problem is reported: {stderr}"
    );
    assert!(stderr.contains("NOT_SET_ANYWHERE"), "{stderr}");
    outputs.push(output);

    for output in &outputs {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            for secret in SECRETS {
                assert!(!text.contains(secret), "{secret} leaked:\n{text}");
            }
        }
    }
}

/// A proxy variable that is not a proxy URL: validate and sync both stop at it, naming the
/// variable and never its value (which may hold the proxy's password).
#[test]
fn a_proxy_variable_that_is_not_a_url_is_a_configuration_error() {
    let project = Project::with_images(&format!("{{\n  {GOOD_RULE}\n}}"));
    let bad = "http://user:Pr0xy-Secret@[broken";
    let mut validate = project.validate(&[]);
    validate.env("https_proxy", bad);
    let stderr = config_error(&mut validate);
    assert!(
        stderr.contains("environment: HTTPS_PROXY (or https_proxy): not a proxy URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("Pr0xy-Secret"), "{stderr}");
    let mut sync = support::migrator();
    sync.current_dir(project.dir.path()).env("https_proxy", bad);
    assert_eq!(config_error(&mut sync), stderr);
}
