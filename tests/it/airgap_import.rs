//! A user on the disconnected side imports a bundle (`import --from oci:DIR`): each image
//! goes to the target its recorded rule names (or those of `--images`), with what sync
//! does — digests kept, a second import costs HEADs only, `--dry-run` writes nothing — and
//! an image whose blob is missing or corrupt in the bundle fails naming the digest, with
//! nothing of it pushed.

use crate::support;

use serde_json::json;
use support::bundle::blob_path;
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::{SyncRun, access_log, assert_skopeo_digest, migrator_requests_since};

use crate::airgap_export::{Seeded, export_run, seed};

/// Seeds `src`, exports `app/x:1`, `app/x:2`, `app/y:1` with targets in `dst`; the bundle.
fn exported(src: &TestRegistry, dst: &TestRegistry) -> (Seeded, SyncRun) {
    let seeded = seed(&Seeder::for_registry(src));
    let export = export_run(src, &dst.host);
    export.run().assert_code(0).assert_all("copied");
    (seeded, export)
}

/// An import on "the other machine": a fresh directory whose auth.json knows only `dst`.
fn import_run(export: &SyncRun, dst: &TestRegistry) -> SyncRun {
    let bundle = export.dir().join("bundle");
    SyncRun::new()
        .insecure(&dst.host)
        .arg("import")
        .arg("--from")
        .arg(&format!("oci:{}", bundle.display()))
}

#[test]
fn a_bundle_lands_where_its_rules_say_with_the_source_digests() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (seeded, export) = exported(&src, &dst);
    let target = Seeder::for_registry(&dst);
    let import = import_run(&export, &dst);

    let dry = import.arg_clone("--dry-run").run();
    dry.assert_code(0).assert_all("would-copy");
    assert!(
        access_log(&dst)
            .iter()
            .all(|a| !(a.by_migrator() && a.is_write())),
        "a dry run writes nothing"
    );

    let before = access_log(&src).len();
    let run = import.run();
    run.assert_code(0).assert_all("copied");
    assert_eq!(run.count("total"), 3);
    // The layer x and y share crossed once into the target registry, then was mounted.
    assert_eq!(run.count("blobs_mounted"), 1, "{}", run.pretty());
    let d = &dst.host;
    for (reference, digest) in [
        (format!("{d}/mirror/x:1"), &seeded.index),
        (format!("{d}/mirror/x:two"), &seeded.x2.manifest_digest),
        (format!("{d}/mirror/y:1"), &seeded.y1.manifest_digest),
    ] {
        assert_eq!(run.result_for(&reference)["source_digest"], digest.as_str());
        assert_skopeo_digest(&reference, digest, None);
    }
    for child in [&seeded.amd64, &seeded.arm64] {
        assert_eq!(
            target.manifest_digest("mirror/x", &child.manifest_digest),
            Some(child.manifest_digest.clone())
        );
    }
    assert!(
        migrator_requests_since(&src, before).is_empty(),
        "the import never reaches the source"
    );

    // Again: HEADs only.
    let before = access_log(&dst).len();
    let again = import.run();
    again.assert_code(0).assert_all("unchanged");
    let requests: Vec<_> = migrator_requests_since(&dst, before)
        .into_iter()
        .filter(|a| a.uri != "/v2/")
        .collect();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|a| a.method == "HEAD"), "{requests:#?}");
}

#[test]
fn images_json_given_to_import_overrides_the_recorded_targets() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (seeded, export) = exported(&src, &dst);
    let target = Seeder::for_registry(&dst);
    let run = import_run(&export, &dst)
        .rule(&format!("{}/app/x", src.host), "")
        .arg("--images")
        .arg("images.json")
        .arg("--default-registry")
        .arg(&dst.host)
        .arg("--default-namespace")
        .arg("airgapped")
        .run();
    run.assert_code(0).assert_all("copied");
    assert_eq!(run.count("total"), 2, "app/y is not in the rules");
    assert_eq!(
        target.manifest_digest("airgapped/x", "1"),
        Some(seeded.index.clone())
    );
    assert_eq!(
        target.manifest_digest("airgapped/x", "2"),
        Some(seeded.x2.manifest_digest.clone())
    );
    assert!(target.tags("mirror/y").is_empty());

    let none = import_run(&export, &dst)
        .rule(&format!("{}/app/z:1", src.host), &format!("{}/z", dst.host))
        .arg("--images")
        .arg("images.json")
        .run();
    none.assert_code(1);
    let failed = &none.results()[0];
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the bundle holds no image"),
        "{failed}"
    );
}

#[test]
fn an_image_missing_or_corrupt_in_the_bundle_fails_naming_the_digest_nothing_pushed() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (seeded, export) = exported(&src, &dst);
    let target = Seeder::for_registry(&dst);
    let bundle = export.dir().join("bundle");
    // app/x:1's arm64 layer flipped; app/y:1's own layer gone.
    let corrupt = &seeded.arm64.layer_digests[1];
    let mut bytes = std::fs::read(blob_path(&bundle, corrupt)).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(blob_path(&bundle, corrupt), bytes).unwrap();
    let missing = &seeded.y1.layer_digests[1];
    std::fs::remove_file(blob_path(&bundle, missing)).unwrap();

    let run = import_run(&export, &dst).run();
    run.assert_code(1);
    let d = &dst.host;
    let x1 = run.result_for(&format!("{d}/mirror/x:1"));
    assert_eq!(x1["status"], "failed");
    assert_eq!(x1["error"]["kind"], "digest");
    assert!(
        x1["error"]["message"]
            .as_str()
            .unwrap()
            .contains(corrupt.as_str()),
        "{x1}"
    );
    let y1 = run.result_for(&format!("{d}/mirror/y:1"));
    assert_eq!(y1["status"], "failed");
    assert_eq!(y1["error"]["kind"], "not-found");
    assert!(
        y1["error"]["message"]
            .as_str()
            .unwrap()
            .contains(missing.as_str()),
        "{y1}"
    );
    assert_eq!(
        run.result_for(&format!("{d}/mirror/x:two"))["status"],
        "copied"
    );
    // Nothing of the failed images: no tag, no child, not their own blobs.
    assert!(target.tags("mirror/y").is_empty());
    assert_eq!(target.tags("mirror/x"), ["two"]);
    for blob in [&seeded.amd64.layer_digests[1], corrupt, missing] {
        for repo in ["mirror/x", "mirror/y"] {
            assert!(!target.blob_exists(repo, blob), "{blob} in {repo}");
        }
    }
    assert!(
        target
            .manifest_digest("mirror/x", &seeded.amd64.manifest_digest)
            .is_none()
    );
}

#[test]
fn a_layout_that_is_not_a_bundle_is_refused_before_anything_moves() {
    let dst = TestRegistry::start();
    let empty = tempfile::tempdir().unwrap();
    let layout_without_sidecar = tempfile::tempdir().unwrap();
    std::fs::write(
        layout_without_sidecar.path().join("oci-layout"),
        json!({"imageLayoutVersion": "1.0.0"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        layout_without_sidecar.path().join("index.json"),
        json!({"schemaVersion": 2, "manifests": []}).to_string(),
    )
    .unwrap();
    for (from, says) in [
        ("bundle".to_string(), "expected oci:DIR"),
        (
            format!("oci:{}", empty.path().display()),
            "not an OCI image layout",
        ),
        (
            format!("oci:{}", layout_without_sidecar.path().display()),
            "give --images",
        ),
    ] {
        let run = SyncRun::new()
            .insecure(&dst.host)
            .arg("import")
            .arg("--from")
            .arg(&from)
            .run();
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{from}: {}", run.stderr);
        assert!(run.report.is_none());
    }
    assert!(access_log(&dst).iter().all(|a| !a.by_migrator()));
}

#[test]
fn referrers_cross_the_gap_with_their_images() {
    use support::seed::{ImageSpec, Media, SIGNATURE_TYPE, deterministic_layer, fallback_tag};
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let app = source.push_image(
        "app/s",
        "1",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(9, 2_000)],
        ),
    );
    let signature = source.push_referrer_of("app/s", &app, SIGNATURE_TYPE, b"signed");
    source.push_fallback_index("app/s", &app.manifest_digest, &[&signature]);
    let cosign = source.push_cosign_signature("app/s", &app.manifest_digest, 3);
    let export = SyncRun::new()
        .insecure(&src.host)
        .rule(
            &format!("{}/app/s:1", src.host),
            &format!("{}/signed/s:1", dst.host),
        )
        .arg("export")
        .arg("--to")
        .arg("oci:bundle")
        .arg("--referrers");
    let exported = export.run();
    exported.assert_code(0).assert_all("copied");
    assert_eq!(
        exported.count("referrers_copied"),
        2,
        "{}",
        exported.pretty()
    );

    // The bundle says it carries referrers: no flag needed on the other side.
    let run = import_run(&export, &dst).run();
    assert!(
        run.stderr.contains("the bundle carries referrers"),
        "{}",
        run.stderr
    );
    run.assert_code(0).assert_all("copied");
    assert_eq!(run.count("referrers_copied"), 2, "{}", run.pretty());
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        target.fallback_referrers("signed/s", &app.manifest_digest),
        std::slice::from_ref(&signature.digest)
    );
    let cosign_tag = format!("{}.sig", fallback_tag(&app.manifest_digest));
    assert_eq!(
        target.manifest_digest("signed/s", &cosign_tag),
        Some(cosign.manifest_digest.clone())
    );
}

#[test]
fn an_image_pinned_by_digest_crosses_by_digest() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeded = seed(&Seeder::for_registry(&src));
    let pinned = format!("{}/app/x@{}", src.host, seeded.x2.manifest_digest);
    let export = SyncRun::new()
        .insecure(&src.host)
        .rule(&pinned, &format!("{}/pinned/x", dst.host))
        .arg("export")
        .arg("--to")
        .arg("oci:bundle");
    export.run().assert_code(0).assert_all("copied");
    let bundle = export.dir().join("bundle");
    assert_eq!(
        support::bundle::names(&bundle).get(&pinned),
        Some(&seeded.x2.manifest_digest)
    );
    let run = import_run(&export, &dst).run();
    run.assert_code(0).assert_all("copied");
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        target.manifest_digest("pinned/x", &seeded.x2.manifest_digest),
        Some(seeded.x2.manifest_digest.clone())
    );
    assert!(
        target.tags("pinned/x").is_empty(),
        "pushed by digest, no tag"
    );
    let report = run.report();
    assert!(
        report["settings"]["images_file"]
            .as_str()
            .unwrap()
            .ends_with("image-migrator.json")
    );
}
