//! A user migrates between registries that need credentials, taken from CI variables via
//! `${VAR}` in auth.json: HTTP basic on an htpasswd registry as source and as target,
//! different credentials per namespace of one registry, and a wrong password that fails
//! clearly without ever showing the password.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_layer};
use support::sync::{SyncRun, assert_skopeo_digest};

fn image(seed: u64) -> ImageSpec {
    ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, 3_000)],
    )
}

/// Which htpasswd users the registry saw for the product's requests to each
/// `namespace/…` path. This registry logs `auth.user.name` only on requests it answers
/// with an error — on a target, the first HEADs of manifests and blobs (404) are such.
fn users_by_namespace(reg: &TestRegistry) -> BTreeMap<String, BTreeSet<String>> {
    support::sync::access_log(reg); // wait for the log to settle
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in reg.logs().lines() {
        if !line.contains("image-migrator/") || !line.contains("msg=\"response completed") {
            continue;
        }
        let field = |name: &str| {
            line.split(&format!(" {name}=")).nth(1).map(|rest| {
                let rest = rest.trim_start_matches('"');
                rest.split(['"', ' ']).next().unwrap_or("").to_string()
            })
        };
        let (Some(uri), Some(user)) = (field("http.request.uri"), field("auth.user.name")) else {
            continue;
        };
        if let Some(namespace) = uri.strip_prefix("/v2/").and_then(|p| p.split('/').next()) {
            seen.entry(namespace.to_string()).or_default().insert(user);
        }
    }
    seen
}

#[test]
fn basic_auth_source_and_target_with_credentials_from_the_environment() {
    let src = TestRegistry::start_with_htpasswd("reader", "src-Pa55word");
    let dst = TestRegistry::start_with_htpasswd("writer", "dst-Pa55word");
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let v1 = source.push_image("private/app", "v1", &image(1));
    let v2 = source.push_image("private/app", "v2", &image(2));

    let run = SyncRun::new()
        .auth(
            &src.host,
            json!({ "username": "${SRC_USER}", "password": "${SRC_PASSWORD}", "insecure": true }),
        )
        .auth(
            &dst.host,
            json!({ "username": "$DST_USER", "password": "dst-${DST_SECRET}", "insecure": true }),
        )
        .env("SRC_USER", "reader")
        .env("SRC_PASSWORD", "src-Pa55word")
        .env("DST_USER", "writer")
        .env("DST_SECRET", "Pa55word")
        .rule(
            &format!("{}/private/app", src.host),
            &format!("{}/mirror/app", dst.host),
        )
        .run();

    run.assert_all("copied");
    assert_eq!(run.count("total"), 2);
    assert_eq!(target.tags("mirror/app"), ["v1", "v2"]);
    for (tag, pushed) in [("v1", &v1), ("v2", &v2)] {
        assert_eq!(
            target.manifest_digest("mirror/app", tag).as_ref(),
            Some(&pushed.manifest_digest)
        );
        assert_skopeo_digest(
            &format!("{}/mirror/app:{tag}", dst.host),
            &pushed.manifest_digest,
            Some("writer:dst-Pa55word"),
        );
    }
    let report = run.file(support::sync::REPORT);
    for secret in ["src-Pa55word", "dst-Pa55word", "Pa55word"] {
        assert!(!report.contains(secret), "the report shows a secret");
        assert!(!run.stderr.contains(secret), "the log shows a secret");
    }
    // (The source has a single user: that it answered at all proves the credentials.)
    let users = users_by_namespace(&dst);
    assert_eq!(users["mirror"], BTreeSet::from(["writer".to_string()]));
}

#[test]
fn a_wrong_password_fails_with_an_auth_error_that_hides_it() {
    let src = TestRegistry::start_with_htpasswd("reader", "right-source-pw");
    let dst = TestRegistry::start_with_htpasswd("writer", "right-target-pw");
    Seeder::for_registry(&src).push_image("private/app", "v1", &image(3));
    Seeder::for_registry(&src).push_image("private/other", "v1", &image(4));
    let wrong_source = "Wr0ng-S0urce-Secret";
    let wrong_target = "Wr0ng-T4rget-Secret";

    let run = SyncRun::new()
        .auth(
            &format!("{}/private/app", src.host),
            json!({ "username": "reader", "password": "${SRC_PASSWORD}" }),
        )
        .auth(
            &src.host,
            json!({ "username": "reader", "password": "right-source-pw", "insecure": true }),
        )
        .auth(
            &dst.host,
            json!({ "username": "writer", "password": "${DST_PASSWORD}", "insecure": true }),
        )
        .env("SRC_PASSWORD", wrong_source)
        .env("DST_PASSWORD", wrong_target)
        // Refused by the source (its namespace entry has the wrong password).
        .rule(
            &format!("{}/private/app", src.host),
            &format!("{}/mirror/app", dst.host),
        )
        // Readable, but refused by the target.
        .rule(
            &format!("{}/private/other:v1", src.host),
            &format!("{}/mirror/other:v1", dst.host),
        )
        .arg("--junit")
        .arg("junit.xml")
        .run();

    run.assert_code(1);
    assert_eq!(run.count("failed"), 2, "{}", run.pretty());
    let by_source = run.result_for(&format!("{}/mirror/app", dst.host));
    let by_target = run.result_for(&format!("{}/mirror/other:v1", dst.host));
    for (result, registry, key) in [
        (by_source, &src.host, format!("{}/private/app", src.host)),
        (by_target, &dst.host, dst.host.clone()),
    ] {
        assert_eq!(result["status"], "failed");
        assert_eq!(result["error"]["kind"], "auth", "{}", run.pretty());
        assert_eq!(result["error"]["http_status"], 401, "{}", run.pretty());
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains(registry.as_str()), "{message}");
        assert!(
            message.contains(&format!("{key:?}")),
            "names the auth.json entry whose credentials were refused: {message}"
        );
    }
    let everything = format!(
        "{}{}{}{}",
        run.stderr,
        run.stdout,
        run.file(support::sync::REPORT),
        run.file("junit.xml")
    );
    for secret in [wrong_source, wrong_target, "right-source-pw"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
    assert!(Seeder::for_registry(&dst).tags("mirror/other").is_empty());
}

#[test]
fn each_namespace_of_one_registry_uses_its_own_credentials() {
    let src = TestRegistry::start();
    // One target registry, two users; the registry-wide entry's password is wrong, so
    // only the namespace entries can make the pushes work.
    let dst = TestRegistry::start_with_htpasswd_users(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let source = Seeder::for_registry(&src);
    let a: Pushed = source.push_image("team/app", "1", &image(5));
    let b: Pushed = source.push_image("team/tool", "1", &image(6));
    let auth = |bob_password: &str| {
        SyncRun::new()
            .insecure(&src.host)
            .auth(
                &dst.host,
                json!({ "username": "alice", "password": "not-the-password", "insecure": true }),
            )
            .auth(
                &format!("{}/team-a", dst.host),
                json!({ "username": "alice", "password": "${ALICE_PW}" }),
            )
            .auth(
                &format!("{}/team-b/sub", dst.host),
                json!({ "username": "bob", "password": bob_password }),
            )
            .env("ALICE_PW", "alice-pw")
            .rule(
                &format!("{}/team/app:1", src.host),
                &format!("{}/team-a/app:1", dst.host),
            )
            .rule(
                &format!("{}/team/tool:1", src.host),
                &format!("{}/team-b/sub/tool:1", dst.host),
            )
    };

    let run = auth("bob-pw").run();
    run.assert_all("copied");
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        target.manifest_digest("team-a/app", "1"),
        Some(a.manifest_digest.clone())
    );
    assert_eq!(
        target.manifest_digest("team-b/sub/tool", "1"),
        Some(b.manifest_digest.clone())
    );
    let users = users_by_namespace(&dst);
    assert_eq!(
        users["team-a"],
        BTreeSet::from(["alice".to_string()]),
        "{users:?}"
    );
    assert_eq!(
        users["team-b"],
        BTreeSet::from(["bob".to_string()]),
        "{users:?}"
    );

    // Bob's entry alone is wrong: only team-b fails, naming its entry.
    let run = auth("bob-wrong")
        .arg("--report")
        .arg(support::sync::REPORT)
        .run();
    run.assert_code(1);
    assert_eq!(
        run.result_for(&format!("{}/team-a/app:1", dst.host))["status"],
        "unchanged"
    );
    let failed = run.result_for(&format!("{}/team-b/sub/tool:1", dst.host));
    assert_eq!(failed["error"]["kind"], "auth", "{}", run.pretty());
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}/team-b/sub", dst.host)),
        "{message}"
    );
    assert!(!message.contains("bob-wrong"), "{message}");
}
