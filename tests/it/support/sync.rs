//! Run the real `image-migrator` binary the way a CI job does: `auth.json` and
//! `images.json` in a fresh working directory, then read what it left behind — the exit
//! code, the human log, the JSON report (checked against the published schema on every
//! run) and the JUnit file — and what the registries saw (their access logs).
//!
//! [`SyncRun`] is the one way a test starts a sync: [`SyncRun::run`] for a run to its end
//! read as a [`RunResult`], [`SyncRun::command`] for assert_cmd's output and assertions,
//! [`SyncRun::std_command`] for a process the test signals, kills, times or wraps.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::registry::TestRegistry;

/// The file name the binary writes its report to by default.
pub const REPORT: &str = "image-migrator-report.json";

/// One run's setup: the two files, extra flags and environment.
pub struct SyncRun {
    /// Shared with each [`RunResult`], so the directory outlives a temporary `SyncRun`.
    dir: Arc<tempfile::TempDir>,
    auth: serde_json::Map<String, Value>,
    /// `(source, target)` in file order; keys may repeat.
    rules: Vec<(String, Value)>,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    /// The report's file name in the directory ([`REPORT`] unless [`SyncRun::report_to`]).
    report: String,
    /// The JUnit file's name in the directory, when [`SyncRun::junit_to`] asked for one.
    junit: String,
    /// Another build of the binary (`None`: the one under test).
    program: Option<OsString>,
}

impl Default for SyncRun {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncRun {
    pub fn new() -> SyncRun {
        SyncRun {
            dir: Arc::new(tempfile::tempdir().expect("tempdir")),
            auth: serde_json::Map::new(),
            rules: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            report: REPORT.to_string(),
            junit: "junit.xml".to_string(),
            program: None,
        }
    }

    /// Both files from JSON values: `auth` an auth.json object, `images` an object of
    /// source → target.
    pub fn from_json(auth: &Value, images: &Value) -> SyncRun {
        let mut run = SyncRun::new();
        for (key, entry) in auth.as_object().expect("auth.json is an object") {
            run = run.auth(key, entry.clone());
        }
        for (source, target) in images.as_object().expect("images.json is an object") {
            run = run.rule_value(source, target.clone());
        }
        run
    }

    /// The shape a CI job runs: both files from JSON values, then
    /// `sync --report report.json --junit junit.xml` (absolute paths in the directory).
    pub fn ci(auth: &Value, images: &Value) -> SyncRun {
        SyncRun::from_json(auth, images)
            .arg("sync")
            .report_to("report.json")
            .junit_to("junit.xml")
    }

    /// `--report <dir>/<name>`, and the report read from there.
    pub fn report_to(mut self, name: &str) -> SyncRun {
        self.report = name.to_string();
        let path = self.report_path();
        self.arg("--report").arg_os(path)
    }

    /// `--junit <dir>/<name>`.
    pub fn junit_to(mut self, name: &str) -> SyncRun {
        self.junit = name.to_string();
        let path = self.junit_path();
        self.arg("--junit").arg_os(path)
    }

    /// Runs `program` (another build of the binary) instead of the one under test, with the
    /// same cleared environment.
    pub fn program(mut self, program: impl Into<OsString>) -> SyncRun {
        self.program = Some(program.into());
        self
    }

    /// The working directory of the run.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir().join(&self.report)
    }

    pub fn junit_path(&self) -> PathBuf {
        self.dir().join(&self.junit)
    }

    /// The report a [`SyncRun::command`] or [`SyncRun::std_command`] left, checked against
    /// the published schema and for a summary that adds up.
    pub fn report(&self) -> Value {
        let path = self.report_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
        let report = serde_json::from_str(&text).unwrap();
        check_report(&report);
        report
    }

    pub fn report_text(&self) -> String {
        std::fs::read_to_string(self.report_path()).unwrap_or_default()
    }

    pub fn junit_text(&self) -> String {
        std::fs::read_to_string(self.junit_path()).unwrap_or_default()
    }

    /// `"<host>": {"insecure": true}` — an anonymous plain-HTTP test registry.
    pub fn insecure(mut self, host: &str) -> SyncRun {
        self.auth
            .insert(host.to_string(), json!({ "insecure": true }));
        self
    }

    /// Any auth.json entry.
    pub fn auth(mut self, key: &str, entry: Value) -> SyncRun {
        self.auth.insert(key.to_string(), entry);
        self
    }

    /// One images.json rule: `"source": "target"`.
    pub fn rule(mut self, source: &str, target: &str) -> SyncRun {
        self.rules.push((source.to_string(), json!(target)));
        self
    }

    /// One images.json rule with any JSON value as the target (e.g. an array).
    pub fn rule_value(mut self, source: &str, target: Value) -> SyncRun {
        self.rules.push((source.to_string(), target));
        self
    }

    pub fn arg(mut self, arg: &str) -> SyncRun {
        self.args.push(arg.into());
        self
    }

    /// An argument that need not be UTF-8 (a path).
    pub fn arg_os(mut self, arg: impl Into<OsString>) -> SyncRun {
        self.args.push(arg.into());
        self
    }

    /// The same setup (same directory and files) with one more argument, for a
    /// variant of a run (e.g. `--dry-run` before the real one).
    pub fn arg_clone(&self, arg: &str) -> SyncRun {
        let mut args = self.args.clone();
        args.push(arg.into());
        SyncRun {
            dir: self.dir.clone(),
            auth: self.auth.clone(),
            rules: self.rules.clone(),
            args,
            env: self.env.clone(),
            report: self.report.clone(),
            junit: self.junit.clone(),
            program: self.program.clone(),
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> SyncRun {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// images.json as written: one line per rule, so duplicate keys survive.
    pub fn images_json(&self) -> String {
        let lines: Vec<String> = self
            .rules
            .iter()
            .map(|(k, v)| format!("  {}: {}", json!(k), v))
            .collect();
        format!("{{\n{}\n}}\n", lines.join(",\n"))
    }

    /// Writes both files and runs the binary in the directory; the report (when one is
    /// written) is validated against the schema and its summary checked against its
    /// results. The setup stays usable for another run (an incremental re-run).
    pub fn run(&self) -> RunResult {
        let mut cmd = self.std_command();
        let _ = std::fs::remove_file(self.report_path());
        let output = cmd.output().expect("run image-migrator");
        RunResult::new(self.dir.clone(), self.report_path(), output)
    }

    /// Writes both files and returns the command (arguments, environment, directory set)
    /// as a std command, for a process the test signals, kills, times or wraps.
    pub fn std_command(&self) -> Command {
        let dir = self.dir.path();
        std::fs::write(
            dir.join("auth.json"),
            serde_json::to_string_pretty(&Value::Object(self.auth.clone())).unwrap(),
        )
        .expect("write auth.json");
        std::fs::write(dir.join("images.json"), self.images_json()).expect("write images.json");
        let mut cmd = match &self.program {
            Some(program) => super::migrator_at(program),
            None => super::migrator_std(),
        };
        cmd.current_dir(dir).args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The same as an assert_cmd command, for its output and assertions.
    pub fn command(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_command())
    }
}

/// What one run left behind.
pub struct RunResult {
    /// The working directory (kept until the result is dropped).
    pub dir: PathBuf,
    _keep: Arc<tempfile::TempDir>,
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
    /// The JSON report, when one was written (not on configuration errors).
    pub report: Option<Value>,
}

impl RunResult {
    fn new(keep: Arc<tempfile::TempDir>, report: PathBuf, output: Output) -> RunResult {
        let dir = keep.path().to_path_buf();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let code = output.status.code().expect("exited with a code");
        let report = std::fs::read_to_string(report).ok().map(|text| {
            let report: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{text}"));
            check_report(&report);
            report
        });
        RunResult {
            dir,
            _keep: keep,
            code,
            stderr,
            stdout,
            report,
        }
    }

    /// The report; panics (with the log) when none was written.
    pub fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no report written; stderr:\n{}", self.stderr))
    }

    pub fn results(&self) -> &Vec<Value> {
        self.report()["results"].as_array().expect("results")
    }

    pub fn summary(&self) -> &Value {
        &self.report()["summary"]
    }

    /// `summary[name]` as a number.
    pub fn count(&self, name: &str) -> u64 {
        self.summary()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("summary.{name} missing"))
    }

    /// The one result whose target is `target`.
    pub fn result_for(&self, target: &str) -> &Value {
        let found: Vec<&Value> = self
            .results()
            .iter()
            .filter(|r| r["target"] == target)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one result for target {target}, report:\n{}",
            self.pretty()
        );
        found[0]
    }

    /// `(source, target, status)` of every result, sorted.
    pub fn outcomes(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .results()
            .iter()
            .map(|r| {
                (
                    r["source"].as_str().unwrap().to_string(),
                    r["target"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub fn pretty(&self) -> String {
        self.report
            .as_ref()
            .map(|r| serde_json::to_string_pretty(r).unwrap())
            .unwrap_or_else(|| "(no report)".into())
    }

    /// Asserts the exit code, showing the log and report otherwise.
    pub fn assert_code(&self, code: i32) -> &RunResult {
        assert_eq!(
            self.code,
            code,
            "exit code; stderr:\n{}\nreport:\n{}",
            self.stderr,
            self.pretty()
        );
        self
    }

    /// Asserts exit 0 and every result `status`.
    pub fn assert_all(&self, status: &str) -> &RunResult {
        self.assert_code(0);
        for r in self.results() {
            assert_eq!(r["status"], status, "{}", self.pretty());
            assert!(r["error"].is_null(), "{}", self.pretty());
        }
        self
    }

    /// Text of a file the run wrote into its directory.
    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|e| panic!("{name} not written: {e}; stderr:\n{}", self.stderr))
    }
}

/// The published schema, compiled once.
fn schema_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("schema file"))
                .expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    })
}

/// The report is valid against the schema and its summary adds up.
pub fn check_report(report: &Value) {
    let errors: Vec<String> = schema_validator()
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not validate against schema/report.schema.json: {errors:#?}\n{report:#}"
    );
    let results = report["results"].as_array().unwrap();
    let summary = &report["summary"];
    assert_eq!(summary["total"], results.len(), "summary.total");
    for (field, status) in [
        ("copied", "copied"),
        ("unchanged", "unchanged"),
        ("failed", "failed"),
        ("would_copy", "would-copy"),
        ("cancelled", "cancelled"),
        ("drifted", "drifted"),
        ("immutable", "immutable"),
    ] {
        let n = results.iter().filter(|r| r["status"] == status).count();
        assert_eq!(summary[field], n, "summary.{field}\n{report:#}");
    }
    for field in [
        "bytes_transferred",
        "blobs_transferred",
        "blobs_mounted",
        "blobs_skipped",
    ] {
        let sum: u64 = results.iter().map(|r| r[field].as_u64().unwrap()).sum();
        assert_eq!(summary[field], sum, "summary.{field}\n{report:#}");
    }
    for r in results {
        let failed = r["status"] == "failed";
        assert_eq!(
            !r["error"].is_null(),
            failed || r["status"] == "cancelled" || r["status"] == "immutable",
            "error present exactly on failures (and on refusals of an immutable tag): {r:#}"
        );
    }
}

/// One line of a registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub status: u16,
    pub user_agent: String,
}

impl Access {
    /// Requests the product sent (not the seeder's or skopeo's).
    pub fn by_migrator(&self) -> bool {
        self.user_agent.starts_with("image-migrator/")
    }

    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.uri.contains("/blobs/sha256:")
    }

    pub fn is_manifest(&self) -> bool {
        self.uri.contains("/manifests/")
    }

    pub fn is_tag_list(&self) -> bool {
        self.uri.contains("/tags/list")
    }

    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE")
    }
}

/// The registry's access log, parsed (`… "GET /v2/x HTTP/1.1" 200 12 "" "agent"`),
/// once it has stopped growing (log lines are written after the response is sent).
pub fn access_log(reg: &TestRegistry) -> Vec<Access> {
    let mut last = reg.logs();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        let now = reg.logs();
        if now == last {
            break;
        }
        last = now;
    }
    last.lines().filter_map(parse_access).collect()
}

/// The product's requests to `reg` after the first `skip` access-log lines.
pub fn migrator_requests_since(reg: &TestRegistry, skip: usize) -> Vec<Access> {
    access_log(reg)
        .into_iter()
        .skip(skip)
        .filter(Access::by_migrator)
        .collect()
}

fn parse_access(line: &str) -> Option<Access> {
    // 172.17.0.1 - - [29/Nov/2026:01:39:31 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once('"')?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_string();
    let uri = parts.next()?.to_string();
    let status = rest.trim_start().split(' ').next()?.parse().ok()?;
    let user_agent = rest.rsplit('"').nth(1)?.to_string();
    Some(Access {
        method,
        uri,
        status,
        user_agent,
    })
}

/// Run skopeo; a hard requirement (ci/lib.sh installs it), never a silent skip.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo ({e}): install it"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An independent client agrees that `host/repo:tag` (or `@digest`) is `digest`:
/// `skopeo inspect` reports it, and the raw manifest hashes to it.
/// `creds` is `user:password` for registries with auth.
pub fn assert_skopeo_digest(image: &str, digest: &str, creds: Option<&str>) {
    let reference = format!("docker://{image}");
    let mut args = vec!["inspect", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    let raw_args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--raw", reference.as_str()])
        .collect();
    let raw = skopeo(&raw_args);
    assert_eq!(
        super::seed::sha256_digest(raw.as_bytes()),
        digest,
        "skopeo inspect --raw {image}"
    );
    // --no-tags: a repository holding only untagged manifests has no tag list.
    args.extend(["--no-tags", reference.as_str()]);
    let info: Value = serde_json::from_str(&skopeo(&args)).expect("skopeo json");
    assert_eq!(info["Digest"], digest, "skopeo inspect {image}: {info}");
}
