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
        &["team/api", "team/web/frontend", "team/worker", "team-x/other"],
    );
    let swr = CloudStandIn::swr(&registry, &["team", "team-x"], true, 2);
    let auth = json!({ swr.host.clone(): swr_entry(&swr) });
    let source = format!("{}/team", swr.host);
    let (code, stdout, stderr) = run(
        &auth,
        &json!({}),
        SK,
        &["config", "--from-registry", &source, "-t", "harbor.example.com/moved", "-o", "-"],
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
            ("GET".into(), "/v2/manage/repos?namespace=team&offset=0&limit=100".into(), 200),
            ("GET".into(), "/v2/manage/repos?namespace=team&offset=2&limit=100".into(), 200),
        ],
        "{calls:?}"
    );
    assert_no_secret(&stderr);
}
