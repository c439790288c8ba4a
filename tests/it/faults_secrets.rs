//! Secrets never leak: one run meets the failure modes of the other fault tests (wrong
//! basic password, wrong token-server password, corrupted blob, persistent 5xx, TLS
//! failure, redirect to a signed URL) with distinctive secret values in auth.json (taken
//! from the environment, as CI does), and stdout, stderr, the report and the JUnit file
//! are searched for them.

use crate::support;

use base64::Engine as _;
use support::apiserver::Certs;
use support::blob_server::BlobServer;
use support::fault_proxy::{Fault, FaultProxy, When};
use support::migrator::{result_for, seed_images, text};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;
use support::token_server::TokenServer;

const USER: &str = "zebra-user";
const SECRET: &str = "S3cr3t-Zebra-991";
const SIGNATURE: &str = "Sig-Zebra-Signed-552";

#[test]
fn failures_never_print_or_record_secrets() {
    // A basic-auth registry whose password is SECRET, seen through four proxies.
    let basic = TestRegistry::start_with_htpasswd(USER, SECRET);
    let seeder = Seeder::for_registry(&basic);
    let images = seed_images(
        &seeder,
        "src/app",
        &["corrupt", "broken", "redirected", "refused"],
        51,
        3000,
    );
    let good = FaultProxy::start(&basic.host); // right password
    let wrong = FaultProxy::start(&basic.host); // wrong password
    let target = FaultProxy::start(&basic.host);
    let storage = BlobServer::start(seeder.clone());
    good.inject(
        Some("GET"),
        &images[0].layer_digests[0],
        When::Always,
        Fault::FlipByte,
    );
    good.inject(
        Some("GET"),
        &images[1].manifest_digest,
        When::Always,
        Fault::Status(500),
    );
    for blob in &images[2].blob_digests {
        good.inject(
            Some("GET"),
            blob,
            When::Always,
            Fault::Redirect(format!("{}?signature={SIGNATURE}", storage.base)),
        );
    }
    // The one redirected blob the storage does not have: its failure names the URL.
    good.inject(
        Some("GET"),
        &images[3].config_digest,
        When::Always,
        Fault::Redirect(format!("http://127.0.0.1:9?signature={SIGNATURE}")),
    );

    // A token registry where SECRET is the wrong password.
    let tokens = TokenServer::start(&[(USER, "the-real-one", &[("", &["pull", "push"])])]);
    let token_registry = TestRegistry::start_with_token(
        &tokens.realm,
        &tokens.service,
        &tokens.issuer,
        &tokens.cert_pem,
    );
    // A TLS registry nobody trusts, with credentials configured.
    let certs = Certs::generate();
    let tls = TestRegistry::start_tls(&certs.server_cert_pem, &certs.server_key_pem);

    let entry = |password: &str, insecure: bool| serde_json::json!({ "username": "${ZEBRA_USER}", "password": password, "insecure": insecure });
    let auth = serde_json::json!({
        good.host.clone(): entry("${ZEBRA_PASSWORD}", true),
        wrong.host.clone(): entry("${ZEBRA_PASSWORD}-nope", true),
        target.host.clone(): entry("${ZEBRA_PASSWORD}", true),
        token_registry.host.clone(): entry("${ZEBRA_PASSWORD}", true),
        tls.host.clone(): entry("${ZEBRA_PASSWORD}", false),
    });
    let (g, w, t) = (&good.host, &wrong.host, &target.host);
    let images_json = serde_json::json!({
        format!("{g}/src/app:corrupt"): format!("{t}/dst/app:corrupt"),
        format!("{g}/src/app:broken"): format!("{t}/dst/app:broken"),
        format!("{g}/src/app:redirected"): format!("{t}/dst/app:redirected"),
        format!("{g}/src/app:refused"): format!("{t}/dst/app:refused"),
        format!("{w}/src/app:corrupt"): format!("{t}/dst/wrong:corrupt"),
        format!("{}/src/app:x", token_registry.host): format!("{t}/dst/token:x"),
        format!("{}/src/app:x", tls.host): format!("{t}/dst/tls:x"),
    });
    let work = SyncRun::ci(&auth, &images_json);
    let output = work
        .command()
        .args(["--retries", "1"])
        .env("ZEBRA_USER", USER)
        .env("ZEBRA_PASSWORD", SECRET)
        .output()
        .unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    // Every failure mode really happened.
    let report = work.report();
    let kind = |source: String| {
        let r = result_for(&report, &source);
        (
            r["status"].as_str().unwrap().to_string(),
            r["error"]["kind"].as_str().unwrap_or("").to_string(),
        )
    };
    let failed = |k: &str| ("failed".to_string(), k.to_string());
    assert_eq!(kind(format!("{g}/src/app:corrupt")), failed("digest"));
    assert_eq!(kind(format!("{g}/src/app:broken")), failed("http"));
    assert_eq!(
        kind(format!("{g}/src/app:redirected")),
        ("copied".to_string(), String::new())
    );
    assert_eq!(kind(format!("{g}/src/app:refused")), failed("network"));
    assert_eq!(kind(format!("{w}/src/app:corrupt")), failed("auth"));
    assert_eq!(
        kind(format!("{}/src/app:x", token_registry.host)),
        failed("auth")
    );
    assert_eq!(kind(format!("{}/src/app:x", tls.host)), failed("network"));
    let refused = result_for(&report, &format!("{g}/src/app:refused"));
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:9/v2/"),
        "the failure names the redirect URL (without its signed query): {refused:#}"
    );
    assert!(!storage.requests().is_empty());
    assert!(tokens.requests().iter().any(|r| r.status == 401));

    // Nothing secret anywhere.
    let basic_value = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"));
    let wrong_value =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}-nope"));
    let outputs = [
        (
            "stdout",
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ),
        (
            "stderr",
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        ("report", work.report_text()),
        ("junit", work.junit_text()),
    ];
    assert!(outputs[3].1.contains("<testcase"), "JUnit written");
    for (name, content) in &outputs {
        assert!(!content.is_empty() || *name == "stdout", "{name} is empty");
        for secret in [
            SECRET,
            basic_value.as_str(),
            wrong_value.as_str(),
            SIGNATURE,
        ] {
            assert!(
                !content.contains(secret),
                "{name} contains the secret {secret:?}:\n{content}"
            );
        }
    }
}
