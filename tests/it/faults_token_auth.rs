//! Bearer token auth against a registry with `auth: token` and a real token server: the
//! whole challenge flow with pull and push scopes over two repositories and a
//! cross-repository mount; tokens that expire during a run are renewed; a wrong password
//! is a clear auth error that names the registry and never the password.

use crate::support;

use std::time::Duration;

use support::fault_proxy::{Fault, FaultProxy, When};
use support::migrator::{result_for, seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;
use support::token_server::TokenServer;

const USER: &str = "alice";
const PASSWORD: &str = "alice-token-pass";

/// A token server where alice may pull src/* and pull+push dst/*, and its registry.
fn token_registry() -> (TokenServer, TestRegistry) {
    let tokens = TokenServer::start(&[(
        USER,
        PASSWORD,
        &[("src/", &["pull"]), ("dst/", &["pull", "push"])],
    )]);
    let registry = TestRegistry::start_with_token(
        &tokens.realm,
        &tokens.service,
        &tokens.issuer,
        &tokens.cert_pem,
    );
    (tokens, registry)
}

/// A seeder allowed everything on src/app and dst/app (its token is minted directly).
fn seeder(tokens: &TokenServer, registry: &TestRegistry) -> Seeder {
    let all: &[&str] = &["pull", "push"];
    let token = tokens.mint(&[("src/app", all), ("dst/app", all)]);
    Seeder::with_authorization(&registry.host, &format!("Bearer {token}"))
}

fn auth_for(hosts: &[&str], password: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for host in hosts {
        map.insert(
            host.to_string(),
            serde_json::json!({ "username": USER, "password": password, "insecure": true }),
        );
    }
    serde_json::Value::Object(map)
}

#[test]
fn bearer_flow_with_pull_push_scopes_and_a_cross_repository_mount() {
    let (tokens, registry) = token_registry();
    let seeder = seeder(&tokens, &registry);
    // Anonymous requests are refused: the flow below is really needed.
    assert_eq!(Seeder::new(&registry.host).get_status("/v2/"), 401);
    let images = seed_images(&seeder, "src/app", &["one", "two"], 21, 10_000);

    let host = registry.host.as_str();
    let work = SyncRun::ci(
        &auth_for(&[host], PASSWORD),
        &tag_rules(host, "src/app", host, "dst/app", &["one", "two"]),
    );
    let output = work.command().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    for (tag, image) in ["one", "two"].iter().zip(&images) {
        assert_eq!(
            seeder.manifest_digest("dst/app", tag),
            Some(image.manifest_digest.clone())
        );
    }
    let report = work.report();
    assert_eq!(report["summary"]["copied"], 2, "{report:#}");
    assert!(
        report["summary"]["blobs_mounted"].as_u64().unwrap() >= 3,
        "same registry: blobs are mounted, not transferred: {report:#}"
    );
    assert_eq!(report["summary"]["blobs_transferred"], 0, "{report:#}");

    let requests = tokens.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.service.as_deref(), Some(tokens.service.as_str()));
        assert_eq!(r.account.as_deref(), Some(USER));
        assert!(
            r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic "))
        );
    }
    let asked = |scopes: &[&str]| requests.iter().any(|r| r.scopes == scopes);
    assert!(asked(&["repository:src/app:pull"]), "{requests:#?}");
    assert!(asked(&["repository:dst/app:pull,push"]), "{requests:#?}");
    assert!(
        asked(&["repository:dst/app:pull,push", "repository:src/app:pull"]),
        "the mount asks for push on the target first and pull on the source: {requests:#?}"
    );
    // Tokens are cached per scope, and parallel jobs wait for one fetch: each scope is
    // asked for exactly once (the run makes about 30 registry requests).
    let mut scopes: Vec<&Vec<String>> = requests.iter().map(|r| &r.scopes).collect();
    scopes.sort();
    let distinct = {
        let mut d = scopes.clone();
        d.dedup();
        d.len()
    };
    assert_eq!(
        distinct,
        scopes.len(),
        "a scope was fetched twice: {scopes:#?}"
    );
}

#[test]
fn tokens_that_expire_during_the_run_are_renewed() {
    let (tokens, registry) = token_registry();
    let seeder = seeder(&tokens, &registry);
    let images = seed_images(&seeder, "src/app", &["one", "two"], 22, 10_000);
    // Two hosts in front of the one registry, so blobs are streamed, not mounted.
    let source = FaultProxy::start(&registry.host);
    let target = FaultProxy::start(&registry.host);
    tokens.set_lifetime(Duration::from_secs(2));
    // The first blob upload is held until its token has expired at the registry.
    target.inject(
        Some("PUT"),
        "/blobs/uploads/",
        When::Nth(vec![1]),
        Fault::Delay(Duration::from_millis(2500)),
    );
    let work = SyncRun::ci(
        &auth_for(&[&source.host, &target.host], PASSWORD),
        &tag_rules(
            &source.host,
            "src/app",
            &target.host,
            "dst/app",
            &["one", "two"],
        ),
    );
    let output = work.command().args(["--proc", "1"]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        text(&output),
        work.report_text()
    );

    for (tag, image) in ["one", "two"].iter().zip(&images) {
        assert_eq!(
            seeder.manifest_digest("dst/app", tag),
            Some(image.manifest_digest.clone())
        );
    }
    // The held upload met an expired token…
    let log = target.log();
    let held = log
        .iter()
        .find(|r| r.fault.is_some())
        .expect("the upload was held");
    assert_eq!(held.status, Some(401), "{held:?}");
    // …and a new token was fetched for the same scope, later.
    let push_scope = ["repository:dst/app:pull,push"];
    let push_tokens: Vec<_> = tokens
        .requests()
        .into_iter()
        .filter(|r| r.scopes == push_scope)
        .collect();
    assert!(push_tokens.len() >= 2, "{push_tokens:#?}");
    assert!(push_tokens.iter().any(|r| r.at > held.at));
    let report = work.report();
    let result = result_for(&report, &format!("{}/src/app:one", source.host));
    assert_eq!(result["status"], "copied");
    assert!(result["attempts"].as_u64().unwrap() > 1, "{result:#}");
}

#[test]
fn a_wrong_password_is_a_clear_auth_error() {
    let (tokens, registry) = token_registry();
    let seeder = seeder(&tokens, &registry);
    seed_images(&seeder, "src/app", &["one"], 23, 1000);
    let host = registry.host.as_str();
    let wrong = "Wr0ng-Passw0rd-Quokka";
    let work = SyncRun::ci(
        &auth_for(&[host], wrong),
        &tag_rules(host, "src/app", host, "dst/app", &["one"]),
    );
    let output = work.command().output().unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let report = work.report();
    let result = result_for(&report, &format!("{host}/src/app:one"));
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"]["kind"], "auth", "{result:#}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains(host), "names the registry: {message}");
    assert!(
        message.contains("authentication failed") && message.contains("password"),
        "says what to check: {message}"
    );
    assert!(log.contains(message), "the log shows it too: {log}");
    for text in [&log, &work.report_text(), &work.junit_text()] {
        assert!(!text.contains(wrong), "the password leaked: {text}");
    }
    assert!(tokens.requests().iter().all(|r| r.status == 401));
    assert_eq!(seeder.manifest_digest("dst/app", "one"), None);
}

/// One retry level: the token fetch makes one attempt inside the retry loop of the
/// operation the report counts, so a token service failing transiently sees one request
/// per try, and the report's `attempts` is the number of tries.
#[test]
fn a_token_service_answering_503_is_retried_once_per_try() {
    let (tokens, registry) = token_registry();
    let seeder = seeder(&tokens, &registry);
    seed_images(&seeder, "src/app", &["one", "two"], 29, 1000);
    let host = registry.host.as_str();

    // Three 503s then success: exactly 4 token requests for the first token, 3 retries.
    let work = SyncRun::ci(
        &auth_for(&[host], PASSWORD),
        &tag_rules(host, "src/app", host, "dst/app", &["one"]),
    );
    tokens.fail_next(3);
    let output = work.command().args(["--retries", "3"]).output().unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let requests = tokens.requests();
    let first_ok = requests
        .iter()
        .position(|r| r.status == 200)
        .expect("a token");
    assert_eq!(first_ok, 3, "three 503s, then the 4th request succeeds");
    assert!(requests[..3].iter().all(|r| r.status == 503));
    let report = work.report();
    let result = result_for(&report, &format!("{host}/src/app:one"));
    assert_eq!(result["status"], "copied", "{result:#}");

    // Five 503s with --retries 3: the image fails after 4 token requests, no more.
    let before = tokens.requests().len();
    let work = SyncRun::ci(
        &auth_for(&[host], PASSWORD),
        &tag_rules(host, "src/app", host, "dst/app", &["two"]),
    );
    tokens.fail_next(5);
    let output = work.command().args(["--retries", "3"]).output().unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let requests = tokens.requests()[before..].to_vec();
    assert_eq!(
        requests.len(),
        4,
        "retries + 1 token requests: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.status == 503));
    let report = work.report();
    let failed: Vec<_> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(
        failed[0]["attempts"], 4,
        "attempts = real tries: {:#}",
        failed[0]
    );
    tokens.fail_next(0);
    assert_eq!(seeder.manifest_digest("dst/app", "two"), None);
}

/// `docker login` against a registry with an OAuth2 token service stores an identity token
/// (a refresh token), not the password: it is exchanged with a POST to the realm, as
/// Docker does, never sent as basic credentials and never shown.
#[test]
fn a_docker_config_identity_token_is_exchanged_with_an_oauth2_post() {
    let (tokens, registry) = token_registry();
    let seeder = seeder(&tokens, &registry);
    let images = seed_images(&seeder, "src/app", &["one"], 31, 1000);
    let host = registry.host.as_str();
    let docker_config = tempfile::tempdir().unwrap();
    let write_config = |token: &str| {
        let config = serde_json::json!({ "auths": { host: { "identitytoken": token } } });
        std::fs::write(docker_config.path().join("config.json"), config.to_string()).unwrap();
    };
    let sync_to = |dst_repo: &str| {
        let work = SyncRun::ci(
            &support::migrator::insecure(&[host]),
            &tag_rules(host, "src/app", host, dst_repo, &["one"]),
        );
        let output = work
            .command()
            .env("DOCKER_CONFIG", docker_config.path())
            .output()
            .unwrap();
        (work, text(&output), output.status.code())
    };
    write_config(PASSWORD);
    let (work, log, code) = sync_to("dst/app");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        seeder.manifest_digest("dst/app", "one"),
        Some(images[0].manifest_digest.clone())
    );
    let requests = tokens.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.grant.as_deref(), Some(PASSWORD), "{request:?}");
        assert_eq!(
            request.authorization, None,
            "no basic credentials: {request:?}"
        );
        assert_eq!(request.status, 200, "{request:?}");
    }
    assert!(
        requests
            .iter()
            .any(|r| r.scopes.iter().any(|s| s == "repository:dst/app:pull,push")),
        "the scopes travel in the form: {requests:?}"
    );
    assert!(!log.contains(PASSWORD) && !work.report_text().contains(PASSWORD));

    // A revoked identity token: a clear auth error, the token never shown.
    let revoked = "revoked-Identity-T0ken";
    write_config(revoked);
    let (work, log, code) = sync_to("dst/again");
    assert_eq!(code, Some(1), "{log}");
    let report = work.report();
    let result = result_for(&report, &format!("{host}/src/app:one"));
    assert_eq!(result["error"]["kind"], "auth", "{result:#}");
    for text in [&log, &work.report_text()] {
        assert!(!text.contains(revoked), "the token leaked: {text}");
    }
}
