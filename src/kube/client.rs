//! A small read-only client for the Kubernetes API server: TLS as the kubeconfig says
//! (CA, client certificate, or no verification) through `crate::http`'s API client,
//! bearer/basic credentials, and paged list calls. It only GETs JSON; it
//! knows nothing about images.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::http::{ApiClient, ApiError, ApiTrust};

use super::KubeError;
use super::kubeconfig::{ClusterAccess, Credentials};

/// What a list call produced.
#[derive(Debug)]
pub enum ListOutcome {
    /// All items, every page fetched.
    Items(Vec<Value>),
    /// The server said 403: the credentials may not list this resource here.
    Forbidden(String),
    /// The server said 404: the resource is not served (e.g. an old cluster).
    NotFound(String),
}

pub struct Client {
    api: ApiClient,
    server: String,
    authorization: Option<String>,
}

impl Client {
    /// Builds the client; an error is a problem of the kubeconfig's TLS material.
    pub fn new(access: &ClusterAccess) -> Result<Client, String> {
        // A kubeconfig CA replaces the system roots, as kubectl does.
        let trust = if access.insecure {
            ApiTrust::Unverified
        } else if let Some(pem) = &access.ca_pem {
            ApiTrust::Pem(pem)
        } else {
            ApiTrust::System
        };
        let identity = access
            .identity
            .as_ref()
            .map(|identity| (&identity.cert_pem[..], &identity.key_pem[..]));
        // The API server is reached through the environment's proxy, as kubectl does.
        let api = ApiClient::new(
            &access.server,
            trust,
            identity,
            Duration::from_secs(15),
            Duration::from_secs(120),
        )?;
        let authorization = match &access.credentials {
            Credentials::None => None,
            Credentials::Bearer(token) => Some(format!("Bearer {token}")),
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        };
        Ok(Client {
            api,
            server: access.server.clone(),
            authorization,
        })
    }

    /// Checks that the server answers (and that TLS and credentials work) with
    /// `GET /version`; returns its `gitVersion` when it says one.
    pub fn version(&self) -> Result<Option<String>, KubeError> {
        let (status, body) = self.get("/version", &[])?;
        match status {
            200..=299 => Ok(body
                .get("gitVersion")
                .and_then(Value::as_str)
                .map(str::to_string)),
            401 => Err(self.status_error("/version", status, &body)),
            // Some clusters hide /version from some users; the lists will tell.
            _ => Ok(None),
        }
    }

    /// Lists every item at `path`, following `metadata.continue` with pages of `limit`.
    pub fn list(&self, path: &str, limit: u32) -> Result<ListOutcome, KubeError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let limit_text = limit.to_string();
            let mut query = vec![("limit", limit_text.as_str())];
            if let Some(token) = &token {
                query.push(("continue", token.as_str()));
            }
            let (status, body) = self.get(path, &query)?;
            match status {
                200..=299 => {}
                403 => return Ok(ListOutcome::Forbidden(status_message(&body))),
                404 => return Ok(ListOutcome::NotFound(status_message(&body))),
                _ => return Err(self.status_error(path, status, &body)),
            }
            let page =
                body.get("items")
                    .and_then(Value::as_array)
                    .ok_or_else(|| KubeError::Cluster {
                        message: format!("GET {}{path}: the answer has no items list", self.server),
                    })?;
            items.extend(page.iter().cloned());
            token = body
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok(ListOutcome::Items(items));
            }
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<(u16, Value), KubeError> {
        let url = format!("{}{path}", self.server);
        let mut headers = vec![("Accept", "application/json")];
        if let Some(auth) = &self.authorization {
            headers.push(("Authorization", auth));
        }
        let response = self
            .api
            .get(&url, &headers, query)
            .map_err(|e| connect_error(&url, e))?;
        let status = response.status;
        let reader = response.into_reader();
        let body = match serde_json::from_reader::<_, Value>(reader) {
            Ok(body) => body,
            Err(_) if !(200..300).contains(&status) => Value::Null,
            Err(e) => {
                return Err(KubeError::Cluster {
                    message: format!("GET {url}: the answer is not JSON: {e}"),
                });
            }
        };
        Ok((status, body))
    }

    fn status_error(&self, path: &str, status: u16, body: &Value) -> KubeError {
        let hint = match status {
            401 => " (the credentials were not accepted; check the user's token or certificate)",
            _ => "",
        };
        KubeError::Cluster {
            message: format!(
                "GET {}{path}: HTTP {status}: {}{hint}",
                self.server,
                status_message(body)
            ),
        }
    }
}

/// The `message` of a Kubernetes `Status` answer, or a placeholder.
fn status_message(body: &Value) -> String {
    body.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| "no message".to_string())
}

fn connect_error(url: &str, error: ApiError) -> KubeError {
    let text = error.to_string();
    let hint = if error.is_tls_failure() {
        " (the server's TLS certificate could not be verified: set certificate-authority or \
         certificate-authority-data for the cluster in the kubeconfig, or \
         insecure-skip-tls-verify: true to skip verification)"
    } else {
        ""
    };
    KubeError::Cluster {
        message: format!("cannot reach the API server at {url}: {text}{hint}"),
    }
}
