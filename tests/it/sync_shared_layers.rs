//! A user mirrors several repositories built on one base image to two registries: within
//! one run each blob crosses the wire at most once per target registry — later jobs
//! mount it from the repository that already has it.

use crate::support;

use std::collections::HashMap;

use serde_json::json;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, assert_skopeo_digest};

#[test]
fn shared_blobs_cross_once_per_target_registry_and_are_mounted_elsewhere() {
    let src = TestRegistry::start();
    let dst1 = TestRegistry::start();
    let dst2 = TestRegistry::start();
    let source = Seeder::for_registry(&src);

    // A few hundred KiB: streamed in many reads, not one buffer.
    let base = deterministic_layer(1, 400_000);
    let a = source.push_image(
        "lib/a",
        "1",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![base.clone(), deterministic_layer(2, 1_000)],
        ),
    );
    let b = source.push_image(
        "lib/b",
        "1",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![base, deterministic_layer(3, 1_000)],
        ),
    );
    assert_eq!(a.layer_digests[0], b.layer_digests[0]);
    let src_before = access_log(&src).len();

    let targets = |repo: &str| {
        json!([
            format!("{}/mirror/{repo}", dst1.host),
            format!("{}/mirror/{repo}", dst2.host),
        ])
    };
    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst1.host)
        .insecure(&dst2.host)
        .rule_value(&format!("{}/lib/a", src.host), targets("a"))
        .rule_value(&format!("{}/lib/b", src.host), targets("b"))
        .run();

    run.assert_all("copied");
    assert_eq!(run.count("total"), 4);
    // Five distinct blobs (base, two layers, two configs) per target registry; the base
    // layer is needed by both repositories of each registry: uploaded once, mounted once.
    assert_eq!(run.count("blobs_transferred"), 10, "{}", run.pretty());
    assert_eq!(run.count("blobs_mounted"), 2, "{}", run.pretty());
    assert_eq!(run.count("blobs_skipped"), 0, "{}", run.pretty());

    let base_digest = &a.layer_digests[0];
    let mut gets: HashMap<String, usize> = HashMap::new();
    for access in access_log(&src).into_iter().skip(src_before) {
        if access.by_migrator() && access.is_blob_get() {
            let digest = access.uri.rsplit('/').next().unwrap().to_string();
            *gets.entry(digest).or_default() += 1;
        }
    }
    assert_eq!(gets.len(), 5, "{gets:#?}");
    assert!(
        gets.values().all(|&n| n == 2),
        "each blob once per target registry: {gets:#?}"
    );

    for dst in [&dst1, &dst2] {
        let target = Seeder::for_registry(dst);
        for (repo, pushed) in [("mirror/a", &a), ("mirror/b", &b)] {
            assert_eq!(
                target.manifest_digest(repo, "1").as_ref(),
                Some(&pushed.manifest_digest)
            );
            for blob in &pushed.blob_digests {
                assert!(target.blob_exists(repo, blob), "{repo}: {blob} missing");
            }
            assert_skopeo_digest(
                &format!("{}/{repo}:1", dst.host),
                &pushed.manifest_digest,
                None,
            );
        }
        let log = access_log(dst);
        let mounts: Vec<_> = log
            .iter()
            .filter(|a| a.by_migrator() && a.method == "POST" && a.uri.contains("mount="))
            // Not the mounts from the repository itself, which ask "is it here?" before
            // an upload (sync_target_requests.rs covers those).
            .filter(|a| {
                let into = a.uri.trim_start_matches("/v2/").split("/blobs/").next();
                let from = a.uri.split("from=").nth(1).map(support::percent_decode);
                from.as_deref() != into
            })
            .collect();
        assert_eq!(mounts.len(), 1, "{mounts:#?}");
        assert_eq!(mounts[0].status, 201, "mounted, not a fresh upload");
        assert!(mounts[0].uri.contains(base_digest.as_str()), "{mounts:#?}");
        let uploads = log
            .iter()
            .filter(|a| a.by_migrator() && a.method == "PUT" && a.uri.contains("/blobs/uploads/"))
            .count();
        assert_eq!(uploads, 5, "one upload per distinct blob");
    }
}
