//! A user mirrors a whole repository: a source without a tag copies every tag, Docker
//! schema2 and OCI manifests alike, with their bytes (and so digests) unchanged, and each
//! blob crosses the wire once even when several tags share it.

use crate::support;

use std::collections::HashMap;

use support::registry::TestRegistry;
use support::seed::{DOCKER_MANIFEST, ImageSpec, Media, OCI_MANIFEST, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, assert_skopeo_digest};

#[test]
fn every_tag_of_the_repository_is_copied_with_identical_digests() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);

    let base = deterministic_layer(100, 20_000);
    let docker = source.push_image(
        "team/app",
        "1.0",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![base.clone(), deterministic_layer(101, 3_000)],
        ),
    );
    let oci_spec = ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![base, deterministic_layer(102, 5_000)],
    );
    let oci = source.push_image("team/app", "1.1", &oci_spec);
    source.push_image("team/app", "latest", &oci_spec);
    let unique_blobs: std::collections::BTreeSet<&String> = docker
        .blob_digests
        .iter()
        .chain(&oci.blob_digests)
        .collect();
    assert_eq!(unique_blobs.len(), 5, "the base layer is shared");
    let before = access_log(&src).len();

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/app", src.host),
            &format!("{}/mirror/app", dst.host),
        )
        .run();

    run.assert_all("copied");
    assert_eq!(target.tags("mirror/app"), ["1.0", "1.1", "latest"]);
    let expected = [
        ("1.0", &docker.manifest_digest, DOCKER_MANIFEST),
        ("1.1", &oci.manifest_digest, OCI_MANIFEST),
        ("latest", &oci.manifest_digest, OCI_MANIFEST),
    ];
    for (tag, digest, media_type) in expected {
        assert_eq!(
            target.manifest_digest("mirror/app", tag).as_ref(),
            Some(digest),
            "{tag}"
        );
        let (content_type, bytes) = target.get_manifest("mirror/app", tag).unwrap();
        assert_eq!(content_type, media_type, "{tag}");
        assert_eq!(
            bytes,
            source.get_manifest("team/app", tag).unwrap().1,
            "{tag}: bytes unchanged"
        );
        let result = run.result_for(&format!("{}/mirror/app:{tag}", dst.host));
        assert_eq!(result["source"], format!("{}/team/app:{tag}", src.host));
        assert_eq!(result["source_digest"], digest.as_str());
        assert_eq!(result["media_type"], media_type);
        assert_eq!(result["rule"], format!("{}/team/app", src.host));
        assert_eq!(result["rule_line"], 2);
        assert_skopeo_digest(&format!("{}/mirror/app:{tag}", dst.host), digest, None);
    }
    for blob in &unique_blobs {
        assert!(target.blob_exists("mirror/app", blob), "{blob} missing");
    }

    // Five distinct blobs, each transferred exactly once; the third tag's blobs were
    // already there (or being uploaded by another job).
    assert_eq!(run.count("total"), 3);
    assert_eq!(run.count("copied"), 3);
    assert_eq!(run.count("blobs_transferred"), 5, "{}", run.pretty());
    assert_eq!(run.count("blobs_mounted"), 0);
    assert_eq!(run.count("blobs_skipped"), 4, "{}", run.pretty());
    let blob_sizes: u64 = unique_blobs
        .iter()
        .map(|d| source.get_blob("team/app", d).unwrap().len() as u64)
        .sum();
    assert_eq!(run.count("bytes_transferred"), blob_sizes);

    let mut gets: HashMap<String, usize> = HashMap::new();
    for access in access_log(&src).into_iter().skip(before) {
        if access.by_migrator() && access.is_blob_get() {
            *gets.entry(access.uri).or_default() += 1;
        }
    }
    assert_eq!(gets.len(), 5, "{gets:#?}");
    assert!(
        gets.values().all(|&n| n == 1),
        "a blob was fetched twice: {gets:#?}"
    );

    let log = &run.stderr;
    assert!(log.contains("summary: 3 image(s): 3 copied"), "{log}");
}
