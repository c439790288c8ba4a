//! A user copies single tags: a source with a tag copies that tag only; the target may
//! rename the repository and the tag, takes the source's tag when it has none, and one
//! source may go to several targets (a JSON array, or the same key twice).

use crate::support;

use serde_json::json;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_layer};
use support::sync::{SyncRun, assert_skopeo_digest};

fn seed_three_tags(source: &Seeder) -> (Pushed, Pushed, Pushed) {
    let image = |seed: u64, media: Media| {
        ImageSpec::new(
            media,
            "linux",
            "amd64",
            vec![deterministic_layer(seed, 4_000)],
        )
    };
    (
        source.push_image("library/web", "1.0", &image(1, Media::Docker)),
        source.push_image("library/web", "2.0", &image(2, Media::Oci)),
        source.push_image("library/web", "3.0", &image(3, Media::Oci)),
    )
}

#[test]
fn only_the_named_tag_is_copied() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let (_, two, _) = seed_three_tags(&source);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/library/web:2.0", src.host),
            &format!("{}/library/web:2.0", dst.host),
        )
        .run();

    run.assert_all("copied");
    assert_eq!(run.count("total"), 1);
    assert_eq!(target.tags("library/web"), ["2.0"]);
    assert_eq!(
        target.manifest_digest("library/web", "2.0"),
        Some(two.manifest_digest.clone())
    );
    for blob in &two.blob_digests {
        assert!(target.blob_exists("library/web", blob));
    }
    let result = run.result_for(&format!("{}/library/web:2.0", dst.host));
    assert_eq!(result["blobs_transferred"], 2);
    assert_eq!(result["source_digest"], two.manifest_digest.as_str());
    assert_skopeo_digest(
        &format!("{}/library/web:2.0", dst.host),
        &two.manifest_digest,
        None,
    );
}

#[test]
fn the_target_may_rename_repository_and_tag() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let (one, two, three) = seed_three_tags(&source);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        // New repository path and a new tag.
        .rule(
            &format!("{}/library/web:1.0", src.host),
            &format!("{}/apps/frontend/site:stable", dst.host),
        )
        // New repository, the source's tag.
        .rule(
            &format!("{}/library/web:2.0", src.host),
            &format!("{}/apps/frontend/site", dst.host),
        )
        // One source, two targets, as an array…
        .rule_value(
            &format!("{}/library/web:3.0", src.host),
            json!([
                format!("{}/copies/a:3", dst.host),
                format!("{}/copies/b", dst.host),
            ]),
        )
        // …and as the same key once more.
        .rule(
            &format!("{}/library/web:3.0", src.host),
            &format!("{}/copies/c:three", dst.host),
        )
        .run();

    run.assert_all("copied");
    assert_eq!(run.count("total"), 5, "{}", run.pretty());
    assert_eq!(target.tags("apps/frontend/site"), ["2.0", "stable"]);
    assert_eq!(target.tags("copies/a"), ["3"]);
    assert_eq!(target.tags("copies/b"), ["3.0"]);
    assert_eq!(target.tags("copies/c"), ["three"]);
    assert!(
        target.tags("library/web").is_empty(),
        "nothing under the old name"
    );

    let checks = [
        ("apps/frontend/site", "stable", &one),
        ("apps/frontend/site", "2.0", &two),
        ("copies/a", "3", &three),
        ("copies/b", "3.0", &three),
        ("copies/c", "three", &three),
    ];
    for (repo, tag, pushed) in checks {
        let reference = format!("{}/{repo}:{tag}", dst.host);
        assert_eq!(
            target.manifest_digest(repo, tag).as_ref(),
            Some(&pushed.manifest_digest),
            "{reference}"
        );
        assert_eq!(
            target.get_manifest(repo, tag).unwrap().1,
            pushed.manifest_bytes,
            "{reference}"
        );
        assert_eq!(
            run.result_for(&reference)["source_digest"],
            pushed.manifest_digest.as_str()
        );
        assert_skopeo_digest(&reference, &pushed.manifest_digest, None);
    }
    // 3.0 went to three repositories of one registry: its two blobs were uploaded once
    // and mounted (or found) for the other two.
    let copies: Vec<&serde_json::Value> = run
        .results()
        .iter()
        .filter(|r| r["target"].as_str().unwrap().contains("/copies/"))
        .collect();
    let transferred: u64 = copies
        .iter()
        .map(|r| r["blobs_transferred"].as_u64().unwrap())
        .sum();
    let mounted: u64 = copies
        .iter()
        .map(|r| r["blobs_mounted"].as_u64().unwrap())
        .sum();
    assert_eq!(transferred, 2, "{}", run.pretty());
    assert_eq!(mounted, 4, "{}", run.pretty());
    // Rule lines follow the file: line 2 is the first rule.
    assert_eq!(
        run.result_for(&format!("{}/apps/frontend/site:stable", dst.host))["rule_line"],
        2
    );
    assert_eq!(
        run.result_for(&format!("{}/copies/c:three", dst.host))["rule_line"],
        5
    );
}

#[test]
fn an_image_named_by_two_rules_is_copied_once() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let (one, two, three) = seed_three_tags(&source);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/library/web:2.0", src.host),
            &format!("{}/mirror/web:2.0", dst.host),
        )
        .rule(
            &format!("{}/library/web", src.host),
            &format!("{}/mirror/web", dst.host),
        )
        .run();

    run.assert_all("copied");
    // Three tags, one result each: 2.0 is not copied (and reported) twice.
    assert_eq!(run.count("total"), 3, "{}", run.pretty());
    let two_result = run.result_for(&format!("{}/mirror/web:2.0", dst.host));
    assert_eq!(two_result["rule_line"], 2, "the first rule owns it");
    assert_eq!(run.count("blobs_transferred"), 6, "{}", run.pretty());
    let target = Seeder::for_registry(&dst);
    assert_eq!(target.tags("mirror/web"), ["1.0", "2.0", "3.0"]);
    for (tag, pushed) in [("1.0", &one), ("2.0", &two), ("3.0", &three)] {
        assert_eq!(
            target.manifest_digest("mirror/web", tag).as_ref(),
            Some(&pushed.manifest_digest)
        );
    }
}
