//! A registry (or a proxy in front of it) that refuses a blob in one large `PUT`: the
//! upload falls back to `PATCH` chunks and a closing `PUT`, and later blobs to the same
//! registry go in chunks straight away.

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
