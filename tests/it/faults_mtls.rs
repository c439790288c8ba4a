//! mTLS: a real registry that demands a client certificate signed by its client CA. When
//! the registry refuses the connection for want of one, or refuses the one presented, the
//! image fails at once (not retried) with an error that says so and names where the
//! certificate goes, `/etc/docker/certs.d/<host:port>/client.cert` and `client.key`, and
//! does not send the user off to trust the registry's CA (which is trusted already). The
//! client certificate from certs.d is presented to a registry marked `insecure` too, as
//! Docker does.
//!
//! A small rustls server (TLS 1.3, and 1.2) is refused in the same words. It closes with
//! the client's last handshake records or request unread, so its reset often meets the
//! client's next write before the client reads the alert; `http::tls::LastWords` is what
//! makes the alert arrive every time (without it this test failed in about 1 run of 4).

use crate::support;

use serde_json::{Value, json};
use support::apiserver::Certs;
use support::migrator::{result_for, seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder};
use support::sync::SyncRun;

struct Setup {
    certs: Certs,
    registry: TestRegistry,
    seeder: Seeder,
    image: Pushed,
    ca_dir: tempfile::TempDir,
}

fn setup(seed: u64) -> Setup {
    let certs = Certs::generate();
    let registry = TestRegistry::start_mtls(
        &certs.server_cert_pem,
        &certs.server_key_pem,
        &certs.ca_pem,
        (certs.client_cert_pem.clone(), certs.client_key_pem.clone()),
    );
    let seeder = Seeder::for_registry(&registry);
    let image = seed_images(&seeder, "src/app", &["v1"], seed, 3000).remove(0);
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::write(ca_dir.path().join("ca.pem"), &certs.ca_pem).unwrap();
    Setup {
        certs,
        registry,
        seeder,
        image,
        ca_dir,
    }
}

impl Setup {
    fn host(&self) -> &str {
        &self.registry.host
    }

    /// A run copying src/app:v1 to `dst_repo`:v1 on the registry.
    fn workdir(&self, dst_repo: &str, insecure: bool) -> SyncRun {
        let host = self.host();
        let auth = if insecure {
            json!({ host: { "insecure": true } })
        } else {
            json!({})
        };
        SyncRun::ci(&auth, &tag_rules(host, "src/app", host, dst_repo, &["v1"]))
    }

    /// The failed result of src/app:v1 in `work`'s report after `output`; nothing copied.
    fn failed(&self, work: &SyncRun, dst_repo: &str, output: &std::process::Output) -> Value {
        assert_eq!(output.status.code(), Some(1), "{}", text(output));
        assert_eq!(self.seeder.manifest_digest(dst_repo, "v1"), None);
        let report = work.report();
        let result = result_for(&report, &format!("{}/src/app:v1", self.host())).clone();
        assert_eq!(result["status"], "failed", "{result:#}");
        assert_eq!(result["error"]["kind"], "network", "{result:#}");
        // Refused by the server's choice: retrying would not change it.
        assert_eq!(result["attempts"], 1, "{result:#}");
        result
    }

    fn assert_copied(&self, dst_repo: &str, output: &std::process::Output) {
        assert_eq!(output.status.code(), Some(0), "{}", text(output));
        assert_eq!(
            self.seeder.manifest_digest(dst_repo, "v1"),
            Some(self.image.manifest_digest.clone())
        );
    }

    /// `/etc/docker/certs.d/<host:port>`, as the messages must name it.
    fn certs_d_dir(&self) -> String {
        format!("/etc/docker/certs.d/{}", self.host())
    }
}

/// The error message of `result`, checked not to give the advice for an untrusted server
/// certificate: the server's certificate was trusted, it is ours that was refused.
fn message_without_ca_advice(result: &Value) -> String {
    let message = result["error"]["message"].as_str().unwrap().to_string();
    eprintln!("message: {message}");
    for wrong in [
        "--ca-file",
        "ca.crt",
        "trust the registry's CA",
        "\"insecure\"",
    ] {
        assert!(
            !message.contains(wrong),
            "{wrong:?} is the wrong advice here: {message}"
        );
    }
    message
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

fn run_with_docker_etc(
    cmd: &std::process::Command,
    etc: &tempfile::TempDir,
) -> std::process::Output {
    let etc_docker = std::path::Path::new("/etc/docker");
    assert!(
        etc_docker.is_dir(),
        "this test mounts over /etc/docker (created by Debian's docker-registry, which ci/lib.sh installs)"
    );
    support::private_mounts::with_bind_mounts(cmd, &[(etc.path().to_path_buf(), etc_docker)])
        .output()
        .unwrap()
}

#[test]
fn without_a_client_certificate_the_error_says_where_it_goes() {
    let s = setup(41);
    let dir = s.certs_d_dir();

    // The registry's CA trusted through --ca-file; no certs.d directory for the host.
    let work = s.workdir("dst/no-cert", false);
    let output = work
        .command()
        .arg("--ca-file")
        .arg(s.ca_dir.path().join("ca.pem"))
        .output()
        .unwrap();
    let result = s.failed(&work, "dst/no-cert", &output);
    let message = message_without_ca_advice(&result);
    for needle in [
        "requires a client certificate (mTLS)",
        "none was sent",
        &format!("{dir}/client.cert"),
        &format!("{dir}/client.key"),
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert!(
        text(&output).contains(&format!("{dir}/client.cert")),
        "the log says it too: {}",
        text(&output)
    );

    // Where the hint says, the certificate is presented, also to a registry marked
    // `insecure` (whose certificate is then not checked), as Docker does.
    let etc = docker_etc(
        s.host(),
        &[
            ("client.cert", &s.certs.client_cert_pem),
            ("client.key", &s.certs.client_key_pem),
        ],
    );
    let work = s.workdir("dst/insecure-cert", true);
    let output = run_with_docker_etc(&work.std_command(), &etc);
    s.assert_copied("dst/insecure-cert", &output);
}

#[test]
fn a_client_certificate_the_registry_refuses_is_named() {
    let s = setup(42);
    let dir = s.certs_d_dir();
    // A client certificate from another CA, which the registry does not accept.
    let stranger = Certs::generate();
    let etc = docker_etc(
        s.host(),
        &[
            ("ca.crt", &s.certs.ca_pem),
            ("client.cert", &stranger.client_cert_pem),
            ("client.key", &stranger.client_key_pem),
        ],
    );
    let work = s.workdir("dst/refused", false);
    let output = run_with_docker_etc(&work.std_command(), &etc);
    let result = s.failed(&work, "dst/refused", &output);
    let message = message_without_ca_advice(&result);
    for needle in [
        &format!("the registry refused the client certificate {dir}/client.cert"),
        "issued by a CA the registry trusts for clients",
        &format!("{dir}/client.key"),
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert!(
        !message.contains("none was sent"),
        "one was sent: {message}"
    );

    // The same directory with the certificate the registry accepts: copied.
    let etc = docker_etc(
        s.host(),
        &[
            ("ca.crt", &s.certs.ca_pem),
            ("client.cert", &s.certs.client_cert_pem),
            ("client.key", &s.certs.client_key_pem),
        ],
    );
    let work = s.workdir("dst/accepted", false);
    let output = run_with_docker_etc(&work.std_command(), &etc);
    s.assert_copied("dst/accepted", &output);
}

/// A TLS server on 127.0.0.1 that demands a client certificate signed by `client_ca_pem`
/// (rustls, `versions` only) and answers any request `200 {}` once it has one. Not a
/// registry: here it is the handshake that matters.
fn rustls_mtls_server(
    certs: &Certs,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> String {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_roots = rustls::RootCertStore::empty();
    client_roots
        .add(CertificateDer::from_pem_slice(certs.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        client_roots.into(),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(certs.server_cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certs.server_key_pem.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut reader = std::io::BufReader::new(&mut tls);
                // Reading runs the handshake; a refused client sends the alert from here.
                if let Ok(Some(_)) = support::http1::Request::read(&mut reader) {
                    let _ = support::http1::respond(&mut tls, 200, &[], b"{}", true);
                }
            });
        }
    });
    host
}

#[test]
fn a_rustls_server_wanting_a_client_certificate_gets_the_same_hint() {
    let certs = Certs::generate();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &certs.ca_pem).unwrap();
    for (versions, alert) in [
        (&[&rustls::version::TLS13][..], "certificate_required"),
        (&[&rustls::version::TLS12][..], "certificate_required"),
    ] {
        let host = rustls_mtls_server(&certs, versions);
        let work = SyncRun::ci(
            &json!({}),
            &tag_rules(&host, "src/app", &host, "dst/app", &["v1"]),
        );
        let output = work
            .command()
            .arg("--ca-file")
            .arg(ca_file.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let report = work.report();
        let result = result_for(&report, &format!("{host}/src/app:v1"));
        assert_eq!(result["error"]["kind"], "network", "{result:#}");
        assert_eq!(result["attempts"], 1, "{result:#}");
        let message = message_without_ca_advice(result);
        let dir = format!("/etc/docker/certs.d/{host}");
        for needle in [
            "client certificate (mTLS)",
            "none was sent",
            alert,
            &format!("{dir}/client.cert"),
            &format!("{dir}/client.key"),
        ] {
            assert!(
                message.contains(needle),
                "{versions:?}: {needle:?} missing from: {message}"
            );
        }
    }

    // A certificate from another CA that has the same name as the one the server trusts
    // (every test CA is "image-migrator test CA"): its signature does not verify, and
    // rustls says `decrypt_error`, which may have other causes; the hint says so.
    let host = rustls_mtls_server(&certs, &[&rustls::version::TLS13]);
    let stranger = Certs::generate();
    let etc = docker_etc(
        &host,
        &[
            ("ca.crt", &certs.ca_pem),
            ("client.cert", &stranger.client_cert_pem),
            ("client.key", &stranger.client_key_pem),
        ],
    );
    let work = SyncRun::ci(
        &json!({}),
        &tag_rules(&host, "src/app", &host, "dst/app", &["v1"]),
    );
    let output = run_with_docker_etc(&work.std_command(), &etc);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = work.report();
    let result = result_for(&report, &format!("{host}/src/app:v1"));
    assert_eq!(result["attempts"], 1, "{result:#}");
    let message = message_without_ca_advice(result);
    let dir = format!("/etc/docker/certs.d/{host}");
    for needle in [
        "(TLS alert: decrypt_error) after the client certificate",
        &format!("{dir}/client.cert was presented; it may refuse that certificate"),
        "issued by a CA the registry trusts for clients",
        &format!("{dir}/client.key"),
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}
