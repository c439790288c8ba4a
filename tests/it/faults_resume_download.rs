//! A blob download that breaks mid-way continues where it broke: the next request asks
//! for the rest (`Range: bytes=N-(size-1)`, N the byte reached), the upload to the target
//! goes on without starting again, and the digest is checked over the whole blob. A
//! source that answers the range with the whole body (200), or refuses it (416), is read
//! again from the start. Each continuation is a try of the transfer's `--retries` budget.
//! Measured at a fault proxy in front of a real registry (distribution 2.8, which serves
//! ranges), counting the body bytes it served.

use crate::support;

use support::fault_proxy::{Fault, FaultProxy, Logged, Rule, When};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_bytes};
use support::sync::{RunResult, SyncRun};

const MIB: usize = 1024 * 1024;

/// A registry with `src/big:1`, one layer of `layer_size` bytes, seen through two fault
/// proxies: the source, and the target (`dst/big`), two registries to image-migrator.
struct Setup {
    _registry: TestRegistry,
    source: FaultProxy,
    target: FaultProxy,
    seeder: Seeder,
    image: Pushed,
    layer_size: u64,
}

fn setup(seed: u64, layer_size: usize) -> Setup {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let layer = deterministic_bytes(seed, layer_size);
    let spec = ImageSpec::new(Media::Oci, "linux", "amd64", vec![layer]);
    let image = seeder.push_image("src/big", "1", &spec);
    let source = FaultProxy::start(&registry.host);
    let target = FaultProxy::start(&registry.host);
    Setup {
        source,
        target,
        _registry: registry,
        seeder,
        image,
        layer_size: layer_size as u64,
    }
}

impl Setup {
    fn target_ref(&self) -> String {
        format!("{}/dst/big:1", self.target.host)
    }

    /// Upload sessions the target opened (mount probes aside), and `PUT`s into them.
    fn target_uploads(&self) -> (usize, usize) {
        let log = self.target.log();
        let count = |method: &str| {
            (log.iter())
                .filter(|r| r.method == method && r.path.contains("/blobs/uploads/"))
                .filter(|r| !r.path.contains("mount="))
                .count()
        };
        (count("POST"), count("PUT"))
    }

    fn layer(&self) -> &str {
        &self.image.layer_digests[0]
    }

    fn sync(&self, retries: &str) -> RunResult {
        SyncRun::new()
            .insecure(&self.source.host)
            .insecure(&self.target.host)
            .rule(
                &format!("{}/src/big:1", self.source.host),
                &self.target_ref(),
            )
            .arg("--retries")
            .arg(retries)
            .run()
    }

    /// The `GET`s of the layer the source served, in order.
    fn layer_gets(&self) -> Vec<Logged> {
        let layer = self.layer().to_string();
        (self.source.log().into_iter())
            .filter(|r| r.method == "GET" && r.path.ends_with(&layer))
            .collect()
    }

    fn assert_copied(&self, run: &RunResult) {
        run.assert_all("copied");
        assert_eq!(
            self.seeder.manifest_digest("dst/big", "1").as_deref(),
            Some(self.image.manifest_digest.as_str())
        );
        assert!(self.seeder.blob_exists("dst/big", self.layer()));
    }
}

#[test]
fn a_256_mib_layer_cut_at_90_percent_costs_the_source_at_most_1_05_times_its_size() {
    let s = setup(26, 256 * MIB);
    s.source.add(Rule::new(
        Some("GET"),
        s.layer(),
        When::Nth(vec![1]),
        Fault::CutAtPercent(90),
    ));
    let run = s.sync("3");
    s.assert_copied(&run);

    let gets = s.layer_gets();
    assert_eq!(gets.len(), 2, "one cut, one continuation: {gets:#?}");
    let reached = s.layer_size * 90 / 100;
    assert_eq!(gets[0].header("range"), None);
    assert_eq!(
        gets[1].header("range"),
        Some(format!("bytes={reached}-{}", s.layer_size - 1).as_str())
    );
    assert_eq!(gets[1].status, Some(206));
    let served: u64 = gets.iter().map(|g| g.body_sent).sum();
    let cost = served as f64 / s.layer_size as f64;
    assert!(
        cost <= 1.05,
        "the source served {served} bytes, {cost:.3}× the layer"
    );
    assert_eq!(served, s.layer_size, "each byte once");
    // The continuation is a try of the budget: two attempts, the upload made once.
    assert_eq!(
        run.result_for(&s.target_ref())["attempts"],
        2,
        "{}",
        run.pretty()
    );
    // Layer and config: one session and one PUT each; the layer's did not start again.
    assert_eq!(s.target_uploads(), (2, 2), "{:#?}", s.target.log());
}

#[test]
fn a_source_that_ignores_or_refuses_the_range_is_read_again_from_the_start() {
    for refusal in [Fault::DropRange, Fault::Status(416)] {
        let s = setup(27, 8 * MIB);
        s.source
            .add(Rule::new(
                Some("GET"),
                s.layer(),
                When::Nth(vec![1]),
                Fault::CutAtPercent(50),
            ))
            .add(
                Rule::new(Some("GET"), s.layer(), When::Always, refusal.clone())
                    .with_header("range"),
            );
        let run = s.sync("3");
        s.assert_copied(&run);

        let gets = s.layer_gets();
        // The range asked for, then answered whole (200), or refused (416) and the
        // blob asked for again without one.
        let reached = format!("bytes={}-", s.layer_size / 2);
        let expected = match refusal {
            Fault::DropRange => vec![(false, Some(200)), (true, Some(200))],
            _ => vec![(false, Some(200)), (true, Some(416)), (false, Some(200))],
        };
        let seen: Vec<(bool, Option<u16>)> = (gets.iter())
            .map(|g| {
                (
                    g.header("range").is_some_and(|r| r.starts_with(&reached)),
                    g.status,
                )
            })
            .collect();
        assert_eq!(seen, expected, "{refusal:?}: {gets:#?}");
        let served: u64 = gets.iter().map(|g| g.body_sent).sum();
        assert_eq!(
            served,
            s.layer_size * 3 / 2,
            "{refusal:?}: half, then the whole"
        );
        assert_eq!(
            s.target_uploads(),
            (2, 2),
            "{refusal:?}: one upload per blob"
        );
    }
}

#[test]
fn a_resume_is_a_try_of_the_retry_budget() {
    let s = setup(28, 4 * MIB);
    s.source.add(Rule::new(
        Some("GET"),
        s.layer(),
        When::Always,
        Fault::CutAtPercent(50),
    ));
    // Every body is cut: one first try and two more, then the image fails.
    let run = s.sync("2");
    run.assert_code(1);
    let result = run.result_for(&s.target_ref());
    assert_eq!(result["status"], "failed", "{}", run.pretty());
    assert_eq!(result["attempts"], 3, "{}", run.pretty());
    let gets = s.layer_gets();
    assert_eq!(gets.len(), 3, "{gets:#?}");
    assert!(gets[1].header("range").is_some() && gets[2].header("range").is_some());
    assert!(s.seeder.manifest_digest("dst/big", "1").is_none());
}

/// Waits for `child` at most 60 s (killed then, and the test fails).
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("image-migrator did not exit within 60 s: a resume waited for itself");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_resume_inside_an_upload_to_the_same_registry_does_not_wait_for_its_own_slot() {
    // Source and target on one registry (one proxy), one request slot for it, and no
    // mount: the upload holds the slot while its source body breaks, and the request for
    // the rest must not wait for that slot.
    let s = setup(29, 4 * MIB);
    s.source
        .add(Rule::new(
            Some("GET"),
            s.layer(),
            When::Nth(vec![1]),
            Fault::CutAtPercent(50),
        ))
        .add(Rule::new(
            Some("POST"),
            "mount=",
            When::Always,
            Fault::Status(405),
        ));
    let work = SyncRun::new()
        .insecure(&s.source.host)
        .rule(
            &format!("{}/src/big:1", s.source.host),
            &format!("{}/dst/big:1", s.source.host),
        )
        .arg("--registry-concurrency")
        .arg("1")
        .arg("--proc")
        .arg("1");
    let mut child = work
        .std_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_exit(&mut child).success());
    assert_eq!(
        s.seeder.manifest_digest("dst/big", "1").as_deref(),
        Some(s.image.manifest_digest.as_str())
    );
    let gets = s.layer_gets();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(gets[1].status, Some(206));
}
