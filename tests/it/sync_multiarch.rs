//! A user mirrors multi-arch images: a Docker manifest list or an OCI index is copied
//! with every child manifest and every blob, children before the index and blobs before
//! each manifest, and the index bytes (so its digest) unchanged.

use crate::support;

use std::collections::{BTreeSet, HashMap};

use support::registry::TestRegistry;
use support::seed::{
    DOCKER_MANIFEST_LIST, ImageSpec, Media, OCI_INDEX, Pushed, Seeder, deterministic_layer,
    sha256_digest,
};
use support::sync::{
    Access, SyncRun, access_log, assert_skopeo_digest, migrator_requests_since, skopeo,
};

fn children(source: &Seeder, media: Media, base: &[u8], seed: u64) -> Vec<Pushed> {
    ["amd64", "arm64"]
        .iter()
        .enumerate()
        .map(|(i, arch)| {
            source.push_image(
                "multi/app",
                &format!("{media:?}-{arch}").to_lowercase(),
                &ImageSpec::new(
                    media,
                    "linux",
                    arch,
                    vec![base.to_vec(), deterministic_layer(seed + i as u64, 2_000)],
                ),
            )
        })
        .collect()
}

/// Index of the first access-log line matching `pred`, panicking when there is none.
fn first(log: &[Access], what: &str, pred: impl Fn(&Access) -> bool) -> usize {
    log.iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no request for {what} in the target's log: {log:#?}"))
}

#[test]
fn manifest_lists_and_oci_indexes_are_copied_whole() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);

    // Every child of both indexes shares the base layer.
    let base = deterministic_layer(50, 30_000);
    let docker_children = children(&source, Media::Docker, &base, 60);
    let oci_children = children(&source, Media::Oci, &base, 70);
    let list = source.push_index_of(
        "multi/app",
        "list",
        &docker_children.iter().collect::<Vec<_>>(),
        Media::Docker,
    );
    let index = source.push_index_of(
        "multi/app",
        "index",
        &oci_children.iter().collect::<Vec<_>>(),
        Media::Oci,
    );
    let all_children: Vec<&Pushed> = docker_children.iter().chain(&oci_children).collect();
    let unique_blobs: BTreeSet<&String> =
        all_children.iter().flat_map(|c| &c.blob_digests).collect();
    assert_eq!(unique_blobs.len(), 9);
    let src_before = access_log(&src).len();

    let sync = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/multi/app:list", src.host),
            &format!("{}/mirror/app:list", dst.host),
        )
        .rule(
            &format!("{}/multi/app:index", src.host),
            &format!("{}/mirror/app:index", dst.host),
        );
    let run = sync.run();

    run.assert_all("copied");
    assert_eq!(
        target.tags("mirror/app"),
        ["index", "list"],
        "children stay untagged"
    );
    for (tag, digest, media_type) in [
        ("list", &list, DOCKER_MANIFEST_LIST),
        ("index", &index, OCI_INDEX),
    ] {
        let (content_type, bytes) = target.get_manifest("mirror/app", tag).unwrap();
        assert_eq!(content_type, media_type);
        assert_eq!(bytes, source.get_manifest("multi/app", tag).unwrap().1);
        assert_eq!(&sha256_digest(&bytes), digest);
        let result = run.result_for(&format!("{}/mirror/app:{tag}", dst.host));
        assert_eq!(result["media_type"], media_type);
        assert_eq!(result["source_digest"], digest.as_str());
        assert_skopeo_digest(&format!("{}/mirror/app:{tag}", dst.host), digest, None);
    }
    for child in &all_children {
        let (content_type, bytes) = target
            .get_manifest("mirror/app", &child.manifest_digest)
            .unwrap_or_else(|| panic!("child {} missing", child.manifest_digest));
        assert_eq!(content_type, child.media_type);
        assert_eq!(bytes, child.manifest_bytes);
    }
    for blob in &unique_blobs {
        assert!(target.blob_exists("mirror/app", blob), "{blob} missing");
    }

    // Each of the nine blobs crossed the wire once; the shared base layer was found for
    // the other three children.
    assert_eq!(run.count("blobs_transferred"), 9, "{}", run.pretty());
    assert_eq!(run.count("blobs_skipped"), 3, "{}", run.pretty());
    let mut gets: HashMap<String, usize> = HashMap::new();
    for access in access_log(&src).into_iter().skip(src_before) {
        if access.by_migrator() && access.is_blob_get() {
            *gets.entry(access.uri).or_default() += 1;
        }
    }
    assert_eq!(gets.len(), 9, "{gets:#?}");
    assert!(gets.values().all(|&n| n == 1), "{gets:#?}");

    // Order in the target: each blob before the manifests using it, children before
    // their index.
    let log: Vec<Access> = access_log(&dst)
        .into_iter()
        .filter(|a| a.by_migrator() && a.is_write())
        .collect();
    let manifest_put = |reference: &str| {
        first(&log, reference, |a| {
            a.method == "PUT" && a.uri.ends_with(&format!("/manifests/{reference}"))
        })
    };
    for (tag, kids) in [("list", &docker_children), ("index", &oci_children)] {
        let index_put = manifest_put(tag);
        for child in kids.iter() {
            let child_put = manifest_put(&child.manifest_digest);
            assert!(child_put < index_put, "child pushed after its index");
            for blob in &child.blob_digests {
                let blob_done = first(&log, blob, |a| {
                    a.uri.contains("/blobs/uploads/") && a.uri.contains(blob.as_str())
                });
                assert!(blob_done < child_put, "{blob} arrived after its manifest");
            }
        }
    }

    // An independent client can pull every platform from the target.
    let out = tempfile::tempdir().unwrap();
    let policy = out.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    for tag in ["list", "index"] {
        skopeo(&[
            "--policy",
            policy.to_str().unwrap(),
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/mirror/app:{tag}", dst.host),
            &format!("dir:{}", out.path().join(tag).display()),
        ]);
    }

    // Again: both indexes are unchanged after one HEAD each; no child is looked at.
    let src_before = access_log(&src).len();
    let dst_before = access_log(&dst).len();
    let again = sync.run();
    again.assert_all("unchanged");
    assert_eq!(again.count("blobs_transferred"), 0);
    for (reg, before, repo) in [(&src, src_before, "multi"), (&dst, dst_before, "mirror")] {
        let mut requests: Vec<String> = migrator_requests_since(reg, before)
            .into_iter()
            .filter(|a| a.uri != "/v2/")
            .map(|a| format!("{} {}", a.method, a.uri))
            .collect();
        requests.sort();
        assert_eq!(
            requests,
            [
                format!("HEAD /v2/{repo}/app/manifests/index"),
                format!("HEAD /v2/{repo}/app/manifests/list"),
            ]
        );
    }
}
