//! Moving images to Amazon ECR (issue 23): the registry's repositories listed for
//! `config --from-registry` (`DescribeRepositories`), and each target repository created by
//! `sync --create-targets` (`CreateRepository`; a dry run writes nothing), every call signed
//! with SigV4 by `aws-sigv4`. The ECR is a stand-in whose API recomputes each signature
//! with AWS's own `botocore` (403 `InvalidSignatureException` when wrong), beside a real
//! registry gated as ECR gates it (`NAME_UNKNOWN` for repositories not created, which
//! without `--create-targets` gets a hint naming the repository). An entry without a
//! password signs in with `GetAuthorizationToken`'s (`ecr-api`): asked once per run, and
//! once more after the registry refused it. Keys, tokens and passwords are never printed.

use crate::support;

use serde_json::{Value, json};
use support::cloud::{AWS_KEY_ID, AWS_REGION, AWS_SECRET, CloudStandIn, ECR_PASSWORD};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

fn push(registry: &TestRegistry, repositories: &[&str]) {
    let seeder = Seeder::for_registry(registry);
    for (i, repository) in repositories.iter().enumerate() {
        let spec = ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(70 + i as u64, 300)],
        );
        seeder.push_image(repository, "1.0", &spec);
    }
}

fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(AWS_SECRET),
        "the secret key was printed:\n{text}"
    );
    assert!(
        !text.contains(ECR_PASSWORD),
        "the password was printed:\n{text}"
    );
}

/// auth.json's entry: kind, region, API, and the registry's password (user `AWS`).
fn ecr_entry(ecr: &CloudStandIn) -> Value {
    json!({"kind": "ecr", "region": AWS_REGION, "api": ecr.api, "insecure": true,
           "username": "AWS", "password": ECR_PASSWORD})
}

fn config(auth: &Value, secret: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth.json"), auth.to_string()).unwrap();
    let output = support::migrator()
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .arg("config")
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
fn ecr_repositories_under_a_namespace_become_rules_over_signed_pages() {
    let registry = TestRegistry::start();
    let ecr = CloudStandIn::ecr(
        &registry,
        &[
            "team/api",
            "team/web/frontend",
            "team-x/other",
            "infra/proxy",
        ],
        true,
        2,
    );
    let auth = json!({ ecr.host.clone(): ecr_entry(&ecr) });
    let source = format!("{}/team", ecr.host);
    let (code, stdout, stderr) = config(
        &auth,
        AWS_SECRET,
        &[
            "--from-registry",
            &source,
            "-t",
            "swr.cn-north-4.myhuaweicloud.com/moved",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let rules: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        rules,
        json!({
            format!("{}/team/api", ecr.host): "swr.cn-north-4.myhuaweicloud.com/moved/api",
            format!("{}/team/web/frontend", ecr.host): "swr.cn-north-4.myhuaweicloud.com/moved/web/frontend",
        })
    );
    // Two pages of two, each signed and accepted by botocore's check.
    let calls = ecr.api_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls.iter().all(|(_, _, status)| *status == 200),
        "{calls:?}"
    );
    assert_no_secret(&stderr);
}

#[test]
fn a_wrong_secret_key_is_refused_with_aws_own_error_and_never_printed() {
    let registry = TestRegistry::start();
    let ecr = CloudStandIn::ecr(&registry, &["team/api"], true, 100);
    let auth = json!({ ecr.host.clone(): ecr_entry(&ecr) });
    let wrong = "wrongAwsSecretDoNotUse/0123456789abcdefgh";
    let source = format!("{}/team", ecr.host);
    let (code, _, stderr) = config(
        &auth,
        wrong,
        &["--from-registry", &source, "-t", "h.io/x", "-o", "-"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 403: InvalidSignatureException")
            && stderr.contains("check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "{stderr}");
}

/// `src/app` goes to the missing repository `team/app`, `src/tool` to `team/tool`.
fn sync_scene(may_create: bool) -> (TestRegistry, TestRegistry, CloudStandIn, SyncRun) {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    push(&src, &["src/app", "src/tool"]);
    let ecr = CloudStandIn::ecr(&dst, &["team/tool"], may_create, 100);
    let run = SyncRun::new()
        .insecure(&src.host)
        .auth(&ecr.host, ecr_entry(&ecr))
        .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .rule(
            &format!("{}/src/app:1.0", src.host),
            &format!("{}/team/app", ecr.host),
        )
        .rule(
            &format!("{}/src/tool:1.0", src.host),
            &format!("{}/team/tool", ecr.host),
        );
    (src, dst, ecr, run)
}

#[test]
fn create_targets_makes_the_missing_repository_after_a_dry_run_that_writes_nothing() {
    let (_src, _dst, ecr, run) = sync_scene(true);

    // Without the flag, ECR's NAME_UNKNOWN fails the image bound for the missing repository.
    let without = run.run();
    without.assert_code(1);
    let app = without.result_for(&format!("{}/team/app:1.0", ecr.host));
    assert_eq!(app["status"], "failed");
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("NAME_UNKNOWN")
            && message.contains("ECR repository \"team/app\" does not exist")
            && message.contains("--create-targets"),
        "{app}"
    );
    let tool = without.result_for(&format!("{}/team/tool:1.0", ecr.host));
    assert_eq!(tool["status"], "copied", "{tool}");

    let dry = run.arg_clone("--create-targets").arg("--dry-run").run();
    dry.assert_code(0);
    assert!(
        dry.stderr.contains(&format!(
            "target     would create ecr repository \"team/app\" on {}",
            ecr.host
        )),
        "{}",
        dry.stderr
    );
    assert!(ecr.api_writes().is_empty(), "{:?}", ecr.api_calls());
    assert_eq!(ecr.containers(), ["team/tool"]);

    let result = run.arg_clone("--create-targets").run();
    result.assert_code(0);
    assert_eq!(ecr.containers(), ["team/app", "team/tool"]);
    assert_eq!(
        ecr.api_writes(),
        [("POST".to_string(), "/#CreateRepository".to_string(), 200)]
    );
    assert_eq!(
        result.report()["targets"],
        json!([
            {"registry": ecr.host, "kind": "ecr", "name": "team/app", "outcome": "created"},
            {"registry": ecr.host, "kind": "ecr", "name": "team/tool", "outcome": "existed"},
        ])
    );
    assert_eq!(
        result.result_for(&format!("{}/team/app:1.0", ecr.host))["status"],
        "copied"
    );
    assert!(
        ecr.api_calls()
            .iter()
            .all(|(_, _, status)| *status == 200 || *status == 400),
        "{:?}",
        ecr.api_calls()
    );
    for text in [&without.stderr, &dry.stderr, &result.stderr] {
        assert_no_secret(text);
    }
    assert_no_secret(&result.report().to_string());
}

#[test]
fn a_repository_the_key_may_not_create_fails_only_its_image_naming_the_permission() {
    let (_src, _dst, ecr, run) = sync_scene(false);
    let result = run.arg_clone("--create-targets").run();
    result.assert_code(1);
    let app = result.result_for(&format!("{}/team/app:1.0", ecr.host));
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot create ecr repository \"team/app\"")
            && message.contains("AccessDeniedException")
            && message.contains("\"ecr:CreateRepository\" permission"),
        "{message}"
    );
    let tool = result.result_for(&format!("{}/team/tool:1.0", ecr.host));
    assert_eq!(tool["status"], "copied");
    assert_eq!(ecr.containers(), ["team/tool"]);
    assert_no_secret(&result.stderr);
}

const SESSION_TOKEN: &str = "testAwsSessionTokenDoNotUse0123456789";

/// A password the stand-in issued (`GetAuthorizationToken`), by its form.
const ISSUED: &str = "ecr-issued-";

/// `src/app` and `src/tool` to the existing `team/app` and `team/tool`, the target's entry
/// without a username and password; `stale_tokens`: how many of the first issued passwords
/// the registry refuses.
fn sign_in_scene(stale_tokens: usize) -> (TestRegistry, TestRegistry, CloudStandIn, SyncRun) {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    push(&src, &["src/app", "src/tool"]);
    let ecr = CloudStandIn::ecr_sign_in(&dst, &["team/app", "team/tool"], stale_tokens);
    let entry = json!({"kind": "ecr", "region": AWS_REGION, "api": ecr.api, "insecure": true});
    let run = SyncRun::new()
        .insecure(&src.host)
        .auth(&ecr.host, entry)
        .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .rule(
            &format!("{}/src/app:1.0", src.host),
            &format!("{}/team/app", ecr.host),
        )
        .rule(
            &format!("{}/src/tool:1.0", src.host),
            &format!("{}/team/tool", ecr.host),
        );
    (src, dst, ecr, run)
}

fn assert_no_sign_in_secret(run: &support::sync::RunResult) {
    let output: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect();
    let report = run.report().to_string();
    for text in [&run.stderr, &output.join("\n"), &report] {
        for secret in [AWS_SECRET, SESSION_TOKEN, ISSUED] {
            assert!(!text.contains(secret), "{secret} was printed:\n{text}");
        }
    }
}

#[test]
fn ecr_sign_in_asks_get_authorization_token_once_per_run_and_masks_the_password() {
    let (_src, _dst, ecr, run) = sign_in_scene(0);
    let result = run.env("GITHUB_ACTIONS", "true").run();
    result.assert_code(0).assert_all("copied");
    // Two images, one registry: one token, signed with the session token and accepted by
    // botocore's check.
    assert_eq!(ecr.token_calls(), [200], "{:?}", ecr.api_calls());
    let masked: Vec<&str> = result
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .collect();
    assert!(
        masked.iter().any(|m| m.starts_with(ISSUED)),
        "the password was not masked: {masked:?}"
    );
    assert!(masked.contains(&SESSION_TOKEN), "{masked:?}");
    assert_no_sign_in_secret(&result);
}

#[test]
fn a_refused_ecr_password_is_asked_for_again_once() {
    // The first password has expired: the registry refuses it, a second is asked for and
    // taken.
    let (_src, _dst, ecr, run) = sign_in_scene(1);
    let result = run.run();
    result.assert_code(0).assert_all("copied");
    assert_eq!(ecr.token_calls(), [200, 200], "{:?}", ecr.api_calls());
    assert_no_sign_in_secret(&result);

    // Every password refused: asked for twice in the run, not more, and the images fail
    // naming where the credentials came from.
    let (_src, _dst, ecr, run) = sign_in_scene(100);
    let result = run.run();
    result.assert_code(1);
    assert_eq!(ecr.token_calls(), [200, 200], "{:?}", ecr.api_calls());
    let app = result.result_for(&format!("{}/team/app:1.0", ecr.host));
    assert_eq!(app["error"]["kind"], "auth", "{app}");
    assert!(
        app["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the credentials from ecr-api were refused"),
        "{app}"
    );
    assert_no_sign_in_secret(&result);
}

#[test]
fn validate_names_ecr_api_without_calling_it_and_a_wrong_key_fails_the_sign_in() {
    let (src, _dst, ecr, run) = sign_in_scene(0);
    let dir = tempfile::tempdir().unwrap();
    let entry = json!({"kind": "ecr", "region": AWS_REGION, "api": ecr.api, "insecure": true});
    std::fs::write(
        dir.path().join("auth.json"),
        json!({ ecr.host.clone(): entry }).to_string(),
    )
    .unwrap();
    let images = json!({
        format!("{}/src/app:1.0", src.host): format!("{}/team/app", ecr.host)
    });
    std::fs::write(dir.path().join("images.json"), images.to_string()).unwrap();
    let output = support::migrator()
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .arg("validate")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("target auth: ecr-api"), "{stdout}");
    assert!(ecr.api_calls().is_empty(), "{:?}", ecr.api_calls());

    // A wrong secret key: botocore's check refuses GetAuthorizationToken, the error says
    // so and never shows the key.
    let wrong = "wrongAwsSecretDoNotUse/0123456789abcdefgh";
    // (The later value of a variable is the one the program sees.)
    let result = run.env("AWS_SECRET_ACCESS_KEY", wrong).run();
    result.assert_code(1);
    assert_eq!(ecr.token_calls(), [403], "{:?}", ecr.api_calls());
    let app = result.result_for(&format!("{}/team/app:1.0", ecr.host));
    let message = app["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("GetAuthorizationToken")
            && message.contains("InvalidSignatureException")
            && message.contains("check AWS_ACCESS_KEY_ID"),
        "{message}"
    );
    assert!(!result.stderr.contains(wrong) && !message.contains(wrong));
    assert_no_sign_in_secret(&result);
}
