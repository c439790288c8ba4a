//! `--registry-concurrency N` caps the requests waiting for an answer from one registry,
//! however many images and blobs are copied in parallel (registries throttle clients
//! that send too many at once). A blob body being streamed after its answer does not
//! hold a slot; those are bounded by `--proc`.

use crate::support;

use std::time::Duration;

use support::fault_proxy::FaultProxy;
use support::migrator::{insecure, seed_images, tag_rules};
use support::registry::TestRegistry;
use support::sync::SyncRun;

fn run_with_cap(cap: Option<&str>) -> usize {
    let registry = TestRegistry::start();
    let seeder = support::seed::Seeder::for_registry(&registry);
    let tags = ["a", "b", "c", "d", "e", "f"];
    seed_images(&seeder, "src/app", &tags, 55, 5_000);
    let source = FaultProxy::start(&registry.host);
    // A slow registry: every request takes a while, so parallel ones overlap.
    source.set_delay(Duration::from_millis(60));
    let target = TestRegistry::start();
    let work = SyncRun::ci(
        &insecure(&[&source.host, &target.host]),
        &tag_rules(&source.host, "src/app", &target.host, "dst/app", &tags),
    );
    let mut sync = work.command();
    sync.args(["--proc", "8"]);
    if let Some(cap) = cap {
        sync.args(["--registry-concurrency", cap]);
    }
    sync.assert().success();
    assert_eq!(work.report()["summary"]["copied"], 6);
    source.max_in_flight()
}

#[test]
fn requests_to_one_registry_stay_under_the_cap() {
    let capped = run_with_cap(Some("2"));
    assert!(capped <= 2, "{capped} requests in flight with a cap of 2");
    // Without the low cap the same run does overlap more, so the cap is what held it.
    let uncapped = run_with_cap(None);
    assert!(
        uncapped > 2,
        "only {uncapped} in flight without a cap: the test proves nothing"
    );
}
