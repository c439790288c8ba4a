//! A user pastes an image-syncer command line: `-p`/`-r`, `--log FILE`, `--force`. The
//! short flags are the long ones, the log file holds what stderr shows, and `--force`
//! pushes the manifest again while the blobs the target has are still skipped.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, migrator_requests_since};

#[test]
fn force_pushes_manifests_again_and_log_keeps_the_human_log() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let spec = ImageSpec::new(
        Media::Docker,
        "linux",
        "amd64",
        vec![deterministic_layer(31, 3_000)],
    );
    let pushed = source.push_image("team/app", "1.0", &spec);
    let sync = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/app:1.0", src.host),
            &format!("{}/mirror/app", dst.host),
        )
        .arg("-p")
        .arg("2")
        .arg("-r")
        .arg("1");
    let first = sync.run();
    first.assert_all("copied");
    assert_eq!(first.report()["settings"]["proc"], 2);
    assert_eq!(first.report()["settings"]["retries"], 1);

    // Without --force the second run changes nothing.
    sync.run().assert_all("unchanged");

    let before = access_log(&dst).len();
    let forced = sync.arg_clone("--force").arg("--log").arg("run.log").run();
    forced.assert_all("copied");
    assert_eq!(forced.report()["settings"]["force"], true);
    assert_eq!(forced.count("blobs_transferred"), 0, "{}", forced.pretty());
    assert_eq!(
        forced.count("blobs_skipped"),
        pushed.blob_digests.len() as u64
    );
    let manifest_puts = migrator_requests_since(&dst, before)
        .iter()
        .filter(|a| a.method == "PUT" && a.is_manifest())
        .count();
    assert_eq!(manifest_puts, 1, "the manifest is pushed again");

    let log = forced.file("run.log");
    assert!(log.contains("copied"), "{log}");
    assert!(
        log.contains(&format!("{}/mirror/app:1.0", dst.host)),
        "{log}"
    );
    assert!(log.contains("summary: 1 image(s): 1 copied"), "{log}");
    assert!(forced.stderr.contains("summary: 1 image(s): 1 copied"));
}
