//! `--platform` (and image-syncer's `--os`/`--arch`) keep only some platforms of a
//! multi-arch index; the rewritten index has a new digest and the report says so.

use crate::support;

use serde_json::json;
use support::migrator::insecure;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

fn run(work: &SyncRun, args: &[&str]) -> serde_json::Value {
    work.command().args(args).assert().success();
    work.report()
}

#[test]
fn platform_filter_keeps_only_the_wanted_children() {
    let source = TestRegistry::start();
    let target = TestRegistry::start();
    let seeder = Seeder::for_registry(&source);
    let amd = seeder.push_image(
        "multi/app",
        "amd64-only",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(7001, 3_000)],
        ),
    );
    let arm = seeder.push_image(
        "multi/app",
        "arm64-only",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "arm64",
            vec![deterministic_layer(7002, 3_000)],
        ),
    );
    let index_digest = seeder.push_index_of("multi/app", "1.0", &[&amd, &arm], Media::Oci);

    let work = SyncRun::ci(
        &insecure(&[&source.host, &target.host]),
        &json!({
            format!("{}/multi/app:1.0", source.host): format!("{}/arm/app", target.host),
            format!("{}/multi/app:amd64-only", source.host): format!("{}/arm/app", target.host),
        }),
    );

    let report = run(&work, &["--platform", "linux/arm64"]);
    let results = report["results"].as_array().unwrap();
    let index_result = results
        .iter()
        .find(|r| r["source"].as_str().unwrap().ends_with(":1.0"))
        .unwrap();
    assert_eq!(index_result["status"], "copied");
    assert_eq!(index_result["source_digest"], index_digest.as_str());
    assert_eq!(index_result["platform_filtered"], true);
    let filtered_digest = index_result["target_digest"].as_str().unwrap().to_string();
    assert_ne!(filtered_digest, index_digest);
    assert_eq!(
        report["settings"]["platforms"],
        serde_json::json!(["linux/arm64"])
    );
    // A single-platform image is copied as it is, whatever its platform.
    let single = results
        .iter()
        .find(|r| r["source"].as_str().unwrap().ends_with(":amd64-only"))
        .unwrap();
    assert_eq!(single["platform_filtered"], false);
    assert_eq!(single["target_digest"], single["source_digest"]);

    let target_seeder = Seeder::for_registry(&target);
    assert_eq!(
        target_seeder.manifest_digest("arm/app", "1.0").as_deref(),
        Some(filtered_digest.as_str())
    );
    let (_, bytes) = target_seeder.get_manifest("arm/app", "1.0").unwrap();
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["digest"], arm.manifest_digest.as_str());
    assert_eq!(children[0]["platform"]["architecture"], "arm64");
    for blob in &arm.blob_digests {
        assert!(target_seeder.blob_exists("arm/app", blob));
    }
    // The amd64 manifest is in the target only because the amd64-only rule copied it.
    assert!(
        target_seeder
            .manifest_digest("arm/app", &amd.manifest_digest)
            .is_some()
    );

    // The same filter again: nothing to do.
    let again = run(&work, &["--os", "linux", "--arch", "arm64"]);
    assert_eq!(again["summary"]["unchanged"], 2, "{again}");
}

#[test]
fn a_platform_no_child_has_fails_that_image() {
    let source = TestRegistry::start();
    let target = TestRegistry::start();
    let seeder = Seeder::for_registry(&source);
    let amd = seeder.push_image(
        "multi/app",
        "amd",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![deterministic_layer(7003, 1_000)],
        ),
    );
    seeder.push_index_of("multi/app", "1.0", &[&amd], Media::Docker);
    let work = SyncRun::ci(
        &insecure(&[&source.host, &target.host]),
        &json!({ format!("{}/multi/app:1.0", source.host): format!("{}/x/app", target.host) }),
    );
    work.command()
        .args(["--platform", "linux/s390x"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "no manifest for platform linux/s390x",
        ));
    assert!(Seeder::for_registry(&target).tags("x/app").is_empty());
}
