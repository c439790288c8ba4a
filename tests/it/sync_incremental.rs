//! A user runs the same migration again (a nightly CI job): what is already in the target
//! is left alone — reported `unchanged`, no blob moves, one manifest request per tag per
//! registry plus the tag lists — and a target tag that differs from the source is updated.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_layer};
use support::sync::{Access, SyncRun, access_log, assert_skopeo_digest, migrator_requests_since};

fn spec(seed: u64, media: Media) -> ImageSpec {
    ImageSpec::new(
        media,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, 8_000)],
    )
}

/// The product's requests apart from the `GET /v2/` ping.
fn api_requests(reg: &TestRegistry, skip: usize) -> Vec<Access> {
    migrator_requests_since(reg, skip)
        .into_iter()
        .filter(|a| a.uri != "/v2/")
        .collect()
}

#[test]
fn a_second_run_changes_nothing_and_moves_no_blob() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let a = source.push_image("app/x", "a", &spec(1, Media::Docker));
    source.push_image("app/x", "b", &spec(1, Media::Docker));
    let c = source.push_image("app/x", "c", &spec(2, Media::Oci));
    let y = source.push_image("app/y", "1", &spec(3, Media::Oci));
    let sync = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/app/x", src.host),
            &format!("{}/mirror/x", dst.host),
        )
        .rule(
            &format!("{}/app/y:1", src.host),
            &format!("{}/mirror/y:1", dst.host),
        );

    let first = sync.run();
    first.assert_all("copied");
    assert_eq!(first.count("total"), 4);
    assert!(first.count("blobs_transferred") > 0);

    let src_before = access_log(&src).len();
    let dst_before = access_log(&dst).len();
    let second = sync.run();

    second.assert_all("unchanged");
    assert_eq!(second.count("total"), 4);
    assert_eq!(second.count("unchanged"), 4);
    for field in [
        "bytes_transferred",
        "blobs_transferred",
        "blobs_mounted",
        "blobs_skipped",
    ] {
        assert_eq!(second.count(field), 0, "{field}");
    }
    for (target_ref, pushed) in [
        (format!("{}/mirror/x:a", dst.host), &a),
        (format!("{}/mirror/x:b", dst.host), &a),
        (format!("{}/mirror/x:c", dst.host), &c),
        (format!("{}/mirror/y:1", dst.host), &y),
    ] {
        let result = second.result_for(&target_ref);
        assert_eq!(result["source_digest"], pushed.manifest_digest.as_str());
        assert_eq!(result["media_type"], pushed.media_type.as_str());
    }

    // Source: the tag list of the whole-repository rule and one manifest HEAD per tag.
    let src_requests = api_requests(&src, src_before);
    let describe = |r: &[Access]| format!("{r:#?}");
    assert!(
        !src_requests.iter().any(|r| r.uri.contains("/blobs/")),
        "no blob request: {}",
        describe(&src_requests)
    );
    let tag_lists: Vec<&Access> = src_requests.iter().filter(|r| r.is_tag_list()).collect();
    assert_eq!(tag_lists.len(), 1, "{}", describe(&src_requests));
    assert!(tag_lists[0].uri.starts_with("/v2/app/x/tags/list"));
    let mut manifests: Vec<String> = src_requests
        .iter()
        .filter(|r| r.is_manifest())
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    manifests.sort();
    assert_eq!(
        manifests,
        [
            "HEAD /v2/app/x/manifests/a",
            "HEAD /v2/app/x/manifests/b",
            "HEAD /v2/app/x/manifests/c",
            "HEAD /v2/app/y/manifests/1",
        ],
        "{}",
        describe(&src_requests)
    );
    assert_eq!(src_requests.len(), 5, "{}", describe(&src_requests));

    // Target: one manifest HEAD per tag, nothing else.
    let dst_requests = api_requests(&dst, dst_before);
    let mut manifests: Vec<String> = dst_requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    manifests.sort();
    assert_eq!(
        manifests,
        [
            "HEAD /v2/mirror/x/manifests/a",
            "HEAD /v2/mirror/x/manifests/b",
            "HEAD /v2/mirror/x/manifests/c",
            "HEAD /v2/mirror/y/manifests/1",
        ],
        "{}",
        describe(&dst_requests)
    );
    assert_eq!(target.tags("mirror/x"), ["a", "b", "c"]);
    assert!(second.stderr.contains("4 unchanged"), "{}", second.stderr);
}

#[test]
fn a_target_tag_that_differs_is_updated() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let current = source.push_image("app/x", "stable", &spec(10, Media::Oci));
    let same = source.push_image("app/x", "old", &spec(11, Media::Oci));
    // The target has an outdated `stable` and an up-to-date `old`.
    let outdated: Pushed = target.push_image("mirror/x", "stable", &spec(12, Media::Oci));
    target.push_image("mirror/x", "old", &spec(11, Media::Oci));
    assert_ne!(outdated.manifest_digest, current.manifest_digest);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/app/x", src.host),
            &format!("{}/mirror/x", dst.host),
        )
        .run();

    run.assert_code(0);
    let stable = run.result_for(&format!("{}/mirror/x:stable", dst.host));
    assert_eq!(stable["status"], "copied", "{}", run.pretty());
    assert_eq!(stable["source_digest"], current.manifest_digest.as_str());
    assert_eq!(stable["blobs_transferred"], 2, "config and layer");
    let old = run.result_for(&format!("{}/mirror/x:old", dst.host));
    assert_eq!(old["status"], "unchanged", "{}", run.pretty());
    assert_eq!(old["blobs_transferred"], 0);

    assert_eq!(
        target.manifest_digest("mirror/x", "stable"),
        Some(current.manifest_digest.clone())
    );
    assert_eq!(
        target.manifest_digest("mirror/x", "old"),
        Some(same.manifest_digest.clone())
    );
    assert_skopeo_digest(
        &format!("{}/mirror/x:stable", dst.host),
        &current.manifest_digest,
        None,
    );
}
