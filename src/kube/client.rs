//! A small read-only client for the Kubernetes API server: TLS as the kubeconfig says
//! (CA, client certificate, or no verification), bearer/basic credentials, and paged list
//! calls. It only GETs JSON; it knows nothing about images.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

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
    agent: ureq::Agent,
    server: String,
    authorization: Option<String>,
}

impl Client {
    /// Builds the client; an error is a problem of the kubeconfig's TLS material.
    pub fn new(access: &ClusterAccess) -> Result<Client, String> {
        let kubeconfig_error = |message: String| message;
        let mut tls = TlsConfig::builder();
        if access.insecure {
            tls = tls.disable_verification(true);
        } else if let Some(pem) = &access.ca_pem {
            let certs = pem_certificates(pem)
                .map_err(|e| kubeconfig_error(format!("certificate authority: {e}")))?;
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if let Some(identity) = &access.identity {
            let chain = pem_certificates(&identity.cert_pem)
                .map_err(|e| kubeconfig_error(format!("client certificate: {e}")))?;
            let key = PrivateKey::from_pem(&identity.key_pem)
                .map_err(|e| kubeconfig_error(format!("client key: {e}")))?;
            check_client_identity(&chain, &identity.key_pem).map_err(kubeconfig_error)?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(concat!("image-migrator/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let authorization = match &access.credentials {
            Credentials::None => None,
            Credentials::Bearer(token) => Some(format!("Bearer {token}")),
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        };
        Ok(Client {
            agent,
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
        let mut request = self
            .agent
            .get(&url)
            .header("Accept", "application/json")
            .query_pairs(query.iter().copied());
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let response = request.call().map_err(|e| connect_error(&url, e))?;
        let status = response.status().as_u16();
        let reader = response.into_body().into_reader();
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

fn connect_error(url: &str, error: ureq::Error) -> KubeError {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    let hint = if lower.contains("certificate") || lower.contains("tls") {
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

/// ureq panics when rustls rejects a client certificate/key pair (mismatched or unsupported
/// key), so the same check is made here first, with a message instead.
fn check_client_identity(chain: &[Certificate<'static>], key_pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("client key: invalid PEM: {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(certs, key)
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "the client key does not belong to the client certificate".to_string()
            }
            e => format!("client certificate or key not usable: {e}"),
        })
}

fn pem_certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("invalid PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}
