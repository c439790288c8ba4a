//! ECR's sign-in: the password of user `AWS` from `GetAuthorizationToken`, asked of a
//! [`CloudSignIn`] (the registry client: this module never talks to the network) once per
//! registry per run, and once more after the registry refused it.

use std::sync::{Arc, Mutex};

use super::AwsKeys;
use super::{CredentialKey, CredentialSource, CredentialStore, Credentials, Resolved, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::kind::Kind;

/// What ECR's sign-in needs, for a [`CloudSignIn`] to ask `GetAuthorizationToken`.
pub struct EcrSignIn<'a> {
    pub registry: &'a str,
    pub region: &'a str,
    /// The API's base URL, without a trailing `/`.
    pub api: String,
    pub insecure: bool,
    pub keys: &'a AwsKeys,
}

/// Asks the clouds for sign-in passwords over the network (the registry client does).
pub trait CloudSignIn {
    /// The password of user `AWS`, from `GetAuthorizationToken`. Errors carry no secret.
    fn ecr_password(&self, ask: &EcrSignIn<'_>) -> Result<Secret>;
}

/// ECR's sign-in for one registry: the answer of the last ask, and the asks so far.
#[derive(Default)]
pub(super) struct EcrSlot {
    answer: Option<Result<Secret>>,
    runs: u32,
}

impl CredentialStore {
    /// ECR's password for `registry`, asked of `sign_in` when not known; each one goes to
    /// `on_secret` (with the Basic value made of it, which is the token itself).
    pub(super) fn ecr(&self, registry: &str, sign_in: &dyn CloudSignIn) -> Result<Resolved> {
        let (Some(keys), (_, Some(region))) = (&self.cloud.aws, self.kind_region(registry)) else {
            // cloud_source said ecr-api only with both.
            return Err(Error::new(
                ErrorKind::Auth,
                format!("{registry}: ECR sign-in needs AWS_* keys and a region"),
            ));
        };
        let slot = self.ecr_slot(registry);
        let mut slot = slot.lock().unwrap();
        if slot.answer.is_none() {
            slot.runs += 1;
            let suffix = crate::kind::from_host(registry).map_or("", |h| h.suffix);
            let api = self
                .auth
                .vendor(registry)
                .api
                .or_else(|| crate::kind::default_api(Kind::Ecr, Some(&region), suffix, ""));
            let ask = EcrSignIn {
                registry,
                region: &region,
                api: api.unwrap_or_default().trim_end_matches('/').to_string(),
                insecure: self.auth.is_insecure(registry),
                keys,
            };
            let answer = sign_in.ecr_password(&ask);
            if let Ok(password) = &answer {
                use base64::Engine as _;
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("AWS:{}", password.expose()));
                (self.on_secret)(password.expose());
                (self.on_secret)(&basic);
            }
            slot.answer = Some(answer);
        }
        let password = slot.answer.clone().unwrap()?;
        Ok(Resolved {
            credentials: Credentials::Basic {
                username: Secret::new("AWS".to_string()),
                password,
            },
            source: CredentialSource::EcrApi,
            key: CredentialKey::EcrToken {
                registry: registry.to_string(),
                run: slot.runs,
            },
        })
    }

    fn ecr_slot(&self, registry: &str) -> Arc<Mutex<EcrSlot>> {
        self.ecr
            .lock()
            .unwrap()
            .entry(registry.to_string())
            .or_default()
            .clone()
    }

    /// The registry refused the password of ask `run`: forgotten so it is asked once more
    /// (once per run). Whether anything changed.
    pub(super) fn ecr_refused(&self, registry: &str, run: u32) -> bool {
        let slot = self.ecr_slot(registry);
        let mut slot = slot.lock().unwrap();
        if slot.runs >= 2 || slot.runs != run {
            // Asked again already (by this job or a parallel one).
            return slot.runs != run;
        }
        slot.answer = None;
        true
    }
}
