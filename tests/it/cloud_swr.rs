//! Moving a Harbor project to Huawei SWR with nothing but an access key (issue 23): the
//! repositories of an SWR organization listed for `config --from-registry`, the target
//! organization created by `sync --create-targets` (a dry run writes nothing), the
//! registry signed in to as `<region>@<AK>` with the login key derived from the SK, and
//! `validate` naming that source. The SWR is a stand-in whose API recomputes every
//! signature with Huawei's own SDK (401 `APIGW.0301` when wrong) beside a real registry
//! gated as SWR gates it. No key, nor the derived login key, is ever printed.

use crate::support;

use serde_json::{Value, json};
use support::cloud::{AK, CloudStandIn, REGION, SK};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

fn login_key() -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SK.as_bytes()).unwrap();
    mac.update(AK.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Fails when any of the keys, or the login key, is in `text`.
fn assert_no_secret(text: &str) {
    for secret in [SK.to_string(), login_key()] {
        assert!(!text.contains(&secret), "a secret was printed:\n{text}");
    }
}

fn push(registry: &TestRegistry, repositories: &[&str]) {
    let seeder = Seeder::for_registry(registry);
    for (i, repository) in repositories.iter().enumerate() {
        let spec = ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(40 + i as u64, 300)],
        );
        seeder.push_image(repository, "1.0", &spec);
    }
}

/// auth.json's entry for the stand-in: kind, region, API; no username or password.
fn swr_entry(swr: &CloudStandIn) -> Value {
    json!({"kind": "swr", "region": REGION, "api": swr.api, "insecure": true})
}

/// `image-migrator <args>` in a directory holding `auth` and `images`, with the keys.
fn run(auth: &Value, images: &Value, sk: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth.json"), auth.to_string()).unwrap();
    std::fs::write(dir.path().join("images.json"), images.to_string()).unwrap();
    let output = support::migrator()
        .current_dir(dir.path())
        .env("HUAWEICLOUD_SDK_AK", AK)
        .env("HUAWEICLOUD_SDK_SK", sk)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_swr_organization_becomes_one_rule_per_repository_over_signed_pages() {
    let registry = TestRegistry::start();
    push(
        &registry,
        &[
            "team/api",
            "team/web/frontend",
            "team/worker",
            "team-x/other",
        ],
    );
    let swr = CloudStandIn::swr(&registry, &["team", "team-x"], true, 2);
    let auth = json!({ swr.host.clone(): swr_entry(&swr) });
    let source = format!("{}/team", swr.host);
    let (code, stdout, stderr) = run(
        &auth,
        &json!({}),
        SK,
        &[
            "config",
            "--from-registry",
            &source,
            "-t",
            "harbor.example.com/moved",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let rules: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        rules,
        json!({
            format!("{}/team/api", swr.host): "harbor.example.com/moved/api",
            format!("{}/team/web/frontend", swr.host): "harbor.example.com/moved/web/frontend",
            format!("{}/team/worker", swr.host): "harbor.example.com/moved/worker",
        })
    );
    assert!(stderr.contains("listed 3 repositories"), "{stderr}");
    // Two pages of two, each signed and accepted.
    let calls = swr.api_calls();
    assert_eq!(
        calls,
        [
            (
                "GET".into(),
                "/v2/manage/repos?namespace=team&offset=0&limit=100".into(),
                200
            ),
            (
                "GET".into(),
                "/v2/manage/repos?namespace=team&offset=2&limit=100".into(),
                200
            ),
        ],
        "{calls:?}"
    );
    assert_no_secret(&stderr);
}

#[test]
fn a_wrong_secret_key_is_refused_by_the_gateway_and_never_printed() {
    let registry = TestRegistry::start();
    push(&registry, &["team/api"]);
    let swr = CloudStandIn::swr(&registry, &["team"], true, 100);
    let auth = json!({ swr.host.clone(): swr_entry(&swr) });
    let wrong = "wrongSkDoNotUse0123456789abcdefghijklmnop";
    let source = format!("{}/team", swr.host);
    let (code, _, stderr) = run(
        &auth,
        &json!({}),
        wrong,
        &[
            "config",
            "--from-registry",
            &source,
            "-t",
            "h.io/x",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("/v2/manage/repos answered HTTP 401: APIGW.0301")
            && stderr.contains("check HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "{stderr}");
    assert_no_secret(&stderr);
}

/// `src/app` goes to the missing organization `newteam`, `src/tool` to `existing`; the
/// target is signed in to with the keys alone.
fn sync_scene(may_create: bool) -> (TestRegistry, TestRegistry, CloudStandIn, SyncRun) {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    push(&src, &["src/app", "src/tool"]);
    let swr = CloudStandIn::swr(&dst, &["existing"], may_create, 100);
    let run = SyncRun::new()
        .insecure(&src.host)
        .auth(&swr.host, swr_entry(&swr))
        .env("HUAWEICLOUD_SDK_AK", AK)
        .env("HUAWEICLOUD_SDK_SK", SK)
        .rule(
            &format!("{}/src/app:1.0", src.host),
            &format!("{}/newteam/app", swr.host),
        )
        .rule(
            &format!("{}/src/tool:1.0", src.host),
            &format!("{}/existing/tool", swr.host),
        );
    (src, dst, swr, run)
}

#[test]
fn create_targets_makes_the_missing_organization_and_the_keys_sign_in() {
    let (_src, _dst, swr, run) = sync_scene(true);

    // A dry run only looks: zero writes.
    let dry = run.arg_clone("--create-targets").arg("--dry-run").run();
    dry.assert_code(0);
    assert!(
        dry.stderr.contains(&format!(
            "target     would create swr organization \"newteam\" on {}",
            swr.host
        )),
        "{}",
        dry.stderr
    );
    assert!(swr.api_writes().is_empty(), "{:?}", swr.api_calls());
    assert_eq!(swr.containers(), ["existing"]);

    // For real: created once, then both images copied into it, signed in as <region>@<AK>.
    let result = run.arg_clone("--create-targets").run();
    result.assert_code(0).assert_all("copied");
    assert_eq!(swr.containers(), ["existing", "newteam"]);
    assert_eq!(
        swr.api_writes(),
        [("POST".to_string(), "/v2/manage/namespaces".to_string(), 201)]
    );
    assert_eq!(
        result.report()["targets"],
        json!([
            {"registry": swr.host, "kind": "swr", "name": "existing", "outcome": "existed"},
            {"registry": swr.host, "kind": "swr", "name": "newteam", "outcome": "created"},
        ])
    );
    // Every API call carried a signature Huawei's SDK agreed with.
    assert!(
        swr.api_calls().iter().all(|(_, _, status)| *status != 401),
        "{:?}",
        swr.api_calls()
    );

    // Again: both exist; nothing is created twice.
    let again = run.arg_clone("--create-targets").run();
    again.assert_code(0).assert_all("unchanged");
    assert_eq!(swr.api_writes().len(), 1);
    for text in [&dry.stderr, &result.stderr, &again.stderr] {
        assert_no_secret(text);
    }
    assert_no_secret(&result.report().to_string());
}

#[test]
fn an_organization_the_keys_may_not_create_fails_only_its_images() {
    let (_src, _dst, swr, run) = sync_scene(false);
    let result = run.arg_clone("--create-targets").run();
    result.assert_code(1);
    let app = result.result_for(&format!("{}/newteam/app:1.0", swr.host));
    assert_eq!(app["status"], "failed");
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot create swr organization \"newteam\"")
            && message.contains("HTTP 403")
            && message.contains("\"SWR Administrator\" role"),
        "{message}"
    );
    assert_eq!(app["error"]["kind"], "auth");
    let tool = result.result_for(&format!("{}/existing/tool:1.0", swr.host));
    assert_eq!(tool["status"], "copied");
    assert_eq!(swr.containers(), ["existing"]);
    assert_no_secret(&result.stderr);
}

#[test]
fn validate_names_the_keys_as_the_source_and_without_them_the_registry_refuses() {
    let (src, _dst, swr, with_keys) = sync_scene(true);
    // validate: swr-aksk, from the keys alone, without calling anything.
    let images = json!({
        format!("{}/src/tool:1.0", src.host): format!("{}/existing/tool", swr.host)
    });
    let auth = json!({ swr.host.clone(): swr_entry(&swr) });
    let (code, stdout, stderr) = run(&auth, &images, SK, &["validate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("target auth: swr-aksk"), "{stdout}");
    assert!(swr.api_calls().is_empty(), "{:?}", swr.api_calls());
    assert_no_secret(&stdout);

    // Without the keys there is nothing to sign in with: the registry refuses.
    let without_keys = SyncRun::new()
        .insecure(&src.host)
        .auth(&swr.host, swr_entry(&swr))
        .rule(
            &format!("{}/src/tool:1.0", src.host),
            &format!("{}/existing/tool", swr.host),
        );
    let refused = without_keys.run();
    refused.assert_code(1);
    let tool = refused.result_for(&format!("{}/existing/tool:1.0", swr.host));
    assert_eq!(tool["error"]["kind"], "auth", "{}", refused.stderr);
    // With them, the same rule copies (and, without --create-targets, the image bound for
    // the missing organization fails).
    let with = with_keys.run();
    with.assert_code(1);
    let tool = with.result_for(&format!("{}/existing/tool:1.0", swr.host));
    assert_eq!(tool["status"], "copied", "{}", with.stderr);
    let app = with.result_for(&format!("{}/newteam/app:1.0", swr.host));
    assert_eq!(app["status"], "failed");
    // SWR's DENIED for the push into the missing organization gets a hint naming it.
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("DENIED")
            && message.contains("SWR organization \"newteam\" may not exist")
            && message.contains("--create-targets"),
        "{message}"
    );
    // The image that reached its organization has no such hint.
    assert!(tool["error"].is_null(), "{tool}");
    assert_no_secret(&with.stderr);
}
