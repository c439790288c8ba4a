//! A user moves images into Harbor projects that do not exist yet: without
//! `--create-targets` the push fails with a hint naming the project and the flag; with it,
//! the project is created (private) before any blob moves; `--dry-run` only looks and says
//! `would create` (issue 23, item 3). The Harbor is a stand-in in front of a real
//! registry that refuses pushes into missing projects as Harbor does.

use crate::support;

use serde_json::json;
use support::harbor::HarborStandIn;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

struct Scene {
    _src: TestRegistry,
    _dst: TestRegistry,
    harbor: HarborStandIn,
    run: SyncRun,
}

/// `src/app` goes to Harbor's missing project `newproj`, `src/tool` to `existing`.
fn scene(user: &str, may_create: bool) -> Scene {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeder = Seeder::for_registry(&src);
    for (i, repository) in ["src/app", "src/tool"].iter().enumerate() {
        let spec = ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(10 + i as u64, 500)],
        );
        seeder.push_image(repository, "1.0", &spec);
    }
    let harbor = HarborStandIn::start(
        &dst,
        &["existing"],
        &[(user, "pw-of-harbor", may_create)],
        100,
    );
    let run = SyncRun::new()
        .insecure(&src.host)
        .auth(
            &harbor.host,
            json!({"username": user, "password": "pw-of-harbor", "insecure": true}),
        )
        .rule(
            &format!("{}/src/app:1.0", src.host),
            &format!("{}/newproj/app", harbor.host),
        )
        .rule(
            &format!("{}/src/tool:1.0", src.host),
            &format!("{}/existing/tool", harbor.host),
        );
    Scene {
        _src: src,
        _dst: dst,
        harbor,
        run,
    }
}

#[test]
fn without_the_flag_a_push_into_a_missing_project_says_what_to_do() {
    let scene = scene("admin", true);
    let result = scene.run.run();
    result.assert_code(1);
    let app = result.result_for(&format!("{}/newproj/app:1.0", scene.harbor.host));
    assert_eq!(app["status"], "failed");
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("project newproj not found")
            && message.contains("Harbor project \"newproj\" does not exist")
            && message.contains("--create-targets"),
        "{message}"
    );
    assert_eq!(app["error"]["kind"], "not-found");
    let tool = result.result_for(&format!("{}/existing/tool:1.0", scene.harbor.host));
    assert_eq!(tool["status"], "copied");
    assert!(scene.harbor.api_writes().is_empty());
    assert!(result.report().get("targets").is_none());
}

#[test]
fn a_dry_run_only_looks_and_says_would_create() {
    let scene = scene("admin", true);
    let result = scene
        .run
        .arg_clone("--create-targets")
        .arg("--dry-run")
        .run();
    result.assert_code(0);
    let line = format!(
        "target     would create harbor project \"newproj\" on {}",
        scene.harbor.host
    );
    assert!(result.stderr.contains(&line), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("2 target(s): 1 existed, 0 created, 1 would create, 0 failed"),
        "{}",
        result.stderr
    );
    assert!(
        scene.harbor.api_writes().is_empty(),
        "{:?}",
        scene.harbor.api_calls()
    );
    assert_eq!(scene.harbor.projects(), ["existing"]);
    let targets = &result.report()["targets"];
    assert_eq!(
        *targets,
        json!([
            {"registry": scene.harbor.host, "kind": "harbor", "name": "existing", "outcome": "existed"},
            {"registry": scene.harbor.host, "kind": "harbor", "name": "newproj", "outcome": "would-create"},
        ])
    );
    assert_eq!(result.report()["summary"]["targets"]["would_create"], 1);
}

#[test]
fn the_missing_project_is_created_once_before_the_copy() {
    let scene = scene("admin", true);
    let result = scene.run.arg_clone("--create-targets").run();
    result.assert_code(0).assert_all("copied");
    assert_eq!(scene.harbor.projects(), ["existing", "newproj"]);
    let writes = scene.harbor.api_writes();
    assert_eq!(
        writes,
        [("POST".to_string(), "/api/v2.0/projects".to_string(), 201)],
        "one project created"
    );
    assert!(
        result.stderr.contains(&format!(
            "target     created harbor project \"newproj\" on {}",
            scene.harbor.host
        )),
        "{}",
        result.stderr
    );
    assert_eq!(result.report()["targets"][1]["outcome"], "created");

    // Again: both exist now; nothing is created twice.
    let again = scene.run.arg_clone("--create-targets").run();
    again.assert_code(0).assert_all("unchanged");
    assert_eq!(scene.harbor.api_writes().len(), 1);
    assert_eq!(again.report()["summary"]["targets"]["existed"], 2);
}

#[test]
fn a_project_that_cannot_be_created_fails_only_its_images() {
    let scene = scene("robot$pusher", false);
    let result = scene.run.arg_clone("--create-targets").run();
    result.assert_code(1);
    let app = result.result_for(&format!("{}/newproj/app:1.0", scene.harbor.host));
    assert_eq!(app["status"], "failed");
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot create harbor project \"newproj\"")
            && message.contains("HTTP 403")
            && message.contains("\"project: create\" permission"),
        "{message}"
    );
    assert_eq!(app["error"]["kind"], "auth");
    assert!(!message.contains("pw-of-harbor"));
    assert!(!result.stderr.contains("pw-of-harbor"));
    let tool = result.result_for(&format!("{}/existing/tool:1.0", scene.harbor.host));
    assert_eq!(tool["status"], "copied");
    assert_eq!(result.report()["targets"][1]["outcome"], "failed");
    assert_eq!(scene.harbor.projects(), ["existing"]);
}
