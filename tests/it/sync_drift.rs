//! A mirror whose target tags moved away from the source: with `--overwrite never` a
//! target tag naming another image is left as it is and reported `drifted` with both
//! digests (read back from the target), `--fail-on-drift` makes that exit 1, and the
//! default (`always`) moves it. A target that keeps tags immutable refuses the push in its
//! own words — Harbor's `412 PRECONDITION`, ECR's `TAG_INVALID` — and the image is
//! `immutable` with a hint while the run goes on.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::spec_registry::{Immutability, SpecRegistry, Switches};
use support::sync::SyncRun;

fn spec(seed: u64) -> ImageSpec {
    ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, 4_000)],
    )
}

#[test]
fn overwrite_never_leaves_a_moved_tag_and_reports_it_drifted() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (source, target) = (Seeder::for_registry(&src), Seeder::for_registry(&dst));
    let old = source.push_image("app/x", "1.0", &spec(1));
    let sync = SyncRun::new().insecure(&src.host).insecure(&dst.host).rule(
        &format!("{}/app/x", src.host),
        &format!("{}/mirror/x", dst.host),
    );
    sync.run().assert_all("copied");
    let moved = source.push_image("app/x", "1.0", &spec(2));
    source.push_image("app/x", "2.0", &spec(3));

    let never = sync.arg_clone("--overwrite").arg("never");
    let run = never.run();
    run.assert_code(0);
    let drifted = run.result_for(&format!("{}/mirror/x:1.0", dst.host));
    assert_eq!(drifted["status"], "drifted", "{}", run.pretty());
    assert_eq!(drifted["source_digest"], moved.manifest_digest.as_str());
    assert_eq!(drifted["target_digest"], old.manifest_digest.as_str());
    assert_eq!(drifted["platform_filtered"], false);
    assert_eq!(
        run.result_for(&format!("{}/mirror/x:2.0", dst.host))["status"],
        "copied"
    );
    assert_eq!(run.count("drifted"), 1);
    assert_eq!(run.report()["settings"]["overwrite"], "never");
    assert_eq!(
        target.manifest_digest("mirror/x", "1.0").as_deref(),
        Some(old.manifest_digest.as_str()),
        "the target's image stays"
    );
    assert!(run.stderr.contains("drifted"), "{}", run.stderr);

    never.arg_clone("--fail-on-drift").run().assert_code(1);

    let always = sync.run();
    always.assert_code(0);
    assert_eq!(
        always.result_for(&format!("{}/mirror/x:1.0", dst.host))["status"],
        "copied"
    );
    assert_eq!(
        target.manifest_digest("mirror/x", "1.0").as_deref(),
        Some(moved.manifest_digest.as_str())
    );
}

/// A target that refuses, as `style` does, to move the tag `1.0` it already holds.
fn immutable_target_refuses_and_the_run_goes_on(style: Immutability, says: &str) {
    let source = SpecRegistry::start(Switches::default());
    let target = SpecRegistry::start(Switches {
        immutable_tags: Some(style),
        ..Switches::default()
    });
    let held = target.push_image("dst/app", "1.0", &[b"what the target holds".to_vec()]);
    source.push_image("src/app", "1.0", &[b"the source's new build".to_vec()]);
    source.push_image("src/app", "2.0", &[b"another image".to_vec()]);
    let sync = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/app", source.host),
            &format!("{}/dst/app", target.host),
        );

    let run = sync.run();
    run.assert_code(0);
    let refused = run.result_for(&format!("{}/dst/app:1.0", target.host));
    assert_eq!(refused["status"], "immutable", "{}", run.pretty());
    assert_eq!(refused["error"]["kind"], "immutable");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(says) && message.contains("keeps this tag immutable"),
        "{message}"
    );
    assert_eq!(
        run.result_for(&format!("{}/dst/app:2.0", target.host))["status"],
        "copied",
        "the run goes on"
    );
    assert_eq!(run.count("immutable"), 1);
    assert_eq!(run.count("failed"), 0);
    assert_eq!(target.manifest("dst/app", "1.0"), Some(held.manifest));

    sync.arg_clone("--fail-on-drift").run().assert_code(1);
}

#[test]
fn harbor_immutability_rule_is_reported_immutable() {
    immutable_target_refuses_and_the_run_goes_on(Immutability::Harbor, "configured as immutable");
}

#[test]
fn ecr_immutable_repository_is_reported_immutable() {
    immutable_target_refuses_and_the_run_goes_on(
        Immutability::Ecr,
        "cannot be overwritten because the repository is immutable",
    );
}
