//! Tags trusted not to change (`--immutable-tags`, a rule's `tags.immutable`): a nightly
//! no-op of a mirror whose tags all match costs one tag-list walk per repository per side
//! and the ping (behind bearer tokens: one token per side) — no manifest request on
//! either side, counted on the spec stand-in's request log — while the same run without
//! them asks each tag. A trusted tag the target
//! lacks is copied as usual. And the two guards of a tags object: `older_than` (a
//! cooldown: only tags created at least that long ago) and `min_tags` (a rule selecting
//! fewer fails, so a broken source never empties a pruned mirror).

use serde_json::json;

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::spec_registry::{Auth, Logged, SpecRegistry, Switches};
use support::sync::SyncRun;
use support::token_server::TokenServer;

const TAGS: usize = 12;

/// A source with `v0`…`v11` (two images) and a target; the rule `src/app → dst/app`.
fn mirror() -> (SpecRegistry, SpecRegistry, SyncRun) {
    let source = SpecRegistry::start(Switches::default());
    let target = SpecRegistry::start(Switches::default());
    let one = source.push_image("src/app", "v0", &[b"one".to_vec()]);
    let two = source.push_image("src/app", "v1", &[b"two".to_vec()]);
    source.tag(
        "src/app",
        (2..TAGS).step_by(2).map(|i| format!("v{i}")),
        &one.digest,
    );
    source.tag(
        "src/app",
        (3..TAGS).step_by(2).map(|i| format!("v{i}")),
        &two.digest,
    );
    let sync = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/app", source.host),
            &format!("{}/dst/app", target.host),
        );
    (source, target, sync)
}

/// The requests `registry` received since `skip`, as `METHOD path` without the ping.
fn since(registry: &SpecRegistry, skip: usize) -> Vec<String> {
    registry.requests()[skip..]
        .iter()
        .filter(|r| r.target != "/v2/")
        .map(Logged::line)
        .collect()
}

fn tag_list_only(lines: &[String]) {
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|line| line.contains("/tags/list")),
        "only tag-list pages: {lines:#?}"
    );
}

#[test]
fn a_no_op_of_trusted_tags_sends_no_manifest_request() {
    let (source, target, sync) = mirror();
    sync.run().assert_all("copied");

    let (src_before, dst_before) = (source.requests().len(), target.requests().len());
    let trusted = sync.arg_clone("--immutable-tags").arg("^v[0-9]+$").run();
    trusted.assert_all("unchanged");
    assert_eq!(trusted.count("unchanged"), TAGS as u64);
    tag_list_only(&since(&source, src_before));
    tag_list_only(&since(&target, dst_before));
    assert_eq!(trusted.report()["settings"]["immutable_tags"], "^v[0-9]+$");

    // The same no-op without trust asks about every tag.
    let dst_before = target.requests().len();
    sync.run().assert_all("unchanged");
    let heads = since(&target, dst_before)
        .into_iter()
        .filter(|line| line.contains("/manifests/"))
        .count();
    assert!(heads >= TAGS, "{heads} manifest requests");
}

#[test]
fn a_rules_own_immutable_pattern_is_trusted_and_a_missing_tag_is_still_copied() {
    let (source, target, _) = mirror();
    let sync = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule_value(
            &format!("{}/src/app", source.host),
            json!({"target": format!("{}/dst/app", target.host), "tags": {"immutable": "^v"}}),
        );
    sync.run().assert_all("copied");
    let fresh = source.push_image("src/app", "v99", &[b"new".to_vec()]);

    let dst_before = target.requests().len();
    let run = sync.run();
    run.assert_code(0);
    assert_eq!(run.count("unchanged"), TAGS as u64);
    assert_eq!(run.count("copied"), 1);
    assert_eq!(
        target.manifest("dst/app", "v99"),
        source.manifest("src/app", "v99")
    );
    let manifests: Vec<String> = since(&target, dst_before)
        .into_iter()
        .filter(|line| line.contains("/manifests/") && !line.contains("/manifests/sha256:"))
        .collect();
    assert_eq!(
        manifests,
        ["PUT /v2/dst/app/manifests/v99".to_string()],
        "{fresh:?}"
    );
}

fn days_ago(days: u64) -> String {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(when).to_string()
}

#[test]
fn older_than_waits_out_a_cooldown_and_min_tags_guards_a_pruned_mirror() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (source, target) = (Seeder::for_registry(&src), Seeder::for_registry(&dst));
    for (seed, tag, age) in [(1, "old", 30), (2, "settled", 8), (3, "fresh", 1)] {
        let spec = ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(seed, 2_000)],
        )
        .created_at(&days_ago(age));
        source.push_image("app/x", tag, &spec);
    }
    let rule = |tags: serde_json::Value| {
        SyncRun::new()
            .insecure(&src.host)
            .insecure(&dst.host)
            .rule_value(
                &format!("{}/app/x", src.host),
                json!({"target": format!("{}/mirror/x", dst.host), "tags": tags}),
            )
    };
    rule(json!({"older_than": "7d"})).run().assert_all("copied");
    let mut tags = target.tags("mirror/x");
    tags.sort();
    assert_eq!(tags, ["old", "settled"]);

    // A source that lost its tags (here: a filter that now selects one) must not empty
    // the mirror: below min_tags the rule fails and nothing is pruned.
    let guarded = rule(json!({"include": "^old$", "min_tags": 2}))
        .arg("--prune")
        .run();
    guarded.assert_code(1);
    let failure = &guarded.results()[0];
    assert_eq!(failure["status"], "failed");
    let message = failure["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("min_tags") && message.contains("1 tag(s) selected"),
        "{message}"
    );
    let mut tags = target.tags("mirror/x");
    tags.sort();
    assert_eq!(tags, ["old", "settled"]);
    assert!(
        guarded.stderr.contains("nothing deleted") && guarded.stderr.contains("min_tags"),
        "{}",
        guarded.stderr
    );
}

#[test]
fn behind_bearer_tokens_a_trusted_no_op_adds_one_token_per_side() {
    let tokens = TokenServer::start(&[(
        "robot",
        "robot-password",
        &[("src/", &["pull"]), ("dst/", &["pull", "push"])],
    )]);
    let gated = || {
        SpecRegistry::start(Switches {
            auth: Auth::Bearer {
                realm: tokens.realm.clone(),
                service: tokens.service.clone(),
                issuer: tokens.issuer.clone(),
            },
            ..Switches::default()
        })
    };
    let (source, target) = (gated(), gated());
    let image = source.push_image("src/app", "v0", &[b"one".to_vec()]);
    source.tag("src/app", (1..TAGS).map(|i| format!("v{i}")), &image.digest);
    let robot = json!({"username": "robot", "password": "robot-password", "insecure": true});
    let sync = SyncRun::new()
        .auth(&source.host, robot.clone())
        .auth(&target.host, robot)
        .rule(
            &format!("{}/src/app", source.host),
            &format!("{}/dst/app", target.host),
        )
        .arg("--immutable-tags")
        .arg("^v");
    sync.run().assert_all("copied");

    let (src_before, dst_before) = (source.requests().len(), target.requests().len());
    let tokens_before = tokens.requests().len();
    sync.run().assert_all("unchanged");
    let answered = |registry: &SpecRegistry, skip: usize| -> Vec<String> {
        registry.requests()[skip..]
            .iter()
            .filter(|r| r.status != 401 && r.target != "/v2/")
            .map(Logged::line)
            .collect()
    };
    tag_list_only(&answered(&source, src_before));
    tag_list_only(&answered(&target, dst_before));
    assert_eq!(
        tokens.requests().len() - tokens_before,
        2,
        "one token per registry: {:#?}",
        &tokens.requests()[tokens_before..]
    );
}
