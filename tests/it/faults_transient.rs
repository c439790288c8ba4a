//! Trust under faults: a fault-injecting proxy sits between image-migrator and a real
//! registry, on the source side and on the target side. Transient faults are retried and
//! every image arrives intact; a corrupted blob fails its image (and only it) with error
//! kind `digest`, leaving no tag; `429` with `Retry-After` is waited out.

use crate::support;

use std::time::Duration;

use support::fault_proxy::{Fault, FaultProxy, When};
use support::migrator::{insecure, result_for, seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;

const TAGS: [&str; 3] = ["one", "two", "three"];

/// One registry, seen through two proxies: "source" (holding src/app) and "target"
/// (receiving dst/app). The two proxies are distinct registries to image-migrator.
struct Setup {
    registry: TestRegistry,
    source: FaultProxy,
    target: FaultProxy,
    seeder: Seeder,
    images: Vec<support::seed::Pushed>,
}

fn setup(seed: u64) -> Setup {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let images = seed_images(&seeder, "src/app", &TAGS, seed, 40_000);
    let source = FaultProxy::start(&registry.host);
    let target = FaultProxy::start(&registry.host);
    Setup {
        registry,
        source,
        target,
        seeder,
        images,
    }
}

impl Setup {
    fn workdir(&self) -> SyncRun {
        SyncRun::ci(
            &insecure(&[&self.source.host, &self.target.host]),
            &tag_rules(
                &self.source.host,
                "src/app",
                &self.target.host,
                "dst/app",
                &TAGS,
            ),
        )
    }

    fn source_ref(&self, tag: &str) -> String {
        format!("{}/src/app:{tag}", self.source.host)
    }
}

#[test]
fn transient_faults_on_source_and_target_are_retried() {
    let s = setup(1);
    let blob = |image: usize, layer: usize| s.images[image].layer_digests[layer].clone();
    let once = || When::Nth(vec![1]);
    // Source side.
    s.source
        .inject(
            Some("GET"),
            "/manifests/sha256:",
            once(),
            Fault::Status(503),
        )
        .inject(
            Some("HEAD"),
            "/manifests/",
            When::Nth(vec![2]),
            Fault::ResetBeforeResponse,
        )
        .inject(Some("GET"), &blob(0, 0), once(), Fault::ResetMidBody)
        .inject(Some("GET"), &blob(1, 0), once(), Fault::ShortBody)
        .inject(Some("GET"), &blob(2, 1), once(), Fault::Status(500))
        .inject(
            Some("GET"),
            "/blobs/",
            When::Seeded {
                seed: 7,
                one_in: 3,
                max: 2,
            },
            Fault::Status(502),
        );
    // Target side.
    s.target
        .inject(Some("PUT"), "/blobs/uploads/", once(), Fault::Status(500))
        .inject(Some("PUT"), "/manifests/", once(), Fault::Status(503))
        .inject(Some("HEAD"), "/blobs/", once(), Fault::ResetBeforeResponse)
        .inject(
            Some("POST"),
            "/blobs/uploads/",
            When::Nth(vec![2]),
            Fault::ResetBeforeResponse,
        );

    let work = s.workdir();
    let output = work
        .command()
        .args(["--proc", "2", "--retries", "4"])
        .output()
        .unwrap();
    let log = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{log}\n{:#}",
        work.report_text()
    );

    // Every planned fault really happened.
    let source_faults = s.source.faulted();
    let target_faults = s.target.faulted();
    for fault in [
        Fault::Status(503),
        Fault::ResetBeforeResponse,
        Fault::ResetMidBody,
        Fault::ShortBody,
        Fault::Status(500),
    ] {
        assert!(
            source_faults
                .iter()
                .any(|r| r.fault.as_ref() == Some(&fault)),
            "source fault {fault:?} never fired: {source_faults:#?}"
        );
    }
    assert_eq!(target_faults.len(), 4, "{target_faults:#?}");

    // Everything arrived, byte for byte.
    for (tag, image) in TAGS.iter().zip(&s.images) {
        assert_eq!(
            s.seeder.manifest_digest("dst/app", tag).as_deref(),
            Some(image.manifest_digest.as_str()),
            "dst/app:{tag}"
        );
        for blob in &image.blob_digests {
            assert_eq!(
                s.seeder
                    .get_blob("dst/app", blob)
                    .map(|b| support::seed::sha256_digest(&b)),
                Some(blob.clone())
            );
        }
    }

    // The report shows the retries, on the images that met faults.
    let report = work.report();
    assert_eq!(report["summary"]["copied"], 3, "{report:#}");
    let mut total_retries = 0;
    for tag in TAGS {
        let result = result_for(&report, &s.source_ref(tag));
        assert_eq!(result["status"], "copied");
        let attempts = result["attempts"].as_u64().unwrap();
        assert!(
            attempts > 1,
            "{tag}: each image met at least its own blob fault: {result:#}"
        );
        total_retries += attempts - 1;
    }
    let faults = (source_faults.len() + target_faults.len()) as u64;
    assert!(
        total_retries >= faults,
        "{total_retries} retries for {faults} faults: {report:#}"
    );
    drop(s.registry);
}

/// A registry that answers a manifest `PUT` with `MANIFEST_BLOB_UNKNOWN` although every
/// reference is in place has read one while it was being written (distribution rewrites a
/// manifest's link in place when another job pushes the same manifest under another tag;
/// CI met it once). That answer is retried and the tag lands; another refusal (`400
/// MANIFEST_INVALID`) is not.
#[test]
fn a_manifest_push_refused_for_an_unknown_reference_is_pushed_again() {
    let s = setup(4);
    s.target.inject(
        Some("PUT"),
        "/manifests/",
        When::Nth(vec![1]),
        Fault::RegistryError {
            status: 400,
            code: "MANIFEST_BLOB_UNKNOWN",
        },
    );
    s.target.inject(
        Some("PUT"),
        "/manifests/",
        When::Nth(vec![3]),
        Fault::RegistryError {
            status: 400,
            code: "MANIFEST_INVALID",
        },
    );
    let work = s.workdir();
    let output = work.command().args(["--proc", "1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(s.target.faulted().len(), 2, "{:#?}", s.target.faulted());
    let report = work.report();
    let results = report["results"].as_array().unwrap();
    let with = |status: &str, attempts: u64| -> Vec<&serde_json::Value> {
        (results.iter())
            .filter(|r| r["status"] == status && r["attempts"] == attempts)
            .collect()
    };
    // The image whose PUT was refused for an unknown reference: pushed again, and there.
    let retried = with("copied", 2);
    assert_eq!(retried.len(), 1, "{report:#}");
    let tag = retried[0]["target"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    let image = &s.images[TAGS.iter().position(|t| *t == tag).unwrap()];
    assert_eq!(
        s.seeder.manifest_digest("dst/app", tag).as_deref(),
        Some(image.manifest_digest.as_str())
    );
    // The one refused as invalid: not asked again, failed, no tag.
    let refused = with("failed", 1);
    assert_eq!(refused.len(), 1, "{report:#}");
    let message = refused[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("MANIFEST_INVALID"), "{message}");
    let tag = refused[0]["target"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(s.seeder.manifest_digest("dst/app", tag), None);
    assert_eq!(with("copied", 1).len(), 1, "{report:#}");
    drop(s.registry);
}

#[test]
fn a_corrupted_blob_fails_its_image_only() {
    let s = setup(2);
    let corrupted = s.images[1].layer_digests[0].clone();
    s.source
        .inject(Some("GET"), &corrupted, When::Always, Fault::FlipByte);

    let work = s.workdir();
    let output = work.command().args(["--retries", "2"]).output().unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    let report = work.report();
    let failed = result_for(&report, &s.source_ref("two"));
    assert_eq!(failed["status"], "failed", "{report:#}");
    assert_eq!(failed["error"]["kind"], "digest", "{failed:#}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sha256"),
        "{failed:#}"
    );
    // It was tried again (the network may flip a byte once) before giving up.
    let flips = s.source.faulted().len();
    assert_eq!(flips, 3, "one attempt + 2 retries");
    assert!(log.contains("two"), "{log}");

    // No tag for the corrupted image; the others are there and complete.
    assert_eq!(s.seeder.manifest_digest("dst/app", "two"), None);
    assert!(
        s.target
            .log()
            .iter()
            .all(|r| !(r.method == "PUT" && r.path.ends_with("/manifests/two"))),
        "a manifest was pushed for the failed image"
    );
    assert_eq!(s.seeder.tags("dst/app"), vec!["one", "three"]);
    for (i, tag) in [(0, "one"), (2, "three")] {
        assert_eq!(result_for(&report, &s.source_ref(tag))["status"], "copied");
        assert_eq!(
            s.seeder.manifest_digest("dst/app", tag),
            Some(s.images[i].manifest_digest.clone())
        );
    }
    support::migrator::assert_tags_complete(&s.seeder, "dst/app");
    assert!(!s.seeder.blob_exists("dst/app", &corrupted));
}

#[test]
fn retry_after_is_honoured() {
    let s = setup(3);
    let path = "/v2/src/app/manifests/one";
    s.source.inject(
        Some("HEAD"),
        path,
        When::Nth(vec![1]),
        Fault::RateLimit {
            retry_after_secs: 2,
        },
    );
    let work = SyncRun::ci(
        &insecure(&[&s.source.host, &s.target.host]),
        &tag_rules(
            &s.source.host,
            "src/app",
            &s.target.host,
            "dst/app",
            &["one"],
        ),
    );
    let output = work.command().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let log = s.source.log();
    let limited = log
        .iter()
        .find(|r| r.status == Some(429))
        .expect("the 429 was sent");
    assert_eq!(limited.path, path);
    let same: Vec<_> = log
        .iter()
        .filter(|r| r.method == "HEAD" && r.path == path && r.at > limited.at)
        .collect();
    let next = same.first().expect("the request was made again");
    let waited = next.at - limited.at;
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}, before Retry-After: 2 had passed"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    // Nothing else for that image reached the source during the window either.
    assert!(
        log.iter()
            .filter(|r| r.at > limited.at && r.at < limited.at + Duration::from_secs(2))
            .all(|r| !r.path.contains("/manifests/")),
        "{log:#?}"
    );
    let report = work.report();
    let result = result_for(&report, &s.source_ref("one"));
    assert_eq!(result["status"], "copied");
    assert!(result["attempts"].as_u64().unwrap() >= 2, "{result:#}");
    assert_eq!(
        s.seeder.manifest_digest("dst/app", "one"),
        Some(s.images[0].manifest_digest.clone())
    );
}

#[test]
fn a_rate_limit_that_does_not_lift_fails_with_a_hint() {
    let s = setup(5);
    s.source.inject(
        Some("GET"),
        "/manifests/",
        When::Always,
        Fault::RateLimit {
            retry_after_secs: 0,
        },
    );
    let work = s.workdir();
    let out = work.command().args(["--retries", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = work.report();
    let failed = result_for(&report, &s.source_ref("one"));
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "rate-limit");
    assert_eq!(failed["error"]["http_status"], 429);
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("pulls remaining in this window: 0"),
        "{message}"
    );
    assert!(message.contains("credentials (auth.json"), "{message}");
    assert!(
        !message.contains("--proc"),
        "fewer threads do not help: {message}"
    );
    assert_eq!(failed["attempts"], 2, "one retry: {failed}");
}
