//! A user leaves the target empty: the image goes to the default registry and namespace
//! (`--default-registry`/`--default-namespace`, their aliases, or DEFAULT_REGISTRY and
//! DEFAULT_NAMESPACE; a flag beats the variable), keeping the repository and tag.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_layer};
use support::sync::{SyncRun, assert_skopeo_digest};

fn seed(src: &TestRegistry) -> (Pushed, Pushed) {
    let source = Seeder::for_registry(src);
    let spec = |seed| {
        ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(seed, 3_000)],
        )
    };
    let v1 = source.push_image("upstream/tools/cli", "v1", &spec(1));
    // Not named by the rules: the one-tag rule copies v1 only.
    source.push_image("upstream/tools/cli", "v0", &spec(0));
    let v2 = source.push_image("upstream/libs/runtime", "v2", &spec(2));
    (v1, v2)
}

fn empty_target_rules(src: &TestRegistry, dst: &TestRegistry) -> SyncRun {
    SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(&format!("{}/upstream/tools/cli:v1", src.host), "")
        .rule(&format!("{}/upstream/libs/runtime", src.host), "")
}

fn assert_in_default_location(
    run: &support::sync::RunResult,
    dst: &TestRegistry,
    ns: &str,
    v1: &Pushed,
    v2: &Pushed,
) {
    run.assert_all("copied");
    assert_eq!(run.count("total"), 2, "{}", run.pretty());
    let target = Seeder::for_registry(dst);
    // <default-registry>/<default-namespace>/<source path minus its first segment>
    let cli = format!("{ns}/tools/cli");
    let runtime = format!("{ns}/libs/runtime");
    assert_eq!(target.tags(&cli), ["v1"]);
    assert_eq!(target.tags(&runtime), ["v2"]);
    for (repo, tag, pushed) in [(&cli, "v1", v1), (&runtime, "v2", v2)] {
        assert_eq!(
            target.manifest_digest(repo, tag).as_ref(),
            Some(&pushed.manifest_digest)
        );
        let reference = format!("{}/{repo}:{tag}", dst.host);
        assert_eq!(run.result_for(&reference)["status"], "copied");
        assert_skopeo_digest(&reference, &pushed.manifest_digest, None);
    }
    assert_eq!(
        run.report()["settings"]["default_registry"],
        dst.host.as_str()
    );
    assert_eq!(run.report()["settings"]["default_namespace"], ns);
}

#[test]
fn flags_choose_the_default_location() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (v1, v2) = seed(&src);
    let run = empty_target_rules(&src, &dst)
        .arg("--default-registry")
        .arg(&dst.host)
        .arg("--namespace") // the alias
        .arg("mirror")
        .run();
    assert_in_default_location(&run, &dst, "mirror", &v1, &v2);
}

#[test]
fn environment_variables_choose_the_default_location_and_flags_win() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (v1, v2) = seed(&src);

    let run = empty_target_rules(&src, &dst)
        .env("DEFAULT_REGISTRY", &dst.host)
        .env("DEFAULT_NAMESPACE", "from-env")
        .run();
    assert_in_default_location(&run, &dst, "from-env", &v1, &v2);

    // The flag beats the variable; the registry still comes from the environment.
    let run = empty_target_rules(&src, &dst)
        .env("DEFAULT_REGISTRY", &dst.host)
        .env("DEFAULT_NAMESPACE", "from-env")
        .arg("--default-namespace")
        .arg("from-flag")
        .run();
    assert_in_default_location(&run, &dst, "from-flag", &v1, &v2);
}

#[test]
fn an_empty_target_without_defaults_is_a_configuration_error() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    seed(&src);
    let run = empty_target_rules(&src, &dst).run();
    run.assert_code(2);
    assert!(run.report.is_none(), "nothing is reported: nothing ran");
    assert!(run.stderr.contains("DEFAULT_REGISTRY"), "{}", run.stderr);
    assert!(run.stderr.contains("images.json"), "{}", run.stderr);
    let log = support::sync::access_log(&src);
    assert!(
        !log.iter().any(|a| a.by_migrator()),
        "no request before the rules are valid: {log:#?}"
    );
}
