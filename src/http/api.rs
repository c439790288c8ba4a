//! A plain client for an HTTP API that is not a registry (the Kubernetes API server), so
//! that its user never sees ureq: the shared agent settings, TLS from the API's own trust
//! material (a CA bundle replaces the system roots, as kubectl does), an optional client
//! certificate, the environment's proxy, one deadline per call, `GET` only.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use ureq::Agent;

use super::agent::{agent_config, api_connector};
use super::proxy::ProxyPolicy;
use super::resolver::KeptResolver;
use super::tls::{self, ClientIdentity, Roots};

/// Which server certificates the client accepts.
pub enum ApiTrust<'a> {
    /// The system's roots.
    System,
    /// Only the CAs of this PEM bundle.
    Pem(&'a [u8]),
    /// Any: no verification.
    Unverified,
}

/// An agent for one API server.
pub struct ApiClient {
    agent: Agent,
}

/// An answer: its status, and its body unread.
pub struct ApiResponse {
    pub status: u16,
    body: ureq::Body,
}

impl ApiResponse {
    pub fn into_reader(self) -> impl Read {
        self.body.into_reader()
    }
}

/// Why no answer came: the transport's words, and whether TLS verification failed.
#[derive(Debug)]
pub struct ApiError {
    message: String,
    tls_failure: bool,
}

impl ApiError {
    /// The server's certificate could not be verified (or TLS failed otherwise).
    pub fn is_tls_failure(&self) -> bool {
        self.tls_failure
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiClient {
    /// A client for `server` (which chooses the proxy from the environment). `identity` is
    /// a client certificate and its key, PEM. An error is a problem of that TLS material or
    /// of the proxy settings.
    pub fn new(
        server: &str,
        trust: ApiTrust<'_>,
        identity: Option<(&[u8], &[u8])>,
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> Result<Self, String> {
        let roots = match trust {
            ApiTrust::System => Roots::System(Vec::new()),
            ApiTrust::Pem(pem) => Roots::Only(
                tls::pem_certificates(pem).map_err(|e| format!("certificate authority: {e}"))?,
            ),
            ApiTrust::Unverified => Roots::Unverified,
        };
        let identity = match identity {
            Some((cert_pem, key_pem)) => Some(ClientIdentity::from_pem(cert_pem, key_pem)?),
            None => None,
        };
        let proxy = ProxyPolicy::from_env(&|name| std::env::var(name).ok())?.for_url(server);
        let config = agent_config()
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(call_timeout))
            .proxy(proxy)
            .build();
        let agent = Agent::with_parts(
            config,
            api_connector(roots, identity),
            KeptResolver::default(),
        );
        Ok(ApiClient { agent })
    }

    /// `GET url?query` with `headers`; any status is an answer.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Result<ApiResponse, ApiError> {
        let mut request = self.agent.get(url).query_pairs(query.iter().copied());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().map_err(|error| ApiError {
            tls_failure: tls::is_tls_failure(&error),
            message: error.to_string(),
        })?;
        Ok(ApiResponse {
            status: response.status().as_u16(),
            body: response.into_body(),
        })
    }
}
