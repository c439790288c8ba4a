//! A corporate runner: registries are reached through a forward proxy (`HTTPS_PROXY`, with
//! proxy credentials), HTTPS through CONNECT; `NO_PROXY` and auth.json's per-registry
//! `"proxy"` choose otherwise. The proxy is a real tinyproxy whose log shows each CONNECT.

use crate::support;

use serde_json::json;
use support::apiserver::Certs;
use support::forward_proxy::{ForwardProxy, PASSWORD};
use support::migrator::{seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;

struct Setup {
    registry: TestRegistry,
    seeder: Seeder,
    digest: String,
    ca_dir: tempfile::TempDir,
    proxy: ForwardProxy,
}

fn setup() -> Setup {
    let certs = Certs::generate();
    let registry = TestRegistry::start_tls(&certs.server_cert_pem, &certs.server_key_pem);
    let seeder = Seeder::for_registry(&registry);
    let digest = seed_images(&seeder, "src/app", &["v1"], 71, 3000)
        .remove(0)
        .manifest_digest;
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::write(ca_dir.path().join("ca.pem"), &certs.ca_pem).unwrap();
    Setup {
        registry,
        seeder,
        digest,
        ca_dir,
        proxy: ForwardProxy::start(),
    }
}

impl Setup {
    /// Copies src/app:v1 to `dst`:v1 on the same registry with `auth` and `env`.
    fn sync(
        &self,
        dst: &str,
        auth: serde_json::Value,
        env: &[(&str, &str)],
    ) -> std::process::Output {
        let host = self.registry.host.as_str();
        let work = SyncRun::ci(&auth, &tag_rules(host, "src/app", host, dst, &["v1"]));
        let mut cmd = work.command();
        cmd.arg("--ca-file").arg(self.ca_dir.path().join("ca.pem"));
        for (name, value) in env {
            cmd.env(name, value);
        }
        let output = cmd.output().unwrap();
        let log = text(&output);
        assert!(
            !log.contains(PASSWORD),
            "the proxy password is in the log: {log}"
        );
        assert!(
            !work.report_text().contains(PASSWORD),
            "the proxy password is in the report"
        );
        output
    }

    fn assert_copied(&self, dst: &str, output: &std::process::Output) {
        assert_eq!(output.status.code(), Some(0), "{}", text(output));
        assert_eq!(
            self.seeder.manifest_digest(dst, "v1"),
            Some(self.digest.clone())
        );
    }

    fn connects_to_registry(&self) -> usize {
        self.proxy
            .connects()
            .iter()
            .filter(|target| **target == self.registry.host)
            .count()
    }
}

#[test]
fn https_proxy_carries_every_request_and_no_proxy_or_auth_json_bypass_it() {
    let s = setup();
    let url = s.proxy.url();

    // Through the proxy: its log shows CONNECTs to the registry.
    let output = s.sync("dst/proxied", json!({}), &[("HTTPS_PROXY", &url)]);
    s.assert_copied("dst/proxied", &output);
    let through = s.connects_to_registry();
    assert!(
        through >= 1,
        "no CONNECT in the proxy log: {:?}",
        s.proxy.connects()
    );

    // Lower case works too, and ALL_PROXY is the fallback.
    let output = s.sync("dst/all-proxy", json!({}), &[("all_proxy", &url)]);
    s.assert_copied("dst/all-proxy", &output);
    let through_all = s.connects_to_registry();
    assert!(through_all > through, "{:?}", s.proxy.connects());

    // NO_PROXY names the registry host: nothing more goes through the proxy.
    let output = s.sync(
        "dst/no-proxy",
        json!({}),
        &[("HTTPS_PROXY", &url), ("no_proxy", "localhost, 127.0.0.1")],
    );
    s.assert_copied("dst/no-proxy", &output);
    assert_eq!(s.connects_to_registry(), through_all);

    // auth.json "proxy": "" bypasses the environment's proxy for that registry...
    let host = s.registry.host.clone();
    let output = s.sync(
        "dst/bypass",
        json!({ &host: { "proxy": "" } }),
        &[("HTTPS_PROXY", &url)],
    );
    s.assert_copied("dst/bypass", &output);
    assert_eq!(s.connects_to_registry(), through_all);

    // ...and a proxy URL sends it through that proxy with no variable set.
    let output = s.sync("dst/own-proxy", json!({ &host: { "proxy": url } }), &[]);
    s.assert_copied("dst/own-proxy", &output);
    assert!(s.connects_to_registry() > through_all);

    // A proxy that is not there fails the image: the variable is really used.
    let output = s.sync(
        "dst/dead-proxy",
        json!({}),
        &[("HTTPS_PROXY", "http://127.0.0.1:1")],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(s.seeder.manifest_digest("dst/dead-proxy", "v1"), None);
}

#[test]
fn the_token_service_goes_through_the_proxy_too() {
    use support::token_server::TokenServer;
    let tokens = TokenServer::start(&[(
        "alice",
        "alice-proxy-pass",
        &[("src/", &["pull"]), ("dst/", &["pull", "push"])],
    )]);
    let registry = TestRegistry::start_with_token(
        &tokens.realm,
        &tokens.service,
        &tokens.issuer,
        &tokens.cert_pem,
    );
    let all: &[&str] = &["pull", "push"];
    let token = tokens.mint(&[("src/app", all), ("dst/env", all), ("dst/own", all)]);
    let seeder = Seeder::with_authorization(&registry.host, &format!("Bearer {token}"));
    let digest = seed_images(&seeder, "src/app", &["v1"], 72, 3000)
        .remove(0)
        .manifest_digest;
    let proxy = ForwardProxy::start();
    let realm_host = tokens
        .realm
        .split("://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let host = registry.host.as_str();
    let entry = |proxy: Option<String>| {
        let mut entry =
            json!({ "username": "alice", "password": "alice-proxy-pass", "insecure": true });
        if let Some(proxy) = proxy {
            entry["proxy"] = json!(proxy);
        }
        json!({ host: entry })
    };
    let run = |dst: &str, auth: serde_json::Value, env: &[(&str, &str)]| {
        let work = SyncRun::ci(&auth, &tag_rules(host, "src/app", host, dst, &["v1"]));
        let mut cmd = work.command();
        for (name, value) in env {
            cmd.env(name, value);
        }
        let output = cmd.output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(seeder.manifest_digest(dst, "v1"), Some(digest.clone()));
        assert!(!text(&output).contains(PASSWORD));
    };
    let count = |target: &str| proxy.connects().iter().filter(|c| *c == target).count();

    // HTTP_PROXY for a plain-HTTP registry and its plain-HTTP token service.
    run("dst/env", entry(None), &[("HTTP_PROXY", &proxy.url())]);
    let (to_registry, to_realm) = (count(host), count(&realm_host));
    assert!(to_registry >= 1 && to_realm >= 1, "{:?}", proxy.connects());

    // The registry's own proxy in auth.json covers its token service as well.
    run("dst/own", entry(Some(proxy.url())), &[]);
    assert!(count(host) > to_registry, "{:?}", proxy.connects());
    assert!(count(&realm_host) > to_realm, "{:?}", proxy.connects());
}

/// `image-migrator config` reaches the Kubernetes API the same way: through the proxy,
/// unless `NO_PROXY` names the API server.
#[test]
fn the_kubernetes_client_goes_through_the_proxy_too() {
    use support::apiserver::{ApiServer, Certs, image_migrator, parse_rules, workload};
    let server = ApiServer::builder()
        .object(
            "Deployment",
            workload("Deployment", "web", "front", &["nginx:1.27"]),
        )
        .start();
    let api_host = server.url.trim_start_matches("https://").to_string();
    let proxy = ForwardProxy::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    let kubeconfig =
        server.write_kubeconfig(dir.path(), &[("certificate-authority-data", &ca)], &[]);
    let config = |env: &[(&str, &str)]| {
        let mut cmd = image_migrator();
        cmd.args(["config", "-t", "harbor.example.com/mirror", "-o", "-", "-k"])
            .arg(&kubeconfig);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let output = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        assert!(
            !stderr.contains(PASSWORD),
            "the proxy password is in the log"
        );
        let rules = parse_rules(&String::from_utf8(output.stdout).unwrap());
        assert!(
            rules
                .iter()
                .any(|(source, _)| source == "docker.io/library/nginx:1.27"),
            "{rules:?}"
        );
    };
    let connects = || proxy.connects().iter().filter(|c| **c == api_host).count();

    config(&[("HTTPS_PROXY", &proxy.url())]);
    let through = connects();
    assert!(
        through >= 1,
        "no CONNECT to the API server: {:?}",
        proxy.connects()
    );

    config(&[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "127.0.0.1")]);
    assert_eq!(connects(), through, "NO_PROXY did not bypass the proxy");
}
