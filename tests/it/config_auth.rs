//! How `image-migrator config` reaches the API server: kubeconfig selection, TLS trust and
//! every supported kind of credential, and clear errors for what is not supported.

use crate::support;

use predicates::prelude::*;
use support::apiserver::{ApiServer, Auth, Certs, image_migrator, parse_rules, workload};

fn server(auth: Auth) -> ApiServer {
    ApiServer::builder()
        .object(
            "Pod",
            workload("Pod", "default", "p", &["ghcr.io/acme/app:1"]),
        )
        .auth(auth)
        .start()
}

fn config(kubeconfig: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = image_migrator();
    cmd.args(["config", "-t", "harbor.example.com/mirror", "-o", "-", "-k"])
        .arg(kubeconfig);
    cmd
}

fn assert_found_app(output: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    let rules = parse_rules(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(
        rules,
        [(
            "ghcr.io/acme/app:1".to_string(),
            "harbor.example.com/mirror/app:1".to_string()
        )]
    );
}

#[test]
fn bearer_token_is_sent() {
    let server = server(Auth::Token("s3cr3t-token".into()));
    let dir = tempfile::tempdir().unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority-data", &ca)],
        &[("token", "s3cr3t-token")],
    );
    assert_found_app(&config(&kubeconfig).output().unwrap());
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer s3cr3t-token"))
    );
}

#[test]
fn a_wrong_token_is_an_error_with_exit_code_1() {
    let server = server(Auth::Token("right".into()));
    let dir = tempfile::tempdir().unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority-data", &ca)],
        &[("token", "wrong")],
    );
    config(&kubeconfig)
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("401"))
        .stderr(predicate::str::contains("credentials were not accepted"))
        .stderr(predicate::str::contains("wrong").not());
}

#[test]
fn token_file_relative_to_the_kubeconfig_is_read() {
    let server = server(Auth::Token("from-file".into()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/token"), "from-file\n").unwrap();
    std::fs::write(dir.path().join("ca.crt"), &server.certs.ca_pem).unwrap();
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority", "ca.crt")],
        &[("tokenFile", "secrets/token")],
    );
    // Run from elsewhere so that only "relative to the kubeconfig" can find the files.
    let elsewhere = tempfile::tempdir().unwrap();
    assert_found_app(
        &config(&kubeconfig)
            .current_dir(elsewhere.path())
            .output()
            .unwrap(),
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer from-file"))
    );
}

#[test]
fn a_missing_token_file_is_a_kubeconfig_error() {
    let server = server(Auth::Anonymous);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path(), &[], &[("tokenFile", "does-not-exist")]);
    config(&kubeconfig)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tokenFile"))
        .stderr(predicate::str::contains("does-not-exist"));
    assert!(server.requests().is_empty());
}

#[test]
fn basic_auth_is_sent() {
    let server = server(Auth::Basic("admin".into(), "pa55".into()));
    let dir = tempfile::tempdir().unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority-data", &ca)],
        &[("username", "admin"), ("password", "pa55")],
    );
    assert_found_app(&config(&kubeconfig).output().unwrap());
}

#[test]
fn client_certificate_data_authenticates() {
    let server = server(Auth::ClientCert);
    let dir = tempfile::tempdir().unwrap();
    let certs = &server.certs;
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority-data", &Certs::b64(&certs.ca_pem))],
        &[
            (
                "client-certificate-data",
                &Certs::b64(&certs.client_cert_pem),
            ),
            ("client-key-data", &Certs::b64(&certs.client_key_pem)),
        ],
    );
    assert_found_app(&config(&kubeconfig).output().unwrap());
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.client_cert && r.authorization.is_none())
    );
}

#[test]
fn client_certificate_files_authenticate() {
    let server = server(Auth::ClientCert);
    let dir = tempfile::tempdir().unwrap();
    let certs = &server.certs;
    std::fs::write(dir.path().join("ca.crt"), &certs.ca_pem).unwrap();
    std::fs::write(dir.path().join("client.crt"), &certs.client_cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &certs.client_key_pem).unwrap();
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority", "ca.crt")],
        &[
            ("client-certificate", "client.crt"),
            ("client-key", "client.key"),
        ],
    );
    assert_found_app(&config(&kubeconfig).output().unwrap());
    assert!(server.requests().iter().all(|r| r.client_cert));
}

#[test]
fn without_a_client_certificate_the_server_refuses() {
    let server = server(Auth::ClientCert);
    let dir = tempfile::tempdir().unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    let kubeconfig =
        server.write_kubeconfig(dir.path(), &[("certificate-authority-data", &ca)], &[]);
    config(&kubeconfig)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("401"));
}

#[test]
fn an_unknown_ca_fails_with_a_clear_message() {
    let server = server(Auth::Anonymous);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path(), &[], &[]);
    config(&kubeconfig)
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("certificate"))
        .stderr(predicate::str::contains("certificate-authority"))
        .stderr(predicate::str::contains(&server.url));
    assert!(
        server.requests().is_empty(),
        "nothing may be served without trust"
    );
}

#[test]
fn another_ca_is_not_trusted() {
    let server = server(Auth::Anonymous);
    let other = Certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("certificate-authority-data", &Certs::b64(&other.ca_pem))],
        &[],
    );
    config(&kubeconfig)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("certificate"));
    assert!(server.requests().is_empty());
}

#[test]
fn insecure_skip_tls_verify_connects_without_the_ca() {
    let server = server(Auth::Token("t".into()));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[("insecure-skip-tls-verify", "true")],
        &[("token", "t")],
    );
    assert_found_app(&config(&kubeconfig).output().unwrap());
}

#[test]
fn exec_plugins_are_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: eks\n\
         clusters:\n- name: eks\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: eks\n  context:\n    cluster: eks\n    user: aws\n\
         users:\n- name: aws\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n",
    )
    .unwrap();
    config(&kubeconfig)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("exec credential plugin"))
        .stderr(predicate::str::contains("not supported"))
        .stderr(predicate::str::contains("--from-file"));
}

#[test]
fn auth_providers_are_not_supported() {
    let server = server(Auth::Anonymous);
    let dir = tempfile::tempdir().unwrap();
    let path = server.write_kubeconfig(dir.path(), &[], &[]);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  user:\n    {}",
        "  user:\n    auth-provider:\n      name: oidc",
    );
    std::fs::write(&path, text).unwrap();
    config(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("auth-provider"))
        .stderr(predicate::str::contains("not supported"));
}

#[test]
fn context_flag_picks_another_context() {
    let server = server(Auth::Token("prod".into()));
    let dir = tempfile::tempdir().unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "current-context: broken\n\
             clusters:\n- name: k\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: broken\n  context: {{cluster: missing, user: u}}\n\
             - name: prod\n  context: {{cluster: k, user: u}}\n\
             users:\n- name: u\n  user: {{token: prod}}\n",
            server.url
        ),
    )
    .unwrap();
    config(&kubeconfig)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cluster \"missing\""));
    assert_found_app(
        &config(&kubeconfig)
            .args(["--context", "prod"])
            .output()
            .unwrap(),
    );
    config(&kubeconfig)
        .args(["--context", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("context \"nope\" not found"));
}

#[test]
fn kubeconfig_comes_from_the_environment_or_home() {
    let server = server(Auth::Anonymous);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".kube")).unwrap();
    let ca = Certs::b64(&server.certs.ca_pem);
    server.write_kubeconfig(
        &home.path().join(".kube"),
        &[("certificate-authority-data", &ca)],
        &[],
    );
    let run = |cmd: &mut assert_cmd::Command| {
        cmd.args(["config", "-t", "harbor.example.com/mirror", "-o", "-"])
            .output()
            .unwrap()
    };
    // ~/.kube/config
    assert_found_app(&run(image_migrator().env("HOME", home.path())));
    // $KUBECONFIG wins over ~/.kube/config (here: a missing file, so it must fail).
    let missing = home.path().join("missing.yaml");
    image_migrator()
        .env("HOME", home.path())
        .env("KUBECONFIG", &missing)
        .args(["config", "-t", "harbor.example.com/mirror", "-o", "-"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.yaml"));
    // A KUBECONFIG list: the first existing file is used.
    let list = std::env::join_paths([missing, home.path().join(".kube/config")]).unwrap();
    assert_found_app(&run(image_migrator()
        .env("HOME", "/nonexistent")
        .env("KUBECONFIG", list)));
}

#[test]
fn a_bad_kubeconfig_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, "clusters: [unclosed").unwrap();
    config(&kubeconfig)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid kubeconfig"));
}

#[test]
fn a_client_key_of_another_certificate_is_a_kubeconfig_error() {
    let server = server(Auth::ClientCert);
    let other = Certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(
        dir.path(),
        &[(
            "certificate-authority-data",
            &Certs::b64(&server.certs.ca_pem),
        )],
        &[
            (
                "client-certificate-data",
                &Certs::b64(&server.certs.client_cert_pem),
            ),
            ("client-key-data", &Certs::b64(&other.client_key_pem)),
        ],
    );
    config(&kubeconfig)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("client key does not belong"))
        .stderr(predicate::str::contains("panicked").not());
    assert!(server.requests().is_empty());
}
