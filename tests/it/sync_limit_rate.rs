//! `--limit-rate`: one bandwidth cap for the whole run over the blob bytes read from
//! sources. 64 MiB at `--limit-rate 8M` take 8 s (64 MiB / 8 MiB/s) and not less, and the
//! process sleeps while it waits: its CPU time stays a small part of the run's. The
//! report's settings show the cap; a bad value, or a cap that the speed floor would cut
//! (`--min-speed` per transfer), is refused before anything is copied (exit 2).

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::fault_proxy::FaultProxy;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_bytes};
use support::sync::SyncRun;

const MIB: usize = 1024 * 1024;

/// Waits for the child `pid`: its exit code and its CPU time (user + system), from
/// `wait4`'s resource usage of that one process.
fn wait_with_cpu_time(pid: u32) -> (i32, Duration) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not waited for elsewhere; both pointers are valid.
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid as libc::pid_t, "wait4");
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        libc::WEXITSTATUS(status),
        time(usage.ru_utime) + time(usage.ru_stime),
    )
}

/// Copies `src/rate:1` to `dst/<name>:1` with `args`: how long it took, and the CPU time.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its CPU time"
)]
fn timed_copy(registry: &TestRegistry, name: &str, args: &[&str]) -> (Duration, Duration) {
    // Another host for the same registry: a registry of its own to the tool (no mount).
    let target = FaultProxy::start(&registry.host);
    let mut work = SyncRun::new()
        .insecure(&registry.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/rate:1", registry.host),
            &format!("{}/dst/{name}:1", target.host),
        )
        .arg("sync");
    for arg in args {
        work = work.arg(arg);
    }
    let log = std::fs::File::create(work.dir().join("stderr.log")).unwrap();
    let started = Instant::now();
    let child = (work.std_command())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let (code, cpu) = wait_with_cpu_time(child.id());
    let took = started.elapsed();
    let stderr = std::fs::read_to_string(work.dir().join("stderr.log")).unwrap();
    assert_eq!(code, 0, "{args:?}: {stderr}");
    let report = work.report();
    assert_eq!(report["summary"]["copied"], 1, "{report:#}");
    let limit = args.iter().position(|a| *a == "--limit-rate");
    let shown = &report["settings"]["limit_rate_bytes_per_second"];
    match limit {
        Some(_) => assert_eq!(*shown, 8 * MIB as u64, "{report:#}"),
        None => assert!(shown.is_null(), "{report:#}"),
    }
    (took, cpu)
}

#[test]
fn a_64_mib_copy_at_8m_takes_8_seconds_asleep() {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let layer = deterministic_bytes(8, 64 * MIB);
    let spec = ImageSpec::new(Media::Oci, "linux", "amd64", vec![layer]);
    let image = seeder.push_image("src/rate", "1", &spec);

    let (free, free_cpu) = timed_copy(&registry, "free", &[]);
    let (took, cpu) = timed_copy(&registry, "capped", &["--limit-rate", "8M"]);
    eprintln!("64 MiB: {free:?} (CPU {free_cpu:?}); at --limit-rate 8M {took:?} (CPU {cpu:?})");
    for name in ["free", "capped"] {
        assert_eq!(
            seeder
                .manifest_digest(&format!("dst/{name}"), "1")
                .as_deref(),
            Some(image.manifest_digest.as_str())
        );
    }
    let expected = Duration::from_secs(8);
    assert!(took >= expected, "{took:?}: faster than the cap allows");
    assert!(
        took <= expected.mul_f64(1.15) + free,
        "{took:?}: slower than the cap, beyond the copy's own {free:?}"
    );
    // Waiting costs no CPU: the capped copy uses about what the free one did.
    assert!(
        cpu <= free_cpu.mul_f64(1.3) + Duration::from_millis(500),
        "CPU {cpu:?} capped, {free_cpu:?} free: the waits are not asleep"
    );
}

#[test]
fn a_bad_rate_or_one_under_the_speed_floor_is_refused_before_anything_moves() {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    support::migrator::seed_images(&seeder, "src/app", &["1"], 3, 1000);
    for (args, says) in [
        (vec!["--limit-rate", "8X"], "--limit-rate"),
        (vec!["--limit-rate", "0"], "--limit-rate"),
        (vec!["--limit-rate", "fast"], "--limit-rate"),
        (
            vec!["--limit-rate", "4k", "--proc", "8"],
            "under the speed floor --min-speed",
        ),
    ] {
        let mut work = SyncRun::new().insecure(&registry.host).rule(
            &format!("{}/src/app:1", registry.host),
            &format!("{}/dst/app:1", registry.host),
        );
        work = work.arg("sync");
        for arg in &args {
            work = work.arg(arg);
        }
        let output = work.std_command().output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(seeder.manifest_digest("dst/app", "1").is_none(), "{args:?}");
    }
}
