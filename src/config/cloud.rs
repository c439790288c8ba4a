//! The clouds' own keys, from the variables their SDKs and CLIs read: Huawei Cloud's
//! `HUAWEICLOUD_SDK_AK` / `HUAWEICLOUD_SDK_SK` (and `HUAWEICLOUD_SDK_PROJECT_ID`), AWS's
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`. They sign the
//! management APIs' requests (SWR, ECR) and sign in to those registries when auth.json
//! gives no username and password. Only reads variables; every value but the project id
//! is a [`Secret`].

use super::auth::Secret;

/// Huawei Cloud's access key pair.
#[derive(Debug, Clone)]
pub struct HuaweiKeys {
    pub ak: Secret,
    pub sk: Secret,
    /// `X-Project-Id`, signed, when set (the SDK sends it for project-level services).
    pub project_id: Option<String>,
}

/// AWS's access key, with the session token of temporary credentials.
#[derive(Debug, Clone)]
pub struct AwsKeys {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// The keys the environment holds; a pair with a part missing is no pair.
#[derive(Debug, Clone, Default)]
pub struct CloudKeys {
    pub huawei: Option<HuaweiKeys>,
    pub aws: Option<AwsKeys>,
}

impl CloudKeys {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> CloudKeys {
        let set = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let huawei = match (set("HUAWEICLOUD_SDK_AK"), set("HUAWEICLOUD_SDK_SK")) {
            (Some(ak), Some(sk)) => Some(HuaweiKeys {
                ak: Secret::new(ak),
                sk: Secret::new(sk),
                project_id: set("HUAWEICLOUD_SDK_PROJECT_ID"),
            }),
            _ => None,
        };
        let aws = match (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(AwsKeys {
                access_key_id: Secret::new(id),
                secret_access_key: Secret::new(secret),
                session_token: set("AWS_SESSION_TOKEN").map(Secret::new),
            }),
            _ => None,
        };
        CloudKeys { huawei, aws }
    }

    /// Every value to mask in CI logs.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(h) = &self.huawei {
            out.extend([h.ak.expose(), h.sk.expose()]);
        }
        if let Some(a) = &self.aws {
            out.extend([a.access_key_id.expose(), a.secret_access_key.expose()]);
            out.extend(a.session_token.as_ref().map(Secret::expose));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_need_both_halves() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let keys = CloudKeys::from_env(&env(&[
            ("HUAWEICLOUD_SDK_AK", "A"),
            ("AWS_ACCESS_KEY_ID", "B"),
        ]));
        assert!(keys.huawei.is_none() && keys.aws.is_none());
        let keys = CloudKeys::from_env(&env(&[
            ("HUAWEICLOUD_SDK_AK", "A"),
            ("HUAWEICLOUD_SDK_SK", "S"),
            ("AWS_ACCESS_KEY_ID", "B"),
            ("AWS_SECRET_ACCESS_KEY", "C"),
            ("AWS_SESSION_TOKEN", " "),
        ]));
        assert_eq!(keys.huawei.unwrap().ak.expose(), "A");
        assert!(keys.aws.unwrap().session_token.is_none());
        assert!(
            !format!(
                "{:?}",
                CloudKeys::from_env(&env(&[
                    ("HUAWEICLOUD_SDK_AK", "A"),
                    ("HUAWEICLOUD_SDK_SK", "S")
                ]))
            )
            .contains("\"S\"")
        );
    }
}
