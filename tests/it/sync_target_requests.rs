//! A user syncing into a far-away or busy registry pays per request: a cold sync sends the
//! target about two requests per new blob (a mount from the repository itself, which
//! answers 201 when the blob is there and opens the upload otherwise, then the upload's
//! `PUT`), one per manifest and two per repository (a `HEAD` that misses, then the tag
//! list that spares the other tags' `HEAD`s); a no-op sync one `HEAD` per tag. A registry
//! that will not mount from the repository itself gets the `HEAD` + `POST` + `PUT` ladder.
//! On the source, a tag the target's list shows absent is fetched with one `GET` by tag, no
//! `HEAD` first; in a new repository the target is asked first, so that its first tag is
//! one of those. Target requests are counted by a (fault-free) proxy in front of the target
//! registry, source requests in the source registry's access log.

use crate::support;

use std::collections::HashSet;

use serde_json::Value;
use support::fault_proxy::{Fault, FaultProxy, Logged, Rule, When};
use support::migrator::{assert_tags_complete, insecure, seed_images, tag_rules};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder, deterministic_layer, sha256_digest};
use support::sync::{SyncRun, access_log, migrator_requests_since};

const LAYER: usize = 20_000;

fn rules(src: &str, dst: &str, repos: &[(&str, &[&str])]) -> Value {
    let mut all = serde_json::Map::new();
    for (repo, tags) in repos {
        let Value::Object(map) = tag_rules(
            src,
            &format!("src/{repo}"),
            dst,
            &format!("dst/{repo}"),
            tags,
        ) else {
            unreachable!()
        };
        all.extend(map);
    }
    Value::Object(all)
}

fn unique_blobs(images: &[&Pushed]) -> HashSet<String> {
    images
        .iter()
        .flat_map(|i| i.blob_digests.iter().cloned())
        .collect()
}

fn count(log: &[Logged], f: impl Fn(&Logged) -> bool) -> usize {
    log.iter().filter(|l| f(l)).count()
}

fn is_upload_put(l: &Logged) -> bool {
    l.method == "PUT" && l.path.contains("/blobs/uploads/")
}

fn is_self_mount(l: &Logged, repo: &str) -> bool {
    l.method == "POST"
        && l.path
            .starts_with(&format!("/v2/{repo}/blobs/uploads/?mount="))
        && l.path
            .contains(&format!("from={}", repo.replace('/', "%2F")))
}

#[test]
fn cold_sync_sends_two_target_requests_per_new_blob_and_no_op_one_per_tag() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let a_tags: &[&str] = &["1", "2", "3", "4"];
    let b_tags: &[&str] = &["1", "2", "3"];
    let a = seed_images(&source, "src/a", a_tags, 5, LAYER);
    let b = seed_images(&source, "src/b", b_tags, 6, LAYER);
    // A blob the target repository has already (an interrupted earlier run): the mount
    // from the repository itself answers 201 for it and it is not uploaded again.
    let kept = deterministic_layer(5 * 1000 + 10, LAYER);
    let kept_digest = sha256_digest(&kept);
    assert!(a[1].blob_digests.contains(&kept_digest));
    target.push_blob("dst/a", &kept);

    let proxy = FaultProxy::start(&dst.host);
    let work = SyncRun::ci(
        &insecure(&[&src.host, &proxy.host]),
        &rules(&src.host, &proxy.host, &[("a", a_tags), ("b", b_tags)]),
    );
    // One worker: the order of requests, and so their count, is the same every run.
    let src_before = access_log(&src).len();
    work.command().arg("--proc").arg("1").assert().success();
    let report = work.report();
    assert_eq!(report["summary"]["copied"], 7, "{report}");

    // The source: a HEAD for the run's first tag only (before a manifest answer says the
    // source counts no pulls); after it the target is asked first in a repository whose
    // tag list is not read yet, and once the list shows a tag absent, its manifest is
    // fetched by tag at once (one request, the same one pull); nothing is fetched twice.
    let source_log = migrator_requests_since(&src, src_before);
    let source_heads = source_log
        .iter()
        .filter(|a| a.method == "HEAD" && a.is_manifest())
        .count();
    assert_eq!(source_heads, 1, "{source_log:#?}");
    let mut manifest_gets: Vec<&str> = source_log
        .iter()
        .filter(|a| a.method == "GET" && a.is_manifest())
        .map(|a| a.uri.as_str())
        .collect();
    assert_eq!(
        manifest_gets.len(),
        7,
        "one GET per manifest: {source_log:#?}"
    );
    manifest_gets.sort_unstable();
    manifest_gets.dedup();
    assert_eq!(
        manifest_gets.len(),
        7,
        "none fetched twice: {source_log:#?}"
    );
    for (repo, tags, images) in [("dst/a", a_tags, &a), ("dst/b", b_tags, &b)] {
        for (tag, image) in tags.iter().zip(images.iter()) {
            assert_eq!(
                target.manifest_digest(repo, tag).as_deref(),
                Some(image.manifest_digest.as_str())
            );
        }
        assert_eq!(assert_tags_complete(&target, repo), tags.len());
    }

    let cold = proxy.log();
    let blobs_a = unique_blobs(&a.iter().collect::<Vec<_>>());
    let blobs_b = unique_blobs(&b.iter().collect::<Vec<_>>());
    let new_blobs = blobs_a.len() - 1 + blobs_b.len();
    let uploads = count(&cold, is_upload_put);
    assert_eq!(uploads, new_blobs, "each new blob uploaded once: {cold:#?}");
    assert_eq!(
        count(&cold, |l| is_upload_put(l) && l.path.contains(&kept_digest)),
        0,
        "the blob already in the target is not uploaded again: {cold:#?}"
    );
    // Only blobs before the registry's answer to the one probe are checked with HEAD.
    let blob_heads = count(&cold, |l| l.method == "HEAD" && l.path.contains("/blobs/"));
    assert!(blob_heads <= 1, "{blob_heads} blob HEADs: {cold:#?}");
    let self_mounts = count(&cold, |l| {
        is_self_mount(l, "dst/a") || is_self_mount(l, "dst/b")
    });
    assert!(
        self_mounts >= new_blobs - 1,
        "{self_mounts} self-mounts for {new_blobs} new blobs: {cold:#?}"
    );
    // One HEAD that misses, then one tag list, per repository.
    assert_eq!(
        count(&cold, |l| l.path.contains("/tags/list")),
        2,
        "{cold:#?}"
    );
    assert_eq!(
        count(&cold, |l| l.method == "HEAD"
            && l.path.contains("/manifests/")),
        2,
        "{cold:#?}"
    );
    let manifests = 7;
    // + the ping, the first blob's HEAD and the probe after it, and one mount (201) for
    // the blob that was there already.
    let budget = 2 * new_blobs + manifests + 2 * 2 + 1 + 2 + 1;
    assert!(
        cold.len() <= budget,
        "{} target requests, budget {budget} ({new_blobs} new blobs): {cold:#?}",
        cold.len()
    );

    work.command().arg("--proc").arg("1").assert().success();
    assert_eq!(work.report()["summary"]["unchanged"], 7);
    let no_op = &proxy.log()[cold.len()..];
    let heads = count(no_op, |l| {
        l.method == "HEAD" && l.path.contains("/manifests/")
    });
    assert_eq!(heads, 7, "{no_op:#?}");
    assert!(no_op.len() <= 7 + 1, "no-op: {no_op:#?}"); // + ping
}

#[test]
fn a_registry_that_refuses_mounts_from_the_repository_itself_gets_head_then_upload() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let tags: &[&str] = &["1", "2", "3"];
    let images = seed_images(&source, "src/app", tags, 7, LAYER);
    let proxy = FaultProxy::start(&dst.host);
    proxy.add(Rule::new(
        Some("POST"),
        "/v2/dst/app/blobs/uploads/?mount=",
        When::Always,
        Fault::Status(405),
    ));
    let work = SyncRun::ci(
        &insecure(&[&src.host, &proxy.host]),
        &tag_rules(&src.host, "src/app", &proxy.host, "dst/app", tags),
    );
    work.command().arg("--proc").arg("1").assert().success();
    assert_eq!(work.report()["summary"]["copied"], 3);
    for (tag, image) in tags.iter().zip(&images) {
        assert_eq!(
            target.manifest_digest("dst/app", tag).as_deref(),
            Some(image.manifest_digest.as_str())
        );
    }
    assert_eq!(assert_tags_complete(&target, "dst/app"), 3);

    let log = proxy.log();
    let blobs = unique_blobs(&images.iter().collect::<Vec<_>>()).len();
    // Probed once, then never asked again; every blob checked with HEAD and uploaded.
    assert_eq!(count(&log, |l| is_self_mount(l, "dst/app")), 1, "{log:#?}");
    assert_eq!(
        count(&log, |l| l.method == "HEAD" && l.path.contains("/blobs/")),
        blobs,
        "{log:#?}"
    );
    assert_eq!(count(&log, is_upload_put), blobs, "{log:#?}");
}

#[test]
fn blobs_from_the_source_reuse_its_connections() {
    // A blob body whose end was never read kept its connection out of the pool: every
    // blob cost a new connection (over TLS, a handshake on the source registry).
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let tags: &[&str] = &["1", "2", "3", "4", "5", "6"];
    let images = seed_images(&source, "src/app", tags, 8, LAYER);
    let blobs = unique_blobs(&images.iter().collect::<Vec<_>>()).len();
    let proxy = FaultProxy::start(&src.host);
    let work = SyncRun::ci(
        &insecure(&[&proxy.host, &dst.host]),
        &tag_rules(&proxy.host, "src/app", &dst.host, "dst/app", tags),
    );
    work.command().arg("--proc").arg("2").assert().success();
    assert_eq!(work.report()["summary"]["copied"], 6);
    let blob_gets = count(&proxy.log(), |l| {
        l.method == "GET" && l.path.contains("/blobs/sha256:")
    });
    assert_eq!(blob_gets, blobs, "{:#?}", proxy.log());
    // Two workers: a connection or two each (and one for planning), not one per blob.
    let connections = proxy.connections();
    assert!(
        connections <= 4,
        "{connections} connections for {blob_gets} blob GETs and {} requests",
        proxy.log().len()
    );
}

/// The target registry is pinged while the sources are being listed, not after: the copy's
/// first requests find its answer (and a connection) ready, a round trip and a handshake
/// less on a far registry. Here the source answers each request after 300 ms; the target's
/// ping arrives before the source has been asked for its tag list at all.
#[test]
fn the_target_is_pinged_while_the_sources_are_listed() {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let images = seed_images(&seeder, "src/app", &["1", "2"], 7, LAYER);
    let slow_source = FaultProxy::start(&registry.host);
    slow_source.set_delay(std::time::Duration::from_millis(300));
    let target = FaultProxy::start(&registry.host);
    let work = SyncRun::ci(
        &insecure(&[&slow_source.host, &target.host]),
        &serde_json::json!({
            format!("{}/src/app", slow_source.host): format!("{}/dst/app", target.host)
        }),
    );
    work.command().assert().success();
    assert_eq!(assert_tags_complete(&seeder, "dst/app"), images.len());
    let tag_list = slow_source
        .log()
        .into_iter()
        .find(|l| l.path.contains("/tags/list"))
        .expect("the source's tags were listed");
    let target_log = target.log();
    let ping = target_log
        .iter()
        .find(|l| l.path == "/v2/")
        .expect("the target was pinged");
    assert!(
        ping.at < tag_list.at,
        "the target's ping came {:?} after the source's tag list was asked for",
        ping.at - tag_list.at
    );
    assert_eq!(
        count(&target_log, |l| l.path == "/v2/"),
        1,
        "{target_log:#?}"
    );
}

/// Far away, a tag that did not change costs one round trip, not two: once a far target
/// repository has answered a `HEAD`, the target's `HEAD` of a tag goes out with the
/// source's, not after its answer. Here both registries answer each request after 100 ms;
/// in the no-op run (one worker, three tags) the second and third tags are asked of both
/// at once — and still once per tag on each side.
#[test]
fn far_away_a_no_op_asks_source_and_target_at_once_for_each_tag() {
    let registry = TestRegistry::start();
    let seeder = Seeder::for_registry(&registry);
    let tags = ["1", "2", "3"];
    seed_images(&seeder, "src/app", &tags, 8, LAYER);
    let source = FaultProxy::start(&registry.host);
    let target = FaultProxy::start(&registry.host);
    let work = SyncRun::ci(
        &insecure(&[&source.host, &target.host]),
        &tag_rules(&source.host, "src/app", &target.host, "dst/app", &tags),
    );
    work.command().args(["--proc", "1"]).assert().success();
    let far = std::time::Duration::from_millis(100);
    source.set_delay(far);
    target.set_delay(far);
    let (source_before, target_before) = (source.log().len(), target.log().len());
    work.command().args(["--proc", "1"]).assert().success();
    assert_eq!(work.report()["summary"]["unchanged"], 3);
    let heads = |log: Vec<Logged>, before: usize| -> Vec<Logged> {
        log.into_iter()
            .skip(before)
            .filter(|l| l.method == "HEAD" && l.path.contains("/manifests/"))
            .collect()
    };
    let source_heads = heads(source.log(), source_before);
    let target_heads = heads(target.log(), target_before);
    assert_eq!(source_heads.len(), 3, "{source_heads:#?}");
    assert_eq!(target_heads.len(), 3, "{target_heads:#?}");
    let at = |heads: &[Logged], tag: &str| {
        heads
            .iter()
            .find(|l| l.path.ends_with(&format!("/manifests/{tag}")))
            .map(|l| l.at)
            .expect("asked")
    };
    // The first tag: the target is asked after the source answered (its first answer
    // tells how far it is).
    let (first_source, first_target) = (at(&source_heads, "1"), at(&target_heads, "1"));
    assert!(first_target >= first_source + far, "the first tag in turn");
    for tag in &tags[1..] {
        // Each proxy logs a request after holding it for 100 ms: sent together, logged
        // together; sent one after the other's answer, 100 ms apart.
        let (source, target) = (at(&source_heads, tag), at(&target_heads, tag));
        let apart = target.max(source) - target.min(source);
        assert!(
            apart < far / 2,
            "tag {tag}: the two were asked {apart:?} apart"
        );
    }
}
