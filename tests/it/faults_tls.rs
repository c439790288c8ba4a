//! TLS: a registry serving HTTPS with a certificate from a private test CA. Without that
//! CA the image fails with a message that says it is a TLS/certificate problem and how
//! to fix it; `--ca-file`, `SSL_CERT_FILE`, the system store, `SSL_CERT_DIR`, Docker's
//! certs.d (CAs and client certificates) or `insecure: true` each make it work.

use crate::support;

use support::apiserver::Certs;
use support::migrator::{result_for, seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder};
use support::sync::SyncRun;

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

    /// A run copying src/app:v1 to `dst_repo`:v1 on the same TLS registry.
    fn workdir(&self, dst_repo: &str, insecure: bool) -> SyncRun {
        let host = self.registry.host.as_str();
        let auth = if insecure {
            serde_json::json!({ host: { "insecure": true } })
        } else {
            serde_json::json!({})
        };
        SyncRun::ci(&auth, &tag_rules(host, "src/app", host, dst_repo, &["v1"]))
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
    let output = work.command().output().unwrap();
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
        .command()
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
        .command()
        .env("SSL_CERT_FILE", s.ca_file())
        .output()
        .unwrap();
    s.assert_copied("dst/ssl-cert-file", &output);

    let work = s.workdir("dst/insecure", true);
    let output = work.command().output().unwrap();
    s.assert_copied("dst/insecure", &output);
}

/// The Debian system bundle with the test CA appended, in a temporary file.
fn system_bundle_with(ca_pem: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let mut bundle =
        std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    bundle.push('\n');
    bundle.push_str(ca_pem);
    let path = dir.join("ca-certificates.crt");
    std::fs::write(&path, bundle).unwrap();
    path
}

#[test]
fn a_ca_in_the_system_store_or_ssl_cert_dir_is_trusted_without_ca_file() {
    let s = setup(33);
    let ca_pem = std::fs::read_to_string(s.ca_file()).unwrap();

    // The system store, as update-ca-certificates leaves it: the bundle file is replaced
    // in a private mount namespace only, so the machine's trust store is never touched.
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(system.exists(), "this test needs Debian's CA bundle");
    let scratch = tempfile::tempdir().unwrap();
    let bundle = system_bundle_with(&ca_pem, scratch.path());
    let work = s.workdir("dst/system-store", false);
    let output =
        support::private_mounts::with_bind_mounts(&work.std_command(), &[(bundle.clone(), system)])
            .output()
            .unwrap();
    s.assert_copied("dst/system-store", &output);
    assert_eq!(
        work.report()["settings"]["ca_file"],
        serde_json::Value::Null
    );

    // SSL_CERT_FILE naming some other CA adds to the system store; it does not hide it.
    let other = Certs::generate();
    std::fs::write(scratch.path().join("other-ca.pem"), &other.ca_pem).unwrap();
    let work = s.workdir("dst/system-plus-env", false);
    let mut cmd = work.std_command();
    cmd.env("SSL_CERT_FILE", scratch.path().join("other-ca.pem"));
    let output = support::private_mounts::with_bind_mounts(
        &cmd,
        &[(scratch.path().join("ca-certificates.crt"), system)],
    )
    .output()
    .unwrap();
    s.assert_copied("dst/system-plus-env", &output);

    // SSL_CERT_DIR: a directory of CA files adds to the system store.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test-ca.pem"), &ca_pem).unwrap();
    let work = s.workdir("dst/ssl-cert-dir", false);
    let output = work
        .command()
        .env("SSL_CERT_DIR", dir.path())
        .output()
        .unwrap();
    s.assert_copied("dst/ssl-cert-dir", &output);
}

/// A stand-in for /etc/docker holding `certs.d/<host>/` with `files`; the binary sees it
/// through a private bind mount only.
fn docker_etc(host: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let host_dir = dir.path().join("certs.d").join(host);
    std::fs::create_dir_all(&host_dir).unwrap();
    for (name, content) in files {
        std::fs::write(host_dir.join(name), content).unwrap();
    }
    dir
}

fn with_docker_etc(work: &SyncRun, docker_etc: &tempfile::TempDir) -> std::process::Output {
    let etc_docker = std::path::Path::new("/etc/docker");
    assert!(
        etc_docker.is_dir(),
        "this test mounts over /etc/docker (created by Debian's docker-registry, which ci/lib.sh installs)"
    );
    support::private_mounts::with_bind_mounts(
        &work.std_command(),
        &[(docker_etc.path().to_path_buf(), etc_docker)],
    )
    .output()
    .unwrap()
}

#[test]
fn a_ca_in_docker_certs_d_is_trusted_for_its_registry() {
    let s = setup(34);
    let ca_pem = std::fs::read_to_string(s.ca_file()).unwrap();
    let etc = docker_etc(&s.registry.host, &[("ca.crt", &ca_pem)]);
    let work = s.workdir("dst/certs-d", false);
    let output = with_docker_etc(&work, &etc);
    s.assert_copied("dst/certs-d", &output);

    // The directory is per host[:port]: one for another port does not count.
    let port: u16 = s.registry.host.rsplit(':').next().unwrap().parse().unwrap();
    let other = docker_etc(&format!("127.0.0.1:{}", port ^ 1), &[("ca.crt", &ca_pem)]);
    let work = s.workdir("dst/other-port", false);
    let output = with_docker_etc(&work, &other);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(s.seeder.manifest_digest("dst/other-port", "v1"), None);
}

#[test]
fn an_mtls_registry_takes_the_client_certificate_from_docker_certs_d() {
    let certs = Certs::generate();
    let registry = TestRegistry::start_mtls(
        &certs.server_cert_pem,
        &certs.server_key_pem,
        &certs.ca_pem,
        (certs.client_cert_pem.clone(), certs.client_key_pem.clone()),
    );
    let seeder = Seeder::for_registry(&registry);
    let image = seed_images(&seeder, "src/app", &["v1"], 35, 3000).remove(0);
    let host = registry.host.as_str();
    let rules = tag_rules(host, "src/app", host, "dst/mtls", &["v1"]);

    // The CA alone: the registry refuses the connection without a client certificate.
    let etc = docker_etc(host, &[("ca.crt", &certs.ca_pem)]);
    let work = SyncRun::ci(&serde_json::json!({}), &rules);
    let output = with_docker_etc(&work, &etc);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(seeder.manifest_digest("dst/mtls", "v1"), None);

    // client.cert/client.key next to it, as Docker wants them.
    let etc = docker_etc(
        host,
        &[
            ("ca.crt", &certs.ca_pem),
            ("client.cert", &certs.client_cert_pem),
            ("client.key", &certs.client_key_pem),
        ],
    );
    let output = with_docker_etc(&work, &etc);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        seeder.manifest_digest("dst/mtls", "v1"),
        Some(image.manifest_digest)
    );
}
