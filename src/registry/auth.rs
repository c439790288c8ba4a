//! Registry authentication: the `WWW-Authenticate` challenge, HTTP basic, and the bearer
//! token flow (Docker Hub, Harbor, Quay, GHCR, SWR), with tokens cached per registry,
//! credentials and scope. Credentials are sent only to the registry and its token realm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::Method;
use base64::Engine as _;

use crate::config::Credentials;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Body, Exchange, RequestStats, Transport, bounds};

/// How a registry wants to be authenticated, learnt from `GET /v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header; `None` when no supported scheme is offered.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let param = |c: &http_auth::ChallengeRef<'_>, name: &str| {
        c.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    if let Some(bearer) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        return Some(Challenge::Bearer {
            realm: param(bearer, "realm")?,
            service: param(bearer, "service"),
        });
    }
    challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

/// `Authorization: Basic …` for a username and password.
pub fn basic_header(credentials: &Credentials) -> Option<String> {
    let Credentials::Basic {
        username: user,
        password,
    } = credentials
    else {
        return None;
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        user.expose(),
        password.expose()
    ));
    Some(format!("Basic {encoded}"))
}

#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// What a token is asked for: which registry, where its token service is, for which
/// scope, with which credentials.
pub struct TokenRequest<'a> {
    pub registry: &'a str,
    pub realm: &'a str,
    pub service: Option<&'a str>,
    /// Space-separated scopes, push scope first.
    pub scope: &'a str,
    pub credentials: &'a Credentials,
    /// Tells credentials apart in the cache (see `credentials::Resolved::key`).
    pub credentials_key: &'a str,
    /// The token service is reached without certificate verification.
    pub insecure: bool,
}

type TokenKey = (String, String, String);

/// Bearer tokens by (registry, credentials key, scope). Each key has its own slot, locked
/// while its token is fetched, so parallel jobs that need the same token wait for one
/// request instead of each sending their own.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Arc<Mutex<Option<Token>>>>>,
}

impl TokenCache {
    /// A valid token for the request's scope, fetched from the realm when none is cached.
    pub fn token(
        &self,
        transport: &Transport,
        request: &TokenRequest<'_>,
        stats: &RequestStats,
    ) -> Result<String> {
        let key = cache_key(request.registry, request.credentials_key, request.scope);
        let slot = self.slots.lock().unwrap().entry(key).or_default().clone();
        let mut slot = slot.lock().unwrap();
        if let Some(token) = slot.as_ref()
            && token.expires > Instant::now()
        {
            return Ok(token.value.clone());
        }
        // One attempt: every request that needs a token runs inside the retry loop of the
        // operation the report counts, so retrying here too would multiply the requests.
        let token = fetch_token(transport, request, stats)?;
        *slot = Some(token.clone());
        Ok(token.value)
    }

    /// Forgets a token the registry refused.
    pub fn invalidate(&self, registry: &str, credentials_key: &str, scope: &str) {
        let key = cache_key(registry, credentials_key, scope);
        let slot = self.slots.lock().unwrap().get(&key).cloned();
        if let Some(slot) = slot {
            *slot.lock().unwrap() = None;
        }
    }
}

fn cache_key(registry: &str, credentials_key: &str, scope: &str) -> TokenKey {
    (
        registry.to_string(),
        credentials_key.to_string(),
        scope.to_string(),
    )
}

fn fetch_token(
    transport: &Transport,
    request: &TokenRequest<'_>,
    stats: &RequestStats,
) -> Result<Token> {
    let TokenRequest {
        registry,
        realm,
        service,
        scope,
        credentials,
        insecure,
        ..
    } = *request;
    let mut url = realm.to_string();
    let mut separator = if realm.contains('?') { '&' } else { '?' };
    let mut add = |name: &str, value: &str| {
        url.push(separator);
        url.push_str(name);
        url.push('=');
        url.push_str(&percent_encode(value));
        separator = '&';
    };
    if let Some(service) = service {
        add("service", service);
    }
    for part in scope.split(' ').filter(|s| !s.is_empty()) {
        add("scope", part);
    }
    if let Credentials::Basic { username, .. } = credentials {
        add("account", username.expose());
    }
    let mut headers = Vec::new();
    if let Some(basic) = basic_header(credentials) {
        headers.push(("authorization", basic));
    }
    let response = match credentials {
        // An identity token is an OAuth2 refresh token: exchanged with a POST, as Docker does.
        Credentials::IdentityToken(token) => {
            let mut form = format!(
                "grant_type=refresh_token&client_id=image-migrator&refresh_token={}",
                percent_encode(token.expose())
            );
            if let Some(service) = service {
                form.push_str(&format!("&service={}", percent_encode(service)));
            }
            let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
            if !scopes.is_empty() {
                form.push_str(&format!("&scope={}", percent_encode(&scopes.join(" "))));
            }
            let headers = [(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )];
            transport.send(
                Method::Post,
                realm,
                &headers,
                Body::Bytes(form.as_bytes()),
                Exchange::whole(insecure),
                stats,
            )
        }
        _ => transport.send(
            Method::Get,
            &url,
            &headers,
            Body::Empty,
            Exchange::whole(insecure),
            stats,
        ),
    }
    .map_err(|e| e.context(format!("token request for {registry}")))?;
    if response.status != 200 {
        let status = response.status;
        let mut error = response.describe_error(&format!("token request for {registry}"));
        if status == 401 || status == 403 {
            error = Error {
                kind: ErrorKind::Auth,
                message: crate::hints::authentication_failed(registry, &error.message),
                ..error
            };
        }
        return Err(error);
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: String,
        #[serde(default)]
        access_token: String,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let body = response.read_bounded(
        bounds::MAX_TOKEN_BYTES,
        &format!("token response from {registry}"),
    )?;
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| Error::protocol(format!("token response from {registry}: {e}")))?;
    let value = if parsed.token.is_empty() {
        parsed.access_token
    } else {
        parsed.token
    };
    if value.is_empty() {
        return Err(Error::protocol(format!(
            "token response from {registry} carries no token"
        )));
    }
    // The spec's minimum lifetime is 60 s; renew a little early.
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).max(20));
    Ok(Token {
        value,
        expires: Instant::now() + lifetime - Duration::from_secs(10),
    })
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn percent_encoding_of_scopes() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
