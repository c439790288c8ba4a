//! A run under faults always ends. With rayon's work-stealing in the copy, a thread that
//! waited for a shared blob ran another job on top of a piece it had stolen — the alias
//! tag's index, which then waited for a child manifest whose owner waited for that very
//! piece — and the run stopped for ever, with nothing on the network (issue 21). The scene
//! that showed it: 6 repositories of 3 tags, two tags of each aliasing one multi-arch
//! index, every image on one base layer the source serves slowly, and faults on about 5%
//! of requests (resets, 500/503, 429 with `Retry-After`, bodies cut short) — on the source,
//! on the target, or a 429 storm at the start.
//!
//! Each run must end within a bound; a watchdog that sees it hang prints every thread's
//! stack (gdb) and fails. What a faulted run copied is whole, and a clean run afterwards
//! finishes everything. `IMAGE_MIGRATOR_STRESS_RUNS` sets the runs per scene (default 2;
//! `ci/stress` runs many), `IMAGE_MIGRATOR_STRESS_BIN` another build of the binary.

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fault_proxy::{Fault, FaultProxy, Rule, When};
use support::migrator::{assert_tags_complete, insecure};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

const REPOSITORIES: usize = 6;
/// `a` and `b` alias one index of two platforms; `c` is a single image.
const TAGS: [&str; 3] = ["a", "b", "c"];
/// Far more than a faulted run takes (a few seconds, 429 waits included).
const RUN_BOUND: Duration = Duration::from_secs(150);

#[derive(Clone, Copy, Debug)]
enum Scene {
    SourceFaults,
    TargetFaults,
    RateLimitStorm,
}

struct Setup {
    source: FaultProxy,
    target: FaultProxy,
    target_seeder: Seeder,
    base_digest: String,
    _registries: (TestRegistry, TestRegistry),
}

fn setup() -> Setup {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeder = Seeder::for_registry(&src);
    let base = deterministic_layer(2100, 300_000);
    for r in 0..REPOSITORIES {
        let repo = format!("src/app{r}");
        let image = |n: u64, arch: &str| {
            let own = deterministic_layer(2200 + 10 * r as u64 + n, 20_000);
            ImageSpec::new(Media::Oci, "linux", arch, vec![base.clone(), own])
        };
        let amd64 = seeder.push_image(&repo, "amd64", &image(0, "amd64"));
        let arm64 = seeder.push_image(&repo, "arm64", &image(1, "arm64"));
        let index = seeder.push_index_of(&repo, "a", &[&amd64, &arm64], Media::Oci);
        let (_, bytes) = seeder.get_manifest(&repo, &index).unwrap();
        seeder.push_manifest(&repo, "b", Media::Oci.index_type(), &bytes);
        seeder.push_image(&repo, "c", &image(2, "amd64"));
    }
    let source = FaultProxy::start(&src.host);
    let target = FaultProxy::start(&dst.host);
    let target_seeder = Seeder::for_registry(&dst);
    Setup {
        source,
        target,
        target_seeder,
        base_digest: support::seed::sha256_digest(&base),
        _registries: (src, dst),
    }
}

impl Setup {
    /// This run's faults, seeded by `run` (the base layer stays slow).
    fn inject(&self, scene: Scene, run: u64) {
        let seeded = |n: u64, one_in: u64| When::Seeded {
            seed: run * 100 + n,
            one_in,
            max: 6,
        };
        let (faulty, paths) = match scene {
            Scene::SourceFaults | Scene::RateLimitStorm => {
                (&self.source, ["/blobs/", "/manifests/"])
            }
            Scene::TargetFaults => (&self.target, ["/blobs/", "/manifests/"]),
        };
        if let Scene::RateLimitStorm = scene {
            faulty.inject(
                None,
                "/v2/",
                When::Nth((2..=14).collect()),
                Fault::RateLimit {
                    retry_after_secs: 1,
                },
            );
        }
        let faults = [
            Fault::ResetBeforeResponse,
            Fault::Status(500),
            Fault::Status(503),
            Fault::RateLimit {
                retry_after_secs: 1,
            },
            Fault::ShortBody,
            Fault::ResetMidBody,
        ];
        // One fault for sure in every run, then about 5% of requests at random.
        faulty.inject(
            None,
            "/blobs/",
            When::Nth(vec![2 + (run as usize % 5)]),
            Fault::ResetBeforeResponse,
        );
        for (p, path) in paths.iter().enumerate() {
            for (f, fault) in faults.iter().enumerate() {
                // Six faults, each on 1 in 120 requests: about 5% in all.
                faulty.add(Rule::new(
                    None,
                    path,
                    seeded((p * 10 + f) as u64, 120),
                    fault.clone(),
                ));
            }
        }
        // The shared base layer comes slowly: every job needs it, one uploads it.
        self.source.add(Rule::new(
            Some("GET"),
            &format!("/blobs/{}", self.base_digest),
            When::Always,
            Fault::Delay(Duration::from_millis(400)),
        ));
    }

    /// Faults met so far on either side, the slow base layer aside.
    fn faults_met(&self) -> usize {
        [&self.source, &self.target]
            .iter()
            .flat_map(|proxy| proxy.faulted())
            .filter(|r| !matches!(r.fault, Some(Fault::Delay(_))))
            .count()
    }

    fn clear(&self) {
        self.source.clear();
        self.target.clear();
    }

    fn workdir(&self, namespace: &str) -> SyncRun {
        let mut rules = serde_json::Map::new();
        for r in 0..REPOSITORIES {
            for tag in TAGS {
                rules.insert(
                    format!("{}/src/app{r}:{tag}", self.source.host),
                    Value::String(format!("{}/{namespace}/app{r}:{tag}", self.target.host)),
                );
            }
        }
        // `sync --report report.json` (no JUnit file), with the build under stress when
        // IMAGE_MIGRATOR_STRESS_BIN names one.
        let run = SyncRun::from_json(
            &insecure(&[&self.source.host, &self.target.host]),
            &Value::Object(rules),
        )
        .arg("sync")
        .report_to("report.json");
        match std::env::var_os("IMAGE_MIGRATOR_STRESS_BIN") {
            Some(bin) => run.program(bin),
            None => run,
        }
    }

    /// Every tag `namespace` holds is complete; how many there are.
    fn tags_complete(&self, namespace: &str) -> usize {
        (0..REPOSITORIES)
            .map(|r| assert_tags_complete(&self.target_seeder, &format!("{namespace}/app{r}")))
            .sum()
    }
}

/// Runs a sync to its end, or — past [`RUN_BOUND`] — prints every thread's stack and
/// fails. The exit code.
fn sync_within_bound(work: &SyncRun, what: &str) -> i32 {
    let mut cmd = work.std_command();
    let log = work.dir().join("output.log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(work.dir().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("ended by a signal");
        }
        if started.elapsed() > RUN_BOUND {
            let stacks = thread_stacks(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(work.dir().join("stderr.log")).unwrap_or_default();
            panic!(
                "{what}: no end after {RUN_BOUND:?}\n--- its output ---\n{stderr}\n--- its threads ---\n{stacks}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every thread's stack of a process: gdb's backtraces, else each thread's kernel state.
fn thread_stacks(pid: u32) -> String {
    let gdb = Command::new("timeout")
        .args([
            "120",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output();
    if let Ok(out) = gdb
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let mut states = String::from("(gdb unavailable: kernel states only)\n");
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
            states.push_str(&format!(
                "{} {} wchan={}\n",
                task.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan")
            ));
        }
    }
    states
}

fn runs() -> u64 {
    std::env::var("IMAGE_MIGRATOR_STRESS_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
}

fn every_run_ends(scene: Scene) {
    let s = setup();
    let mut ended = 0;
    let mut faults_total = 0;
    for run in 0..runs() {
        s.clear();
        s.inject(scene, run);
        let namespace = format!("run{run}");
        let work = s.workdir(&namespace);
        let faults_before = s.faults_met();
        let code = sync_within_bound(&work, &format!("{scene:?} run {run}"));
        let faults = s.faults_met() - faults_before;
        assert!(faults > 0, "{scene:?} run {run}: no fault was met");
        faults_total += faults;
        assert!(
            code == 0 || code == 1,
            "{scene:?} run {run}: exit {code}: {}",
            std::fs::read_to_string(work.dir().join("stderr.log")).unwrap_or_default()
        );
        // What was copied is whole, and the report names every image.
        s.tags_complete(&namespace);
        let report = work.report();
        assert_eq!(
            report["results"].as_array().unwrap().len(),
            REPOSITORIES * TAGS.len(),
            "{report:#}"
        );
        ended += 1;
    }
    eprintln!("{scene:?}: {ended} run(s) ended, none hung ({faults_total} faults met)");
    // Without faults, a run into the last namespace finishes what the faulted one left.
    s.clear();
    let last = format!("run{}", runs() - 1);
    let work = s.workdir(&last);
    assert_eq!(sync_within_bound(&work, "clean re-run"), 0);
    assert_eq!(s.tags_complete(&last), REPOSITORIES * TAGS.len());
}

#[test]
fn a_run_with_source_faults_always_ends() {
    every_run_ends(Scene::SourceFaults);
}

#[test]
fn a_run_with_target_faults_always_ends() {
    every_run_ends(Scene::TargetFaults);
}

#[test]
fn a_run_in_a_429_storm_always_ends() {
    every_run_ends(Scene::RateLimitStorm);
}
