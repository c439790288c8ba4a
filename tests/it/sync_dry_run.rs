//! A user previews a migration with `--dry-run`: tags are listed and digests compared,
//! the report says what would be copied, and nothing at all is written to the target.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, migrator_requests_since};

#[test]
fn dry_run_reports_would_copy_and_writes_nothing() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let spec = |seed| {
        ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![deterministic_layer(seed, 4_000)],
        )
    };
    let present = source.push_image("team/app", "1", &spec(1));
    let missing = source.push_image("team/app", "2", &spec(2));
    let other = source.push_image("team/other", "x", &spec(3));
    // The target already has tag 1, identical.
    target.push_image("mirror/app", "1", &spec(1));
    let dst_before = access_log(&dst).len();
    let src_before = access_log(&src).len();

    let sync = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/app", src.host),
            &format!("{}/mirror/app", dst.host),
        )
        .rule(
            &format!("{}/team/other:x", src.host),
            &format!("{}/new-repo/other:x", dst.host),
        );
    let run = sync.arg_clone("--dry-run").run();

    run.assert_code(0);
    assert_eq!(run.report()["settings"]["dry_run"], true);
    assert_eq!(run.count("total"), 3);
    assert_eq!(run.count("would_copy"), 2, "{}", run.pretty());
    assert_eq!(run.count("unchanged"), 1, "{}", run.pretty());
    for (target_ref, status, digest) in [
        (
            format!("{}/mirror/app:1", dst.host),
            "unchanged",
            &present.manifest_digest,
        ),
        (
            format!("{}/mirror/app:2", dst.host),
            "would-copy",
            &missing.manifest_digest,
        ),
        (
            format!("{}/new-repo/other:x", dst.host),
            "would-copy",
            &other.manifest_digest,
        ),
    ] {
        let result = run.result_for(&target_ref);
        assert_eq!(result["status"], status, "{target_ref}");
        assert_eq!(result["source_digest"], digest.as_str(), "{target_ref}");
        assert_eq!(result["blobs_transferred"], 0);
        assert_eq!(result["bytes_transferred"], 0);
    }
    for field in [
        "bytes_transferred",
        "blobs_transferred",
        "blobs_mounted",
        "blobs_skipped",
    ] {
        assert_eq!(run.count(field), 0, "{field}");
    }
    assert!(run.stderr.contains("dry run"), "{}", run.stderr);

    // Nothing written, no blob touched, in either registry.
    assert_eq!(target.tags("mirror/app"), ["1"]);
    assert!(target.tags("new-repo/other").is_empty());
    assert!(!target.blob_exists("mirror/app", &missing.layer_digests[0]));
    for (reg, before) in [(&dst, dst_before), (&src, src_before)] {
        let requests = migrator_requests_since(reg, before);
        assert!(!requests.is_empty(), "the dry run did compare digests");
        let touched: Vec<_> = requests
            .iter()
            .filter(|a| a.is_write() || a.uri.contains("/blobs/"))
            .collect();
        assert!(
            touched.is_empty(),
            "dry run wrote or read blobs: {touched:#?}"
        );
        assert!(
            requests
                .iter()
                .all(|a| a.method == "GET" || a.method == "HEAD"),
            "{requests:#?}"
        );
    }

    // The real run then does what the dry run announced.
    let run = sync.run();
    run.assert_code(0);
    assert_eq!(run.count("copied"), 2, "{}", run.pretty());
    assert_eq!(run.count("unchanged"), 1, "{}", run.pretty());
    assert_eq!(target.tags("mirror/app"), ["1", "2"]);
    assert_eq!(
        target.manifest_digest("new-repo/other", "x"),
        Some(other.manifest_digest.clone())
    );
}
