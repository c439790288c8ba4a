//! A user pins an image by digest: `repo@sha256:…` copies exactly that manifest, to a
//! tag when the target has one, else pushed by digest (no tag appears).

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::{SyncRun, assert_skopeo_digest};

#[test]
fn a_digest_source_is_copied_to_a_tag_or_by_digest() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let old = source.push_image(
        "vendor/db",
        "latest",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![deterministic_layer(7, 6_000)],
        ),
    );
    // The tag moves on; the pinned digest stays the old image.
    let new = source.push_image(
        "vendor/db",
        "latest",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![deterministic_layer(8, 6_000)],
        ),
    );
    assert_ne!(old.manifest_digest, new.manifest_digest);
    let pinned = format!("{}/vendor/db@{}", src.host, old.manifest_digest);

    let sync = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(&pinned, &format!("{}/mirror/db:pinned", dst.host))
        .rule(&pinned, &format!("{}/by-digest/db", dst.host));
    let run = sync.run();

    run.assert_all("copied");
    assert_eq!(run.count("total"), 2);

    // With a tag: the tag points at the pinned digest, not at the source's latest.
    assert_eq!(target.tags("mirror/db"), ["pinned"]);
    assert_eq!(
        target.manifest_digest("mirror/db", "pinned"),
        Some(old.manifest_digest.clone())
    );
    let tagged = run.result_for(&format!("{}/mirror/db:pinned", dst.host));
    assert_eq!(tagged["source"], pinned.as_str());
    assert_eq!(tagged["source_digest"], old.manifest_digest.as_str());
    assert_skopeo_digest(
        &format!("{}/mirror/db:pinned", dst.host),
        &old.manifest_digest,
        None,
    );

    // Without a tag: pushed by digest, no tag created, bytes identical.
    assert!(target.tags("by-digest/db").is_empty(), "no tag is created");
    assert_eq!(
        target
            .get_manifest("by-digest/db", &old.manifest_digest)
            .unwrap()
            .1,
        old.manifest_bytes
    );
    for blob in &old.blob_digests {
        assert!(target.blob_exists("by-digest/db", blob));
    }
    let by_digest = format!("{}/by-digest/db@{}", dst.host, old.manifest_digest);
    assert_eq!(run.result_for(&by_digest)["status"], "copied");
    assert_skopeo_digest(&by_digest, &old.manifest_digest, None);
    // The new image's layer was never copied anywhere.
    assert!(!target.blob_exists("mirror/db", &new.layer_digests[0]));

    // Once there, both are unchanged (the untagged one found by its digest).
    let again = sync.run();
    again.assert_all("unchanged");
    assert_eq!(again.result_for(&by_digest)["status"], "unchanged");
    assert_eq!(again.count("blobs_transferred"), 0);
}

#[test]
fn a_digest_the_source_does_not_have_fails_that_rule() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    Seeder::for_registry(&src).push_image(
        "vendor/db",
        "1",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(9, 1_000)],
        ),
    );
    let missing = format!("sha256:{}", "ab".repeat(32));
    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/vendor/db@{missing}", src.host),
            &format!("{}/mirror/db:pinned", dst.host),
        )
        .run();
    run.assert_code(1);
    let result = run.result_for(&format!("{}/mirror/db:pinned", dst.host));
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"]["kind"], "not-found", "{}", run.pretty());
    assert!(Seeder::for_registry(&dst).tags("mirror/db").is_empty());
}
