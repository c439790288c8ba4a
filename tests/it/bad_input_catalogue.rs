//! A catalogue of malformed and hostile `auth.json`, `images.json` and flags. Every case
//! must end with exit code 2, a message that says what is wrong, and not a single
//! connection to any registry: the rules point at a canary listener that counts them.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support;

/// A TCP listener on loopback that counts connection attempts.
struct Canary {
    host: String,
    connections: Arc<AtomicUsize>,
}

impl Canary {
    fn start() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Canary { host, connections }
    }
}

enum Content {
    Text(String),
    Bytes(Vec<u8>),
    Missing,
}

struct Case {
    name: &'static str,
    auth: Content,
    images: Content,
    args: Vec<String>,
    expect: &'static str,
    /// Another file written in the project (a YAML or --config file), name and content.
    extra_file: Option<(&'static str, String)>,
}

/// An expected message built at run time (it names the canary's address).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn text(s: impl Into<String>) -> Content {
    Content::Text(s.into())
}

fn run_case(canary: &Canary, case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [("auth.json", &case.auth), ("images.json", &case.images)] {
        match content {
            Content::Text(t) => std::fs::write(dir.path().join(name), t).unwrap(),
            Content::Bytes(b) => std::fs::write(dir.path().join(name), b).unwrap(),
            Content::Missing => {}
        }
    }
    if let Some((name, content)) = &case.extra_file {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let before = canary.connections.load(Ordering::SeqCst);
    let output = support::migrator()
        .current_dir(dir.path())
        .env("CATALOGUE_USER", "catalogue-user")
        .args(&case.args)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "case {:?}: expected exit 2, stderr:\n{stderr}",
        case.name
    );
    assert!(
        stderr.contains(case.expect),
        "case {:?}: expected {:?} in stderr:\n{stderr}",
        case.name,
        case.expect
    );
    assert!(
        !dir.path().join("image-migrator-report.json").exists(),
        "case {:?}: a report was written for a configuration error",
        case.name
    );
    // Give a stray connection time to be counted before comparing.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        canary.connections.load(Ordering::SeqCst),
        before,
        "case {:?}: a connection reached the registry",
        case.name
    );
}

#[test]
fn every_bad_input_is_refused_before_any_request() {
    let canary = Canary::start();
    let h = canary.host.clone();
    let good_auth = || text(format!(r#"{{"{h}": {{"insecure": true}}}}"#));
    let good_images = || text(format!(r#"{{"{h}/team/app:1.0": "{h}/mirror/app"}}"#));
    let auth_case = |name, auth: Content, expect| Case {
        name,
        auth,
        images: good_images(),
        args: vec![],
        expect,
        extra_file: None,
    };
    let images_case = |name, images: Content, expect| Case {
        name,
        auth: good_auth(),
        images,
        args: vec![],
        expect,
        extra_file: None,
    };
    let flag_case = |name, args: &[&str], expect| Case {
        name,
        auth: good_auth(),
        images: good_images(),
        args: args.iter().map(|a| a.to_string()).collect(),
        expect,
        extra_file: None,
    };
    // A file in another format (YAML, --config), passed with `args`.
    let file_case = |name, file: &'static str, content: String, args: &[&str], expect| Case {
        name,
        auth: good_auth(),
        images: good_images(),
        args: args.iter().map(|a| a.to_string()).collect(),
        expect,
        extra_file: Some((file, content)),
    };
    let huge = format!(
        "{{\"{h}\": {{}}, \"x\": \"{}\"}}",
        "a".repeat(17 * 1024 * 1024)
    );

    let cases = vec![
        // auth.json
        auth_case("auth empty file", text(""), "is empty"),
        auth_case("auth whitespace only", text("  \n\t\n"), "is empty"),
        auth_case("auth array", text("[]"), "top level must be a JSON object"),
        auth_case(
            "auth string",
            text("\"registry\""),
            "top level must be a JSON object",
        ),
        auth_case(
            "auth invalid utf-8",
            Content::Bytes(b"{\"\xff\xfe\": {}}".to_vec()),
            "not valid UTF-8",
        ),
        auth_case(
            "auth BOM",
            Content::Bytes([&[0xEF, 0xBB, 0xBF][..], b"{}"].concat()),
            "byte order mark",
        ),
        auth_case(
            "auth comment",
            text(format!("{{\n// creds\n\"{h}\": {{}}\n}}")),
            "auth.json:2",
        ),
        auth_case(
            "auth trailing comma",
            text(format!("{{\n\"{h}\": {{}},\n}}")),
            "auth.json:2",
        ),
        auth_case(
            "auth unknown field",
            text(format!("{{\n\"{h}\": {{\"pasword\": \"x\"}}\n}}")),
            "unknown field `pasword`",
        ),
        auth_case(
            "auth number username",
            text(format!(r#"{{"{h}": {{"username": 1234}}}}"#)),
            "invalid type",
        ),
        auth_case(
            "auth string insecure",
            text(format!(r#"{{"{h}": {{"insecure": "yes"}}}}"#)),
            "invalid type",
        ),
        auth_case(
            "auth entry not an object",
            text(format!(r#"{{"{h}": "user:pass"}}"#)),
            "invalid type",
        ),
        auth_case(
            "auth key with scheme",
            text(r#"{"https://quay.io": {}}"#),
            "URL scheme",
        ),
        auth_case(
            "auth key with userinfo",
            text(r#"{"user@quay.io": {}}"#),
            "user information",
        ),
        auth_case(
            "auth key with space",
            text(r#"{"quay .io": {}}"#),
            "whitespace",
        ),
        auth_case(
            "auth key uppercase namespace",
            text(r#"{"quay.io/Team": {}}"#),
            "lowercase",
        ),
        auth_case(
            "auth key not a host",
            text(r#"{"myregistry": {}}"#),
            "registry host",
        ),
        auth_case(
            "auth duplicate key",
            text(format!("{{\n\"{h}\": {{}},\n\"{h}\": {{}}\n}}")),
            "duplicate entry",
        ),
        auth_case(
            "auth unset variable",
            text(format!(
                r#"{{"{h}": {{"password": "${{CATALOGUE_UNSET_VAR}}"}}}}"#
            )),
            "CATALOGUE_UNSET_VAR is not set",
        ),
        auth_case(
            "auth unterminated variable",
            text(format!(r#"{{"{h}": {{"password": "${{CATALOGUE_USER"}}}}"#)),
            "unterminated",
        ),
        auth_case(
            "auth proxy not a proxy URL",
            text(format!(
                r#"{{"{h}": {{"proxy": "ftp://user:Pr0xyPass@x"}}}}"#
            )),
            "proxy: not a proxy URL",
        ),
        auth_case(
            "auth proxy not a string",
            text(format!(r#"{{"{h}": {{"proxy": 3128}}}}"#)),
            "invalid type",
        ),
        auth_case("auth huge file", text(huge), "larger than"),
        auth_case("auth explicit missing", Content::Missing, "auth.json"),
        // images.json
        images_case("images empty file", text(""), "is empty"),
        images_case(
            "images array",
            text(format!(r#"["{h}/a/b"]"#)),
            "top level must be a JSON object",
        ),
        images_case("images no rules", text("{}"), "has no rules"),
        images_case(
            "images invalid utf-8",
            Content::Bytes(b"{\"a\xc3\x28\": \"\"}".to_vec()),
            "not valid UTF-8",
        ),
        images_case(
            "images BOM",
            Content::Bytes([&[0xEF, 0xBB, 0xBF][..], b"{}"].concat()),
            "byte order mark",
        ),
        images_case(
            "images comment",
            text(format!("{{\n/* rule */\n\"{h}/a/b:1\": \"{h}/c/d\"\n}}")),
            "images.json:2",
        ),
        images_case(
            "images trailing comma",
            text(format!("{{\n\"{h}/a/b:1\": \"{h}/c/d\",\n}}")),
            "images.json:2",
        ),
        images_case(
            "images number target",
            text(format!(r#"{{"{h}/a/b:1": 5}}"#)),
            "string or a list of strings",
        ),
        images_case(
            "images null target",
            text(format!(r#"{{"{h}/a/b:1": null}}"#)),
            "not null",
        ),
        images_case(
            "images empty list",
            text(format!(r#"{{"{h}/a/b:1": []}}"#)),
            "empty",
        ),
        images_case(
            "images list with number",
            text(format!(r#"{{"{h}/a/b:1": ["{h}/c/d", 3]}}"#)),
            "must be a string",
        ),
        images_case(
            "images empty source",
            text(format!(r#"{{"": "{h}/c/d"}}"#)),
            "must not be empty",
        ),
        images_case(
            "images a registry as the source",
            text(format!(r#"{{"{h}": "{h}/c/nginx"}}"#)),
            "names a registry, not a repository",
        ),
        images_case(
            "images empty item in a tag list",
            text(format!("{{\n\"{h}/a/b:v1,,v2\": \"{h}/c/d\"\n}}")),
            leak(format!(
                "images.json:2: \"{h}/a/b:v1,,v2\": → \"{h}/c/d\": source: the tag list \"v1,,v2\" has an empty item"
            )),
        ),
        images_case(
            "images tag list count mismatch",
            text(format!("{{\n\"{h}/a/b:v1,v2\": \"{h}/c/d:n1,n2,n3\"\n}}")),
            leak(format!(
                "images.json:2: \"{h}/a/b:v1,v2\": → \"{h}/c/d:n1,n2,n3\": the source names 2 tag(s) and the target 3"
            )),
        ),
        images_case(
            "images regex that does not compile",
            text(format!("{{\n\"{h}/a/b:/v(1/\": \"{h}/c/d\"\n}}")),
            leak(format!(
                "images.json:2: \"{h}/a/b:/v(1/\": → \"{h}/c/d\": source: the regular expression /v(1/ does not compile"
            )),
        ),
        images_case(
            "images unset variable in a key",
            text(format!(
                "{{\n\"${{NOT_SET_ANYWHERE}}/a/b\": \"{h}/c/d\"\n}}"
            )),
            "images.json:2: \"${NOT_SET_ANYWHERE}/a/b\": source: environment variable NOT_SET_ANYWHERE is not set",
        ),
        images_case(
            "images latest 0",
            text(format!(
                "{{\n\"{h}/a/b\": {{\"target\": \"{h}/c/d\", \"tags\": {{\"latest\": 0}}}}\n}}"
            )),
            leak(format!(
                "images.json:2: \"{h}/a/b\": \"tags\".latest must be at least 1"
            )),
        ),
        images_case(
            "images semver range that does not parse",
            text(format!(
                "{{\n\"{h}/a/b\": {{\"target\": \"{h}/c/d\", \"tags\": {{\"semver\": \">=x.y\"}}}}\n}}"
            )),
            leak(format!(
                "images.json:2: \"{h}/a/b\": \"tags\".semver \">=x.y\" is not a semver range"
            )),
        ),
        images_case(
            "images object rule key with a tag",
            text(format!(
                "{{\n\"{h}/a/b:1.0\": {{\"target\": \"{h}/c/d\", \"tags\": {{\"latest\": 2}}}}\n}}"
            )),
            leak(format!(
                "images.json:2: \"{h}/a/b:1.0\": a rule with a \"tags\" object selects among all tags, so its key must be a repository without a tag"
            )),
        ),
        images_case(
            "images unknown field in tags",
            text(format!(
                r#"{{"{h}/a/b": {{"target": "{h}/c/d", "tags": {{"lastest": 2}}}}}}"#
            )),
            "unknown field `lastest`",
        ),
        images_case(
            "images unknown field in a rule object",
            text(format!(r#"{{"{h}/a/b": {{"targte": "{h}/c/d"}}}}"#)),
            "unknown field \"targte\"",
        ),
        file_case(
            "yaml images invalid",
            "images.yaml",
            format!("{h}/a/b: {h}/c/d\n{h}/a/e: [x\n"),
            &["--images", "images.yaml"],
            "images.yaml:",
        ),
        file_case(
            "yaml images empty tag list item",
            "images.yaml",
            format!("# rules\n{h}/a/b:v1,,v2: {h}/c/d\n"),
            &["--images", "images.yaml"],
            "images.yaml:2: ",
        ),
        file_case(
            "yaml auth unknown field",
            "auth.yml",
            format!("{h}:\n  insecure: true\n  pasword: x\n"),
            &["--auth", "auth.yml"],
            "auth.yml:3: ",
        ),
        file_case(
            "config with --images",
            "config.yaml",
            format!("images:\n  {h}/a/b: {h}/c/d\n"),
            &["--config", "config.yaml", "--images", "images.json"],
            "cannot be used with",
        ),
        file_case(
            "config unknown top-level key",
            "config.yaml",
            format!("auth: {{}}\nimage:\n  {h}/a/b: {h}/c/d\n"),
            &["--config", "config.yaml"],
            "config.yaml:2: \"image\": unknown top-level key",
        ),
        file_case(
            "config bad rule",
            "config.json",
            format!("{{\"images\": {{\n  \"{h}/a/b:1\": \"{h}/c/d:2,3\"\n}}}}"),
            &["--config", "config.json"],
            "config.json:2: ",
        ),
        images_case(
            "images space in reference",
            text(format!(r#"{{"{h}/a/b :1": "{h}/c/d"}}"#)),
            "whitespace",
        ),
        images_case(
            "images CRLF inside a reference",
            text(format!("{{\"{h}/a/b:1\\r\\n\": \"{h}/c/d\"}}")),
            "control character",
        ),
        images_case(
            "images dot-dot",
            text(format!(r#"{{"{h}/a/../b:1": "{h}/c/d"}}"#)),
            "path component",
        ),
        images_case(
            "images URL scheme",
            text(format!(r#"{{"https://{h}/a/b:1": "{h}/c/d"}}"#)),
            "URL scheme",
        ),
        images_case(
            "images userinfo",
            text(format!(r#"{{"user:pw@{h}/a/b:1": "{h}/c/d"}}"#)),
            "invalid",
        ),
        images_case(
            "images uppercase",
            text(format!(r#"{{"{h}/Team/app:1": "{h}/c/d"}}"#)),
            "lowercase",
        ),
        images_case(
            "images long tag",
            text(format!(r#"{{"{h}/a/b:{}": "{h}/c/d"}}"#, "t".repeat(129))),
            "128",
        ),
        images_case(
            "images long name",
            text(format!(r#"{{"{h}/a/{}:1": "{h}/c/d"}}"#, "n".repeat(260))),
            "255",
        ),
        images_case(
            "images bad digest",
            text(format!(r#"{{"{h}/a/b@sha256:abc": "{h}/c/d"}}"#)),
            "64 hex",
        ),
        images_case(
            "images target digest",
            text(format!(
                r#"{{"{h}/a/b:1": "{h}/c/d@sha256:{}"}}"#,
                "a".repeat(64)
            )),
            "cannot name a digest",
        ),
        images_case(
            "images tagged target of all tags",
            text(format!(r#"{{"{h}/a/b": "{h}/c/d:1"}}"#)),
            "must not have one",
        ),
        images_case(
            "images empty target without defaults",
            text(format!(r#"{{"{h}/a/b:1": ""}}"#)),
            "--default-registry",
        ),
        images_case(
            "images bad port",
            text(r#"{"quay.io:99999/a/b:1": "quay.io/c/d"}"#),
            "port",
        ),
        images_case("images missing", Content::Missing, "images.json"),
        // flags
        flag_case("flag --proc 0", &["--proc", "0"], "--proc"),
        flag_case(
            "flag --retries not a number",
            &["--retries", "many"],
            "--retries",
        ),
        flag_case(
            "flag --default-registry with scheme",
            &[
                "--default-registry",
                "https://swr.example.com",
                "--default-namespace",
                "x",
            ],
            "URL scheme",
        ),
        flag_case(
            "flag --default-namespace uppercase",
            &[
                "--default-registry",
                "swr.example.com",
                "--default-namespace",
                "Team",
            ],
            "lowercase",
        ),
        flag_case(
            "flag --ca-file missing",
            &["--ca-file", "/nonexistent/ca.pem"],
            "/nonexistent/ca.pem",
        ),
        flag_case(
            "flag --ca-file not PEM",
            &["--ca-file", "images.json"],
            "no PEM certificate found",
        ),
        flag_case(
            "flag --platform without arch",
            &["--platform", "linux"],
            "os/arch",
        ),
        flag_case("flag --shard out of range", &["--shard", "3/2"], "K/N"),
        flag_case("flag unknown", &["--pasword", "x"], "--pasword"),
    ];
    assert!(cases.len() >= 40, "the catalogue has {} cases", cases.len());
    for mut case in cases {
        if case.name == "auth explicit missing" {
            case.args = vec!["--auth".into(), "auth.json".into()];
        }
        run_case(&canary, &case);
    }
}

#[test]
fn the_canary_does_count_connections() {
    // Guards the catalogue: a valid configuration pointing at the canary does connect.
    let canary = Canary::start();
    let h = canary.host.clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("auth.json"),
        format!(r#"{{"{h}": {{"insecure": true}}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("images.json"),
        format!(r#"{{"{h}/team/app:1.0": "{h}/mirror/app"}}"#),
    )
    .unwrap();
    let output = support::migrator()
        .current_dir(dir.path())
        .args(["--retries", "0"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(canary.connections.load(Ordering::SeqCst) > 0);
}
