//! Cloud registries' stand-ins that check what the real services check, with the vendors'
//! own code: `cloud_api.py` (in the venv `cloud_venv.sh` makes, with Huawei's
//! `huaweicloudsdkcore` and AWS's `botocore`) answers the management API and recomputes each request's
//! signature; a [`FaultProxy`] in front of a real registry asks it about every registry
//! request (`/_standin/gate`: sign-in, pushes into containers that do not exist).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use super::fault_proxy::FaultProxy;
use super::registry::TestRegistry;

/// The stand-in's keys: test values, never a real account's.
pub const AK: &str = "TESTAKSWR0123456789A";
pub const SK: &str = "testSkSwrDoNotUse0123456789abcdefghijklmn";
pub const REGION: &str = "cn-north-4";
pub const AWS_KEY_ID: &str = "AKIATESTECR000000000";
pub const AWS_SECRET: &str = "testAwsSecretDoNotUse/0123456789abcdefghij";
pub const AWS_REGION: &str = "eu-west-1";
/// The ECR registry's password for user `AWS` (what `GetAuthorizationToken` would give).
pub const ECR_PASSWORD: &str = "ecr-registry-password-0123456789";

/// The venv's Python, made by `cloud_venv.sh` when missing (once per test process).
pub fn python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/support/cloud_venv.sh"
        );
        let out = Command::new("bash")
            .arg(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run cloud_venv.sh");
        assert!(out.status.success(), "cloud_venv.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("bin/python")
    })
    .clone()
}

/// One stand-in: the API (`api`, an `http://` base URL) and the registry (`host`).
pub struct CloudStandIn {
    pub api: String,
    pub host: String,
    pub proxy: FaultProxy,
    child: Child,
}

impl CloudStandIn {
    /// SWR in front of `registry`, with these organizations; `may_create`: the keys may
    /// create organizations; `page_size`: the most repositories on one page.
    pub fn swr(
        registry: &TestRegistry,
        organizations: &[&str],
        may_create: bool,
        page_size: usize,
    ) -> CloudStandIn {
        let may_create = if may_create { "1" } else { "0" };
        let page_size = page_size.to_string();
        let containers = organizations.join(",");
        Self::start(
            registry,
            &[
                "--vendor",
                "swr",
                "--region",
                REGION,
                "--ak",
                AK,
                "--sk",
                SK,
                "--containers",
                &containers,
                "--may-create",
                may_create,
                "--page-size",
                &page_size,
            ],
        )
    }

    /// ECR in front of `registry`, with these repositories; `may_create`: the key may
    /// create repositories; `page_size`: the most repositories on one page.
    pub fn ecr(
        registry: &TestRegistry,
        repositories: &[&str],
        may_create: bool,
        page_size: usize,
    ) -> CloudStandIn {
        let may_create = if may_create { "1" } else { "0" };
        let page_size = page_size.to_string();
        let containers = repositories.join(",");
        Self::start(
            registry,
            &[
                "--vendor",
                "ecr",
                "--region",
                AWS_REGION,
                "--ak",
                AWS_KEY_ID,
                "--sk",
                AWS_SECRET,
                "--password",
                ECR_PASSWORD,
                "--containers",
                &containers,
                "--may-create",
                may_create,
                "--page-size",
                &page_size,
            ],
        )
    }

    /// ECR in front of `registry`, with these repositories, and no password issued before
    /// the run: the registry takes only what `GetAuthorizationToken` gives, except the first
    /// `stale_tokens` of those (expired already).
    pub fn ecr_sign_in(
        registry: &TestRegistry,
        repositories: &[&str],
        stale_tokens: usize,
    ) -> CloudStandIn {
        let containers = repositories.join(",");
        let stale = stale_tokens.to_string();
        Self::start(
            registry,
            &[
                "--vendor",
                "ecr",
                "--region",
                AWS_REGION,
                "--ak",
                AWS_KEY_ID,
                "--sk",
                AWS_SECRET,
                "--containers",
                &containers,
                "--stale-tokens",
                &stale,
            ],
        )
    }

    fn start(registry: &TestRegistry, args: &[&str]) -> CloudStandIn {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/cloud_api.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--registry", &registry.host])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cloud_api.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("cloud_api.py said {line:?}"));
        let api = format!("http://127.0.0.1:{port}");
        let proxy = FaultProxy::start(&registry.host);
        let gate = format!("{api}/_standin/gate");
        proxy.intercept(Arc::new(move |request| {
            if !request.path.starts_with("/v2/") {
                return None;
            }
            let asked = serde_json::json!({
                "method": request.method,
                "path": request.path,
                "authorization": request.header("authorization"),
            });
            let answer = ureq::post(&gate)
                .header("content-type", "application/json")
                .send(asked.to_string())
                .expect("the stand-in's gate")
                .body_mut()
                .read_to_string()
                .unwrap();
            let decision: serde_json::Value = serde_json::from_str(&answer).unwrap();
            let status = decision["status"].as_u64().unwrap() as u16;
            if status == 0 {
                return None;
            }
            let mut headers: Vec<(String, String)> = decision["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                .collect();
            headers.push(("Content-Type".into(), "application/json".into()));
            Some((status, headers, decision["body"].to_string().into_bytes()))
        }));
        CloudStandIn {
            api,
            host: proxy.host.clone(),
            proxy,
            child,
        }
    }

    fn state(&self) -> serde_json::Value {
        let text = ureq::get(format!("{}/_standin/state", self.api))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The containers (organizations) that exist now.
    pub fn containers(&self) -> Vec<String> {
        serde_json::from_value(self.state()["containers"].clone()).unwrap()
    }

    /// Every API call answered: method, path with query (ECR's: `/#<Action>`), status.
    pub fn api_calls(&self) -> Vec<(String, String, u16)> {
        serde_json::from_value(self.state()["calls"].clone()).unwrap()
    }

    /// The `GetAuthorizationToken` calls answered, by status.
    pub fn token_calls(&self) -> Vec<u16> {
        self.api_calls()
            .into_iter()
            .filter(|(_, p, _)| p.ends_with("#GetAuthorizationToken"))
            .map(|(_, _, status)| status)
            .collect()
    }

    /// The API calls that would change something (ECR's reads are POSTs too).
    pub fn api_writes(&self) -> Vec<(String, String, u16)> {
        self.api_calls()
            .into_iter()
            .filter(|(m, p, _)| {
                !matches!(m.as_str(), "GET" | "HEAD")
                    && !p.ends_with("#DescribeRepositories")
                    && !p.ends_with("#GetAuthorizationToken")
            })
            .collect()
    }
}

impl Drop for CloudStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
