//! A broken or hostile source registry cannot hang, crash or exhaust the tool: for each
//! misbehaviour of `support::hostile_registry`, the run ends within a wall-time bound with
//! exit code 1, the bad image or rule failed with an error naming the problem, the other
//! rule (from a real registry) copied, and the process's peak memory bounded.

use crate::support;

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::hostile_registry::{Behaviour, HostileRegistry, REPO, TAG, bad_tag_names};
use support::migrator::{result_for, seed_images};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;

/// Short bounds, so that each test takes seconds.
const FAST_BOUNDS: [&str; 8] = [
    "--retries",
    "1",
    "--request-timeout",
    "3s",
    "--min-speed",
    "1024",
    "--min-speed-window",
    "2s",
];
/// What no run here may exceed (a few seconds each when healthy; CI machines are slow).
const WALL_BOUND: Duration = Duration::from_secs(45);
/// Peak resident memory of the process: well above a normal run here (14–18 MiB), far below
/// what reading an endless body would take.
const MEMORY_BOUND_MIB: f64 = 64.0;
/// The watchdog kills a run that outlives this (the test then fails on the wall bound).
const KILL_AFTER: Duration = Duration::from_secs(120);

struct Run {
    code: Option<i32>,
    wall: Duration,
    peak_rss_mib: f64,
    output: String,
}

/// Runs `sync` in `work` with `args`. The peak RSS is the process's own `VmHWM`, polled
/// from `/proc/<pid>/status` until it exits: `wait4`'s `ru_maxrss` would be no use, as it
/// counts the test process's memory too (the child shares it between spawn and exec:
/// measured at ~190 MiB for a run whose own peak is 15 MiB).
fn run(work: &SyncRun, args: &[&str]) -> Run {
    let mut cmd = work.std_command();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let reaped = Arc::new(AtomicBool::new(false));
    let watchdog_reaped = reaped.clone();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + KILL_AFTER;
        let mut peak_kib = 0u64;
        while !watchdog_reaped.load(Ordering::SeqCst) {
            peak_kib = peak_kib.max(high_water_mark_kib(pid).unwrap_or(0));
            if Instant::now() > deadline {
                // SAFETY: signalling the child this test started, which is not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak_kib
    });
    let status = child.wait().unwrap();
    reaped.store(true, Ordering::SeqCst);
    let peak_kib = watchdog.join().unwrap();
    assert!(peak_kib > 0, "VmHWM was never read");
    let wall = started.elapsed();
    let code = status.code();
    let output = format!("{}{}", stdout.join().unwrap(), stderr.join().unwrap());
    eprintln!(
        "run: exit {code:?} in {wall:.1?}, peak RSS {:.1} MiB",
        peak_kib as f64 / 1024.0
    );
    Run {
        code,
        wall,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        output,
    }
}

/// `VmHWM` (peak resident set, KiB) of a running process.
fn high_water_mark_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A real registry with `src/good:one`, and a run of a rule from `hostile` next to the rule
/// that copies it. `bad_rule` is the images.json key of the hostile source.
struct Scene {
    registry: TestRegistry,
    seeder: Seeder,
    good_digest: String,
    work: SyncRun,
}

fn scene(hostile: &HostileRegistry, bad_rule: &str, auth: Value) -> Scene {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let good = seed_images(&seeder, "src/good", &["one"], 73, 20_000);
    let reg = &registry.host;
    let bad_target = if bad_rule.contains(':') {
        format!("{reg}/dst/bad:{TAG}")
    } else {
        format!("{reg}/dst/bad")
    };
    let images = json!({
        format!("{}/{bad_rule}", hostile.host): bad_target,
        format!("{reg}/src/good:one"): format!("{reg}/dst/good:one"),
    });
    let mut auth = auth;
    auth[reg.as_str()] = json!({ "insecure": true });
    Scene {
        good_digest: good[0].manifest_digest.clone(),
        work: SyncRun::ci(&auth, &images),
        registry,
        seeder,
    }
}

fn insecure_hostile(hostile: &HostileRegistry) -> Value {
    json!({ hostile.host.clone(): { "insecure": true } })
}

/// The common assertions; returns the bad result's error message.
fn assert_contained(scene: &Scene, run: &Run, bad_source: &str) -> String {
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(
        run.wall < WALL_BOUND,
        "took {:?} (bound {WALL_BOUND:?}): {}",
        run.wall,
        run.output
    );
    assert!(
        run.peak_rss_mib < MEMORY_BOUND_MIB,
        "peak RSS {:.1} MiB (bound {MEMORY_BOUND_MIB} MiB)",
        run.peak_rss_mib
    );
    assert_eq!(
        scene.seeder.manifest_digest("dst/good", "one"),
        Some(scene.good_digest.clone()),
        "the other rule was copied: {}",
        run.output
    );
    let report = scene.work.report();
    let good = result_for(&report, &format!("{}/src/good:one", scene.registry.host));
    assert_eq!(good["status"], "copied", "{good:#}");
    let bad = result_for(&report, bad_source);
    assert_eq!(bad["status"], "failed", "{bad:#}");
    assert_eq!(scene.seeder.manifest_digest("dst/bad", TAG), None);
    bad["error"]["message"].as_str().unwrap().to_string()
}

/// The tagged image `{REPO}:{TAG}` from a registry that behaves as `behaviour`, next to the
/// good rule, synced with the short bounds; the common assertions checked. Returns the
/// registry, the scene, the run and the bad image's error message.
fn tagged_image_contained(behaviour: Behaviour) -> (HostileRegistry, Scene, Run, String) {
    let hostile = HostileRegistry::start(behaviour);
    let scene = scene(
        &hostile,
        &format!("{REPO}:{TAG}"),
        insecure_hostile(&hostile),
    );
    let run = run(&scene.work, &FAST_BOUNDS);
    let message = assert_contained(&scene, &run, &format!("{}/{REPO}:{TAG}", hostile.host));
    (hostile, scene, run, message)
}

/// How many requests `hostile` saw that `matches` picks (a request is `METHOD path`).
fn requests_where(hostile: &HostileRegistry, matches: impl Fn(&str) -> bool) -> usize {
    hostile.requests().iter().filter(|r| matches(r)).count()
}

#[test]
fn an_endless_manifest_fails_at_4_mib_without_reading_the_rest() {
    let (hostile, _scene, _run, message) = tagged_image_contained(Behaviour::HugeManifest);
    assert!(message.contains("is larger than 4 MiB"), "{message}");
    assert!(
        message.contains(&format!("{REPO}:")),
        "names the manifest: {message}"
    );
    // Too large is not transient: one GET of the manifest, not one per retry.
    let gets = requests_where(&hostile, |r| {
        r.starts_with("GET") && r.contains("/manifests/")
    });
    assert_eq!(gets, 1, "{:#?}", hostile.requests());
}

#[test]
fn a_tag_list_that_links_back_to_itself_fails_the_rule() {
    let hostile = HostileRegistry::start(Behaviour::SelfLinkingTags);
    let scene = scene(&hostile, REPO, insecure_hostile(&hostile));
    let run = run(&scene.work, &FAST_BOUNDS);
    let message = assert_contained(&scene, &run, &format!("{}/{REPO}", hostile.host));
    assert!(message.contains("pagination loops"), "{message}");
    assert!(message.contains("last=v1"), "names the page: {message}");
    let pages = requests_where(&hostile, |r| r.contains("/tags/list"));
    assert_eq!(pages, 2, "{:#?}", hostile.requests());
}

#[test]
fn a_trickling_layer_is_aborted_under_the_speed_floor() {
    let (hostile, scene, run, message) = tagged_image_contained(Behaviour::TrickleBlob);
    assert!(
        message.contains("slower than the floor of 1024 B/s"),
        "{message}"
    );
    // 4000 bytes at 10 B/s would take 400 s; two attempts of a 2 s window take seconds.
    assert!(run.wall < Duration::from_secs(30), "{:?}", run.wall);
    let report = scene.work.report();
    let bad = result_for(&report, &format!("{}/{REPO}:{TAG}", hostile.host));
    assert_eq!(bad["attempts"], 2, "a transient failure, retried: {bad:#}");
}

#[test]
fn a_registry_that_never_answers_fails_within_the_request_deadline() {
    let (_hostile, _scene, run, message) = tagged_image_contained(Behaviour::NeverAnswers);
    assert!(message.contains("--request-timeout"), "{message}");
    assert!(run.wall < Duration::from_secs(30), "{:?}", run.wall);
}

#[test]
fn a_redirect_loop_stops_after_10_hops() {
    let (hostile, _scene, _run, message) = tagged_image_contained(Behaviour::RedirectLoop);
    assert!(message.contains("more than 10 redirects"), "{message}");
    let manifest_requests = requests_where(&hostile, |r| r.contains("/manifests/"));
    // The first request and 10 hops, once: a redirect loop is not retried.
    assert_eq!(manifest_requests, 11, "{:#?}", hostile.requests());
}

#[test]
fn an_index_nested_four_deep_fails_naming_the_index() {
    let (hostile, _scene, _run, message) = tagged_image_contained(Behaviour::NestedIndex);
    let deepest = hostile.index_digests()[3].clone();
    assert!(message.contains(&deepest), "names the 4th index: {message}");
    assert!(message.contains("more than 3 levels"), "{message}");
}

#[test]
fn a_plain_http_token_realm_for_an_https_registry_gets_no_credentials() {
    let hostile = HostileRegistry::start(Behaviour::PlainHttpRealm);
    let password = "hostile-realm-secret-5521";
    let auth = json!({ hostile.host.clone(): { "username": "robot", "password": password } });
    let mut scene = scene(&hostile, &format!("{REPO}:{TAG}"), auth);
    let ca = scene.work.dir().join("hostile-ca.pem");
    std::fs::write(&ca, hostile.ca_pem.as_ref().unwrap()).unwrap();
    let mut args = FAST_BOUNDS.to_vec();
    args.extend(["--ca-file", ca.to_str().unwrap()]);
    let run = run(&scene.work, &args);
    let message = assert_contained(&scene, &run, &format!("{}/{REPO}:{TAG}", hostile.host));
    assert!(message.contains("plain HTTP"), "{message}");
    assert!(
        message.contains("\"insecure\": true"),
        "says the way out: {message}"
    );
    assert_eq!(hostile.token_requests(), 0, "credentials went to the realm");
    assert!(!run.output.contains(password));
    assert!(!scene.work.report_text().contains(password));

    // Marked `insecure`, the same registry is trusted with its plain-HTTP realm.
    let registry = scene.registry.host.clone();
    scene.work = scene
        .work
        .auth(
            &hostile.host,
            json!({ "username": "robot", "password": password, "insecure": true }),
        )
        .auth(&registry, json!({ "insecure": true }));
    let run = self::run(&scene.work, &args);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(hostile.token_requests() >= 1);
    assert!(scene.seeder.manifest_digest("dst/bad", TAG).is_some());
}

/// Not a failure: names that are not tags are skipped with an escaped warning, never
/// requested, and the valid tag of the same list is copied.
#[test]
fn tag_names_that_break_the_grammar_are_skipped_with_a_warning() {
    let hostile = HostileRegistry::start(Behaviour::BadTagNames);
    let scene = scene(&hostile, REPO, insecure_hostile(&hostile));
    let log = scene.work.dir().join("run.log");
    let mut args = FAST_BOUNDS.to_vec();
    args.extend(["--log", log.to_str().unwrap()]);
    let run = run(&scene.work, &args);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(run.wall < WALL_BOUND && run.peak_rss_mib < MEMORY_BOUND_MIB);
    assert_eq!(scene.seeder.tags("dst/bad"), vec![TAG.to_string()]);
    // A warning of the planning reaches --log like every other line.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("warning: rule"), "{logged}");
    let report = scene.work.report();
    let warnings = report["warnings"]
        .as_array()
        .expect("warnings in the report");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("6 name(s) that are not valid tags"),
        "{warning}"
    );
    assert!(warning.contains(r#""../../etc/passwd""#), "{warning}");
    assert!(
        warning.contains(r#""a\u{1b}[31mred""#),
        "escaped: {warning}"
    );
    assert!(warning.contains("and 1 more"), "{warning}");
    assert!(!warning.contains('\u{1b}') && !warning.contains('\n'));
    assert!(run.output.contains("warning: rule"), "{}", run.output);
    assert!(!run.output.contains('\u{1b}'), "no raw escape in the log");
    for request in hostile.requests() {
        for bad in bad_tag_names() {
            let start: String = bad.chars().take(8).collect();
            assert!(!request.contains(&start), "{request} asks for {bad:?}");
        }
    }
}
