//! A repository with more tags than one page of the tag list: every tag is found by
//! following the `Link` header (the distribution spec's `n`/`last` pagination), and each
//! is copied. The test registry (distribution 2.8) returns every tag at once, so a proxy
//! in front of it pages the list.

use crate::support;

use support::fault_proxy::{Fault, FaultProxy, When};
use support::migrator::insecure;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

#[test]
fn tags_on_every_page_are_copied() {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let image = seeder.push_image(
        "many/tags",
        "t00",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(9100, 1_000)],
        ),
    );
    let tags: Vec<String> = (0..23).map(|i| format!("t{i:02}")).collect();
    for tag in &tags[1..] {
        seeder.push_manifest("many/tags", tag, &image.media_type, &image.manifest_bytes);
    }
    let source = FaultProxy::start(&registry.host);
    source.inject(
        Some("GET"),
        "/tags/list",
        When::Always,
        Fault::PaginateTags { page: 5 },
    );
    let target = TestRegistry::start();
    let work = SyncRun::ci(
        &insecure(&[&source.host, &target.host]),
        &serde_json::json!({
            format!("{}/many/tags", source.host): format!("{}/mirror/tags", target.host)
        }),
    );
    work.command().assert().success();

    let report = work.report();
    assert_eq!(report["summary"]["copied"], 23, "{report}");
    assert_eq!(Seeder::for_registry(&target).tags("mirror/tags"), tags);
    // Five pages of at most five tags, each asked for after the last tag of the one before.
    let lists: Vec<String> = source
        .log()
        .iter()
        .filter(|l| l.path.contains("/tags/list"))
        .map(|l| l.path.clone())
        .collect();
    assert_eq!(lists.len(), 5, "{lists:?}");
    assert!(!lists[0].contains("last="), "{lists:?}");
    for (page, path) in lists.iter().enumerate().skip(1) {
        let expected_last = format!("last=t{:02}", page * 5 - 1);
        assert!(
            path.contains(&expected_last),
            "{path} should carry {expected_last}"
        );
    }
}
