//! A registry (or a proxy in front of it) that refuses a blob in one large `PUT`: the
//! upload falls back to `PATCH` chunks and a closing `PUT`, and later blobs to the same
//! registry go in chunks straight away. With `--chunk-size`, a chunk broken on the way to
//! distribution 2.8 continues from the offset the registry reports (it does answer the
//! upload's status), and starts the blob again where the status is unknown (`404`).

use crate::support;

use support::fault_proxy::{Fault, FaultProxy, Rule, When};
use support::migrator::{insecure, seed_images, tag_rules};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;

#[test]
fn a_refused_monolithic_put_falls_back_to_patch_chunks() {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let tags = ["a", "b"];
    let images = seed_images(&seeder, "src/app", &tags, 77, 30_000);
    let target = FaultProxy::start(&registry.host);
    // 413 for any upload PUT that carries a body; the closing PUT of a chunked upload
    // carries none and goes through.
    target.add(
        Rule::new(
            Some("PUT"),
            "/blobs/uploads/",
            When::Always,
            Fault::Status(413),
        )
        .with_min_body(1),
    );
    let work = SyncRun::ci(
        &insecure(&[&registry.host, &target.host]),
        &tag_rules(&registry.host, "src/app", &target.host, "dst/app", &tags),
    );
    work.command().arg("--proc").arg("1").assert().success();

    let report = work.report();
    assert_eq!(report["summary"]["copied"], 2, "{report}");
    for (tag, image) in tags.iter().zip(&images) {
        assert_eq!(
            seeder.manifest_digest("dst/app", tag).as_deref(),
            Some(image.manifest_digest.as_str())
        );
        for blob in &image.blob_digests {
            assert_eq!(
                seeder.get_blob("dst/app", blob),
                seeder.get_blob("src/app", blob)
            );
        }
    }
    let log = target.log();
    let refused = log.iter().filter(|l| l.status == Some(413)).count();
    let patches = log.iter().filter(|l| l.method == "PATCH").count();
    let closing_puts = log
        .iter()
        .filter(|l| {
            l.method == "PUT" && l.path.contains("/blobs/uploads/") && l.status == Some(201)
        })
        .count();
    // Only the first monolithic attempt is refused; the registry is then known to want chunks.
    assert_eq!(refused, 1, "{log:#?}");
    assert!(
        patches >= closing_puts && closing_puts >= 1,
        "{patches} PATCH, {closing_puts} PUT"
    );
    // Bodiless POST (upload start) and closing PUT say so with Content-Length: 0, not
    // with an empty chunked body some registries refuse.
    for request in log.iter().filter(|l| {
        l.method == "POST"
            || (l.method == "PUT" && l.path.contains("/blobs/uploads/") && l.status == Some(201))
    }) {
        assert_eq!(request.header("content-length"), Some("0"), "{request:?}");
        assert_eq!(request.header("transfer-encoding"), None, "{request:?}");
    }
    for patch in log.iter().filter(|l| l.method == "PATCH") {
        assert!(patch.header("content-range").is_some(), "{patch:?}");
    }
}

/// `--chunk-size 1M` against distribution 2.8, one full chunk broken on the way (the
/// proxy takes its body and hangs up); with `status_unknown` the proxy answers the
/// upload's status `404`, as a registry that cannot say where an upload stands. The
/// image arrives whole, in two attempts; the upload requests after the break.
fn copy_with_a_broken_chunk(status_unknown: bool) -> Vec<(String, Option<String>, Option<u16>)> {
    const MIB: u64 = 1024 * 1024;
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let images = seed_images(&seeder, "src/app", &["a"], 78, 3 * MIB as usize);
    let target = FaultProxy::start(&registry.host);
    // Full chunks are the first layer's (the config and second layer are smaller).
    target.add(
        Rule::new(
            Some("PATCH"),
            "/blobs/uploads/",
            When::Nth(vec![2]),
            Fault::ResetBeforeResponse,
        )
        .with_min_body(MIB),
    );
    if status_unknown {
        target.inject(
            Some("GET"),
            "/blobs/uploads/",
            When::Always,
            Fault::Status(404),
        );
    }
    let work = SyncRun::ci(
        &insecure(&[&registry.host, &target.host]),
        &tag_rules(&registry.host, "src/app", &target.host, "dst/app", &["a"]),
    );
    work.command()
        .args(["--proc", "1", "--chunk-size", "1M", "--retries", "2"])
        .assert()
        .success();
    assert_eq!(
        seeder.manifest_digest("dst/app", "a").as_deref(),
        Some(images[0].manifest_digest.as_str())
    );
    for blob in &images[0].blob_digests {
        assert_eq!(
            seeder.get_blob("dst/app", blob),
            seeder.get_blob("src/app", blob)
        );
    }
    let report = work.report();
    assert_eq!(report["results"][0]["attempts"], 2, "{report:#}");
    let log = target.log();
    let broken = log
        .iter()
        .position(|r| r.fault.is_some())
        .expect("a broken chunk");
    (log.iter().skip(broken))
        .filter(|r| r.path.contains("/blobs/uploads/") && !r.path.contains("mount="))
        .map(|r| {
            let range = r.header("content-range").map(str::to_string);
            (r.method.clone(), range, r.status)
        })
        .take(4)
        .collect()
}

fn seen(
    method: &str,
    range: Option<&str>,
    status: Option<u16>,
) -> (String, Option<String>, Option<u16>) {
    (method.to_string(), range.map(str::to_string), status)
}

#[test]
fn a_broken_chunk_to_distribution_continues_from_the_offset_it_reports() {
    // distribution 2.8 answers the upload's status (204, `Range: 0-1048575`): the upload
    // goes on from the broken chunk.
    assert_eq!(
        copy_with_a_broken_chunk(false),
        vec![
            seen("PATCH", Some("1048576-2097151"), None),
            seen("GET", None, Some(204)),
            seen("PATCH", Some("1048576-2097151"), Some(202)),
            seen("PATCH", Some("2097152-3145727"), Some(202)),
        ]
    );
}

#[test]
fn a_broken_chunk_where_the_registry_cannot_say_starts_the_blob_again() {
    assert_eq!(
        copy_with_a_broken_chunk(true),
        vec![
            seen("PATCH", Some("1048576-2097151"), None),
            seen("GET", None, Some(404)),
            seen("POST", None, Some(202)),
            seen("PATCH", Some("0-1048575"), Some(202)),
        ]
    );
}
