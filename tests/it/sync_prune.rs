//! A mirror kept true with `--prune`: a tag deleted at the source, or left out by a
//! narrowed filter, is deleted from the target after the copy — read back from the
//! target's tag list. Safety first: `--prune-protect`, `--max-prune`, `--dry-run`, a
//! source that selects nothing, a digest a kept tag shares (distribution 2.8 deletes only
//! by digest), two rules writing one target, a registry that refuses deletes (the copies
//! stand), and with `--referrers` the cosign tags of pruned images. A registry that
//! deletes tags (the spec stand-in) loses only the tag.

use serde_json::{Value, json};

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_layer, fallback_tag};
use support::spec_registry::{SpecRegistry, Switches};
use support::sync::{RunResult, SyncRun};

fn spec(seed: u64) -> ImageSpec {
    ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, 4_000)],
    )
}

/// Two registries, seeders for each, and a whole-repository rule
/// `src/app/x → dst/mirror/x`.
struct Mirror {
    src: TestRegistry,
    dst: TestRegistry,
    source: Seeder,
    target: Seeder,
}

impl Mirror {
    fn start() -> Mirror {
        Mirror::with_target(TestRegistry::start())
    }

    fn with_target(dst: TestRegistry) -> Mirror {
        let src = TestRegistry::start();
        Mirror {
            source: Seeder::for_registry(&src),
            target: Seeder::for_registry(&dst),
            src,
            dst,
        }
    }

    fn push(&self, tag: &str, seed: u64) -> Pushed {
        self.source.push_image("app/x", tag, &spec(seed))
    }

    fn sync(&self) -> SyncRun {
        SyncRun::new()
            .insecure(&self.src.host)
            .insecure(&self.dst.host)
            .rule(
                &format!("{}/app/x", self.src.host),
                &format!("{}/mirror/x", self.dst.host),
            )
    }

    fn target_tags(&self) -> Vec<String> {
        let mut tags = self.target.tags("mirror/x");
        tags.sort();
        tags
    }
}

fn with_args(mut run: SyncRun, args: &[&str]) -> SyncRun {
    for arg in args {
        run = run.arg(arg);
    }
    run
}

/// The report's entry for the first all-tags rule.
fn rule(run: &RunResult) -> &Value {
    &run.report()["rules"][0]
}

fn strings(value: &Value) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn kept(run: &RunResult) -> Vec<(String, String)> {
    rule(run)["prune_kept"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| {
                    (
                        k["tag"].as_str().unwrap().to_string(),
                        k["reason"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_tag_deleted_at_the_source_is_deleted_from_the_target() {
    let m = Mirror::start();
    m.push("a", 1);
    m.push("b", 2);
    let c = m.push("c", 3);
    m.sync().run().assert_all("copied");
    assert_eq!(m.target_tags(), ["a", "b", "c"]);

    m.source.delete_manifest("app/x", &c.manifest_digest);
    let run = with_args(m.sync(), &["--prune"]).run();
    run.assert_all("unchanged");
    assert_eq!(m.target_tags(), ["a", "b"]);
    assert_eq!(strings(&rule(&run)["pruned"]), ["c"]);
    assert_eq!(run.count("pruned"), 1);
    assert_eq!(run.count("prune_failed"), 0);
    assert!(
        run.stderr
            .contains(&format!("pruned     {}/mirror/x:c", m.dst.host)),
        "one log line per deleted tag:\n{}",
        run.stderr
    );
    assert_eq!(run.report()["settings"]["prune"], true);

    // Without --prune nothing is ever deleted.
    m.source
        .delete_manifest("app/x", &m.push("b", 2).manifest_digest);
    m.sync().run().assert_code(0);
    assert_eq!(m.target_tags(), ["a", "b"]);
}

#[test]
fn a_narrowed_filter_prunes_what_it_left_out_and_protected_tags_stay() {
    let m = Mirror::start();
    m.push("v1.0", 1);
    m.push("v2.0", 2);
    m.push("keep-x", 3);
    m.push("other", 4);
    m.sync().run().assert_all("copied");

    let narrowed = SyncRun::new()
        .insecure(&m.src.host)
        .insecure(&m.dst.host)
        .rule_value(
            &format!("{}/app/x", m.src.host),
            json!({"target": format!("{}/mirror/x", m.dst.host), "tags": {"include": "^v1"}}),
        );
    let run = with_args(narrowed, &["--prune", "--prune-protect", "^keep-"]).run();
    run.assert_all("unchanged");
    assert_eq!(m.target_tags(), ["keep-x", "v1.0"]);
    assert_eq!(strings(&rule(&run)["pruned"]), ["other", "v2.0"]);
    assert_eq!(
        kept(&run),
        [("keep-x".to_string(), "matches --prune-protect".to_string())]
    );
}

#[test]
fn dry_run_and_max_prune_delete_nothing() {
    let m = Mirror::start();
    for (i, tag) in ["a", "b", "c"].iter().enumerate() {
        m.push(tag, i as u64 + 1);
    }
    m.sync().run().assert_all("copied");
    m.target.push_image("mirror/x", "stale-1", &spec(10));
    m.target.push_image("mirror/x", "stale-2", &spec(11));

    let dry = with_args(m.sync(), &["--prune", "--dry-run"]).run();
    dry.assert_code(0);
    for tag in ["stale-1", "stale-2"] {
        assert!(
            dry.stderr
                .contains(&format!("would delete {}/mirror/x:{tag}", m.dst.host)),
            "{}",
            dry.stderr
        );
    }
    assert_eq!(strings(&rule(&dry)["pruned"]), ["stale-1", "stale-2"]);
    assert_eq!(m.target_tags(), ["a", "b", "c", "stale-1", "stale-2"]);

    let capped = with_args(m.sync(), &["--prune", "--max-prune", "1"]).run();
    capped.assert_code(1);
    let error = rule(&capped)["prune_error"].as_str().unwrap();
    assert!(
        error.contains("2 tag(s)") && error.contains("--max-prune 1"),
        "{error}"
    );
    assert_eq!(capped.count("prune_failed"), 1);
    assert_eq!(m.target_tags(), ["a", "b", "c", "stale-1", "stale-2"]);
}

#[test]
fn a_digest_a_kept_tag_shares_is_not_deleted_by_digest() {
    let m = Mirror::start();
    let latest = m.push("latest", 1);
    let old = m.push("old", 2);
    m.sync().run().assert_all("copied");
    // A target-only tag on the digest `latest` keeps: deleting it by digest (all that
    // distribution 2.8 can) would take `latest` too.
    m.target.push_manifest(
        "mirror/x",
        "alias",
        &latest.media_type,
        &latest.manifest_bytes,
    );
    m.source.delete_manifest("app/x", &old.manifest_digest);

    let run = with_args(m.sync(), &["--prune"]).run();
    run.assert_all("unchanged");
    assert_eq!(m.target_tags(), ["alias", "latest"]);
    assert_eq!(strings(&rule(&run)["pruned"]), ["old"]);
    let kept = kept(&run);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].0, "alias");
    assert!(
        kept[0].1.contains("kept tag latest") && kept[0].1.contains(&latest.manifest_digest),
        "{}",
        kept[0].1
    );
    assert!(m.target.manifest_digest("mirror/x", "latest").is_some());
}

#[test]
fn two_rules_on_one_target_prune_only_what_neither_selects() {
    let m = Mirror::start();
    m.source.push_image("app/one", "1", &spec(1));
    m.source.push_image("app/two", "2", &spec(2));
    m.target.push_image("mirror/all", "stale", &spec(3));
    let run = SyncRun::new()
        .insecure(&m.src.host)
        .insecure(&m.dst.host)
        .rule(
            &format!("{}/app/one", m.src.host),
            &format!("{}/mirror/all", m.dst.host),
        )
        .rule(
            &format!("{}/app/two", m.src.host),
            &format!("{}/mirror/all", m.dst.host),
        )
        .arg("--prune")
        .run();
    run.assert_all("copied");
    let mut tags = m.target.tags("mirror/all");
    tags.sort();
    assert_eq!(tags, ["1", "2"]);
    assert_eq!(run.count("pruned"), 1);
}

#[test]
fn a_source_that_selects_nothing_prunes_nothing() {
    let m = Mirror::start();
    let a = m.push("a", 1);
    m.sync().run().assert_all("copied");
    m.source.delete_manifest("app/x", &a.manifest_digest);

    let run = with_args(m.sync(), &["--prune"]).run();
    run.assert_code(0);
    assert_eq!(m.target_tags(), ["a"]);
    assert_eq!(run.count("pruned"), 0);
    let skipped = rule(&run)["prune_skipped"].as_str().unwrap();
    assert!(skipped.contains("selected no tags"), "{skipped}");
    assert!(
        run.stderr.contains("nothing deleted") && run.stderr.contains("selected no tags"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_registry_refusing_deletes_fails_the_prune_with_a_hint_and_the_copies_stand() {
    let m = Mirror::with_target(TestRegistry::start_without_deletes());
    let a = m.push("a", 1);
    m.sync().run().assert_all("copied");
    m.source.delete_manifest("app/x", &a.manifest_digest);
    m.push("b", 2);

    let run = with_args(m.sync(), &["--prune"]).run();
    run.assert_code(1);
    assert_eq!(
        run.result_for(&format!("{}/mirror/x:b", m.dst.host))["status"],
        "copied"
    );
    assert_eq!(m.target_tags(), ["a", "b"]);
    let error = rule(&run)["prune_error"].as_str().unwrap();
    assert!(
        error.contains("UNSUPPORTED") && error.contains("REGISTRY_STORAGE_DELETE_ENABLED=true"),
        "{error}"
    );
    assert_eq!(run.count("failed"), 0, "the copies stand");
}

#[test]
fn with_referrers_the_cosign_signature_of_a_pruned_image_goes_too() {
    let m = Mirror::start();
    m.push("a", 1);
    let b = m.push("b", 2);
    m.source
        .push_cosign_signature("app/x", &b.manifest_digest, 7);
    with_args(m.sync(), &["--referrers"]).run().assert_code(0);
    let signature = format!("{}.sig", fallback_tag(&b.manifest_digest));
    assert!(m.target_tags().contains(&signature));

    m.source.delete_manifest("app/x", &b.manifest_digest);
    let run = with_args(m.sync(), &["--referrers", "--prune"]).run();
    run.assert_code(0);
    assert_eq!(m.target_tags(), ["a"], "{}\n{}", run.stderr, run.pretty());
    assert_eq!(
        strings(&rule(&run)["pruned"]),
        vec!["b".to_string(), signature]
    );
}

#[test]
fn a_registry_that_deletes_tags_loses_only_the_tag() {
    let source = SpecRegistry::start(Switches::default());
    let target = SpecRegistry::start(Switches {
        deletes: true,
        ..Switches::default()
    });
    let image = source.push_image("src/app", "latest", &[b"one layer".to_vec()]);
    let sync = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/app", source.host),
            &format!("{}/dst/app", target.host),
        )
        .arg("--prune");
    sync.run().assert_all("copied");
    target.tag("dst/app", ["alias".to_string()], &image.digest);

    let run = sync.run();
    run.assert_all("unchanged");
    assert_eq!(target.tags("dst/app"), ["latest"]);
    assert_eq!(strings(&rule(&run)["pruned"]), ["alias"]);
    let deletes = target.lines(|r| r.method == "DELETE");
    assert_eq!(deletes, ["DELETE /v2/dst/app/manifests/alias"]);
}

#[test]
fn a_bad_prune_protect_expression_is_a_configuration_error() {
    let run = SyncRun::new()
        .rule("src.example/app/x", "dst.example/mirror/x")
        .arg("--prune")
        .arg("--prune-protect")
        .arg("(unclosed")
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("--prune-protect") && run.stderr.contains("/(unclosed/"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was copied"), "{}", run.stderr);
}
