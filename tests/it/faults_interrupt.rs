//! Interrupted runs: `kill -9` in the middle leaves no target tag pointing at missing
//! content and a re-run completes; SIGINT/SIGTERM writes the report with what finished
//! and the rest `cancelled`, exit 1. A slow proxy in front of the target makes the run
//! long enough to interrupt.

use crate::support;

use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::fault_proxy::FaultProxy;
use support::migrator::{assert_tags_complete, insecure, seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;

const TAGS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];
const SLOW: Duration = Duration::from_millis(150);

/// Waits until `proxy` has answered a manifest PUT for `repo` with 201 (an image is
/// done), at most 60 s.
fn wait_for_first_image(proxy: &FaultProxy, repo: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let put = format!("/v2/{repo}/manifests/");
    loop {
        if proxy
            .log()
            .iter()
            .any(|r| r.method == "PUT" && r.path.starts_with(&put) && r.status == Some(201))
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("image-migrator ended ({status}) before the first image was done");
        }
        assert!(Instant::now() < deadline, "no image finished within 60 s");
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("image-migrator did not exit within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

struct Setup {
    _registry: TestRegistry,
    source: FaultProxy,
    target: FaultProxy,
    seeder: Seeder,
    digests: Vec<String>,
}

fn setup(seed: u64) -> Setup {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let digests = seed_images(&seeder, "src/app", &TAGS, seed, 20_000)
        .into_iter()
        .map(|p| p.manifest_digest)
        .collect();
    let source = FaultProxy::start(&registry.host);
    let target = FaultProxy::start(&registry.host);
    Setup {
        _registry: registry,
        source,
        target,
        seeder,
        digests,
    }
}

impl Setup {
    fn workdir(&self, dst_repo: &str) -> SyncRun {
        SyncRun::ci(
            &insecure(&[&self.source.host, &self.target.host]),
            &tag_rules(
                &self.source.host,
                "src/app",
                &self.target.host,
                dst_repo,
                &TAGS,
            ),
        )
    }
}

#[test]
fn kill_9_leaves_no_broken_tag_and_a_rerun_completes() {
    let s = setup(11);
    s.target.set_delay(SLOW);
    let work = s.workdir("dst/app");
    let mut child = work
        .std_command()
        .args(["--proc", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_first_image(&s.target, "dst/app", &mut child);
    child.kill().unwrap(); // SIGKILL: no handler, no report, no cleanup
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");

    let tagged = assert_tags_complete(&s.seeder, "dst/app");
    assert!(
        (1..TAGS.len()).contains(&tagged),
        "killed in the middle: {tagged} of {} tags",
        TAGS.len()
    );
    // Blob uploads were under way when the process died.
    assert!(
        s.target.log().iter().filter(|r| r.method == "PUT").count() > tagged,
        "more than the finished images' requests were made"
    );

    s.target.set_delay(Duration::ZERO);
    let output = work.command().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(assert_tags_complete(&s.seeder, "dst/app"), TAGS.len());
    for (tag, digest) in TAGS.iter().zip(&s.digests) {
        assert_eq!(
            s.seeder.manifest_digest("dst/app", tag).as_ref(),
            Some(digest)
        );
    }
    let report = work.report();
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    // Requests in flight at the kill may still land (the slow proxy forwards them), so
    // at least the images tagged before are unchanged now.
    let unchanged = report["summary"]["unchanged"].as_u64().unwrap();
    assert!(unchanged >= tagged as u64, "{report:#}");
    assert_eq!(
        unchanged + report["summary"]["copied"].as_u64().unwrap(),
        TAGS.len() as u64
    );
}

/// Runs into `dst_repo`, sends `signal` after the first image, and checks the outcome.
fn interrupted_by(s: &Setup, signal: &str, dst_repo: &str) {
    let work = s.workdir(dst_repo);
    let mut child = work
        .std_command()
        .args(["--proc", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_first_image(&s.target, dst_repo, &mut child);
    let sent = std::process::Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_exit(&mut child);
    let output = child.wait_with_output().unwrap();
    let log = text(&output);
    assert_eq!(status.code(), Some(1), "SIG{signal}: {log}");
    assert!(log.contains("cancelling"), "{log}");

    let report = work.report();
    let summary = &report["summary"];
    assert_eq!(summary["total"], TAGS.len(), "{report:#}");
    assert_eq!(summary["failed"], 0, "{report:#}");
    let copied = summary["copied"].as_u64().unwrap();
    let cancelled = summary["cancelled"].as_u64().unwrap();
    assert!(copied >= 1, "the first image was done: {report:#}");
    assert!(cancelled >= 1, "the rest was cancelled: {report:#}");
    assert_eq!(copied + cancelled, TAGS.len() as u64, "{report:#}");
    for result in report["results"].as_array().unwrap() {
        let tag = result["target"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap();
        let there = s.seeder.manifest_digest(dst_repo, tag);
        match result["status"].as_str().unwrap() {
            "copied" => assert_eq!(there.as_deref(), result["source_digest"].as_str()),
            "cancelled" => {
                assert_eq!(there, None, "{tag} is cancelled but tagged");
                assert_eq!(result["error"]["kind"], "cancelled", "{result:#}");
            }
            other => panic!("unexpected status {other}: {result:#}"),
        }
    }
    assert_tags_complete(&s.seeder, dst_repo);
    assert!(
        work.junit_text().contains("cancelled"),
        "{}",
        work.junit_text()
    );
}

#[test]
fn sigint_and_sigterm_write_the_report_and_cancel_the_rest() {
    let s = setup(12);
    s.target.set_delay(SLOW);
    interrupted_by(&s, "INT", "dst/int");
    interrupted_by(&s, "TERM", "dst/term");
}
