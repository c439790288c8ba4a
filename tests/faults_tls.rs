//! TLS: a registry serving HTTPS with a certificate from a private test CA. Without that
//! CA the image fails with a message that says it is a TLS/certificate problem and how
//! to fix it; `--ca-file`, `SSL_CERT_FILE` or `insecure: true` each make it work.

mod support;

use support::apiserver::Certs;
use support::migrator::{Workdir, result_for, seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder};

struct Setup {
    registry: TestRegistry,
    seeder: Seeder,
    image: Pushed,
    ca_dir: tempfile::TempDir,
}

fn setup(seed: u64) -> Setup {
    let certs = Certs::generate();
    let registry = TestRegistry::start_tls(&certs.server_cert_pem, &certs.server_key_pem);
    let seeder = Seeder::for_registry(&registry);
    let image = seed_images(&seeder, "src/app", &["v1"], seed, 4000).remove(0);
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::write(ca_dir.path().join("ca.pem"), &certs.ca_pem).unwrap();
    Setup {
        registry,
        seeder,
        image,
        ca_dir,
    }
}

impl Setup {
    fn ca_file(&self) -> std::path::PathBuf {
        self.ca_dir.path().join("ca.pem")
    }

    /// A workdir copying src/app:v1 to `dst_repo`:v1 on the same TLS registry.
    fn workdir(&self, dst_repo: &str, insecure: bool) -> Workdir {
        let host = self.registry.host.as_str();
        let auth = if insecure {
            serde_json::json!({ host: { "insecure": true } })
        } else {
            serde_json::json!({})
        };
        Workdir::new(&auth, &tag_rules(host, "src/app", host, dst_repo, &["v1"]))
    }

    fn assert_copied(&self, dst_repo: &str, output: &std::process::Output) {
        assert_eq!(output.status.code(), Some(0), "{}", text(output));
        assert_eq!(
            self.seeder.manifest_digest(dst_repo, "v1"),
            Some(self.image.manifest_digest.clone())
        );
    }
}

#[test]
fn without_the_ca_the_image_fails_with_a_tls_hint() {
    let s = setup(31);
    let work = s.workdir("dst/none", false);
    let output = work.sync().output().unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let report = work.report();
    let result = result_for(&report, &format!("{}/src/app:v1", s.registry.host));
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"]["kind"], "network", "{result:#}");
    let message = result["error"]["message"].as_str().unwrap();
    for needle in [
        "TLS",
        "certificate",
        "--ca-file",
        "\"insecure\": true",
        &s.registry.host,
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert!(log.contains("--ca-file"), "{log}");
    assert_eq!(s.seeder.manifest_digest("dst/none", "v1"), None);
    // A certificate problem is not retried.
    assert_eq!(result["attempts"], 1, "{result:#}");
}

#[test]
fn ca_file_ssl_cert_file_or_insecure_make_it_work() {
    let s = setup(32);

    let work = s.workdir("dst/ca-file", false);
    let output = work
        .sync()
        .arg("--ca-file")
        .arg(s.ca_file())
        .output()
        .unwrap();
    s.assert_copied("dst/ca-file", &output);
    assert_eq!(
        work.report()["settings"]["ca_file"],
        s.ca_file().display().to_string()
    );

    let work = s.workdir("dst/ssl-cert-file", false);
    let output = work
        .sync()
        .env("SSL_CERT_FILE", s.ca_file())
        .output()
        .unwrap();
    s.assert_copied("dst/ssl-cert-file", &output);

    let work = s.workdir("dst/insecure", true);
    let output = work.sync().output().unwrap();
    s.assert_copied("dst/insecure", &output);
}
