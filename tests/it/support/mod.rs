//! Shared integration-test support (`use crate::support;` in a test module): the harness
//! every capability module of the one test binary uses.
//!
//! - [`registry`]: start throwaway registries in Docker (anonymous, htpasswd, TLS, token).
//! - [`apiserver`]: a small HTTPS server answering like the Kubernetes API server.
//! - [`seed`]: push real images/indexes over the plain HTTP API and read them back.
//! - [`sync`]: [`sync::SyncRun`], the one way a test starts a sync (auth.json/images.json,
//!   arguments, environment; run to a checked report, or as an assert_cmd or std command),
//!   and the registries' access logs.
//! - [`fault_proxy`]: a fault-injecting HTTP proxy in front of a registry.
//! - [`forward_proxy`]: a real tinyproxy on loopback that logs its CONNECTs.
//! - [`token_server`]: a bearer token server issuing signed JWTs a registry accepts.
//! - [`blob_server`]: the "object storage" that redirected blob downloads land on.
//! - [`http1`]: reading a request and writing a response, for the small servers.
//! - [`hostile_registry`]: a registry that misbehaves on purpose, one way at a time.
//! - [`harbor`]: Harbor's API v2.0 in front of a real registry, refusing pushes into
//!   missing projects as Harbor does.
//! - [`spec_registry`]: an in-memory registry that follows the distribution spec, with a
//!   switch for each protocol choice under test and a log of every request.
//! - [`cloud`]: SWR's and ECR's APIs (signatures recomputed by Huawei's SDK and botocore)
//!   beside a real registry gated as they gate it, the Python in a cached venv (`cloud_venv.sh`).
//! - [`bundle`]: read an exported OCI layout as an independent reader would.
//! - [`project`]: a scratch directory with auth.json/images.json and `validate` run in it.
//! - [`migrator`]: helpers for the values a run is given and what it left (rules per tag,
//!   seeded images, a report's result, the output as text, complete tags).
//! - [`private_mounts`]: run it in a private mount namespace with test files over system paths.
#![allow(dead_code)]

pub mod apiserver;
pub mod blob_server;
pub mod bundle;
pub mod cloud;
pub mod fault_proxy;
pub mod forward_proxy;
pub mod harbor;
pub mod hostile_registry;
pub mod http1;
pub mod migrator;
pub mod private_mounts;
pub mod project;
pub mod registry;
pub mod seed;
pub mod spec_registry;
pub mod sync;
pub mod tls_front;
pub mod token_server;

/// Environment a CI runner or a developer's shell may have that would change what the
/// binary does; every test run of the binary starts without it.
pub const CLEARED_ENV: [&str; 23] = [
    "DEFAULT_REGISTRY",
    "DEFAULT_NAMESPACE",
    "IMAGE_MIGRATOR_SHARD",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REGISTRY_AUTH_FILE",
    "DOCKER_AUTH_CONFIG",
    "XDG_RUNTIME_DIR",
    "KUBECONFIG",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The `image-migrator` binary with [`CLEARED_ENV`] removed (for a process the test must
/// signal or kill).
pub fn migrator_std() -> std::process::Command {
    migrator_at(env!("CARGO_BIN_EXE_image-migrator"))
}

/// Another build of the binary (`program`), with the same environment.
pub fn migrator_at(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    // The machine's own `docker login` must not leak in; tests that want a Docker config
    // set DOCKER_CONFIG themselves.
    cmd.env(
        "DOCKER_CONFIG",
        "/nonexistent/image-migrator-test-docker-config",
    );
    cmd
}

/// The same, as an assert_cmd command.
pub fn migrator() -> assert_cmd::Command {
    assert_cmd::Command::from_std(migrator_std())
}

/// Decodes a URL query component (`%XX` escapes and `+` for space), for the small
/// servers that read query strings.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The container image under test: `$IMAGE_MIGRATOR_IMAGE` (ci/test builds it first), else
/// `image-migrator:dev` built now with ci/image, once per test run.
pub fn image_under_test() -> &'static str {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| match std::env::var("IMAGE_MIGRATOR_IMAGE") {
        Ok(image) if !image.is_empty() => image,
        _ => {
            let status = std::process::Command::new("bash")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/image"))
                .status()
                .expect("run ci/image");
            assert!(status.success(), "ci/image failed to build the image");
            "image-migrator:dev".to_string()
        }
    })
}
