//! Registry authentication: the `WWW-Authenticate` challenge, HTTP basic, and the bearer
//! token flow (Docker Hub, Harbor, Quay, GHCR, SWR), with tokens cached per registry,
//! credentials and [`Scopes`]. Credentials are sent only to the registry and its token
//! realm.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::Access;
use super::url::percent_encode;
use crate::credentials::CredentialKey;
use crate::credentials::Credentials;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Body, Exchange, Method, RequestStats, Response, Transport, bounds};

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

/// Access to one repository that a token is asked for (`repository:<name>:pull,push`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryScope {
    pub repository: String,
    pub access: Access,
}

impl fmt::Display for RepositoryScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "pull,push,delete",
            Access::Catalog => return f.write_str("registry:catalog:*"),
        };
        write!(f, "repository:{}:{actions}", self.repository)
    }
}

/// The scopes of one token, in the order asked: the repository worked on first (with
/// push, when pushing: some registries read only the first scope), then any it mounts
/// from. Displays space-separated, as a token request's form value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scopes(Vec<RepositoryScope>);

impl Scopes {
    pub fn new(first: RepositoryScope) -> Self {
        Scopes(vec![first])
    }

    /// Pull access to `repository` as well (the source of a cross-repository mount).
    pub fn and_pull(mut self, repository: &str) -> Self {
        self.0.push(RepositoryScope {
            repository: repository.to_string(),
            access: Access::Pull,
        });
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &RepositoryScope> {
        self.0.iter()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
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
    pub scopes: &'a Scopes,
    pub credentials: &'a Credentials,
    /// Tells credentials apart in the cache (see `credentials::Resolved::key`).
    pub credentials_key: &'a CredentialKey,
    /// The token service is reached without certificate verification.
    pub insecure: bool,
}

/// A token's place in the cache: a registry, the credentials, the scopes.
type TokenKey = (String, CredentialKey, Scopes);

/// Bearer tokens by (registry, credentials key, scopes). Each key has its own slot, locked
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
        let key = cache_key(request.registry, request.credentials_key, request.scopes);
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
    pub fn invalidate(&self, registry: &str, credentials_key: &CredentialKey, scopes: &Scopes) {
        let key = cache_key(registry, credentials_key, scopes);
        let slot = self.slots.lock().unwrap().get(&key).cloned();
        if let Some(slot) = slot {
            *slot.lock().unwrap() = None;
        }
    }
}

fn cache_key(registry: &str, credentials_key: &CredentialKey, scopes: &Scopes) -> TokenKey {
    (
        registry.to_string(),
        credentials_key.clone(),
        scopes.clone(),
    )
}

fn fetch_token(
    transport: &Transport,
    request: &TokenRequest<'_>,
    stats: &RequestStats,
) -> Result<Token> {
    let registry = request.registry;
    let response = send_token_request(transport, request, stats)
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
    read_token(response, registry)
}

/// One token request: a `GET` of the realm with the scopes in its query, or — for an
/// identity token, an OAuth2 refresh token — a `POST` of a form, as Docker does.
fn send_token_request(
    transport: &Transport,
    request: &TokenRequest<'_>,
    stats: &RequestStats,
) -> Result<Response> {
    let exchange = Exchange::whole(request.insecure);
    if let Credentials::IdentityToken(token) = request.credentials {
        let form = refresh_form(token.expose(), request.service, request.scopes);
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        )];
        let body = Body::Bytes(form.as_bytes());
        return transport.send(Method::Post, request.realm, &headers, body, exchange, stats);
    }
    let mut headers = Vec::new();
    if let Some(basic) = basic_header(request.credentials) {
        headers.push(("authorization", basic));
    }
    let url = token_url(request);
    transport.send(Method::Get, &url, &headers, Body::Empty, exchange, stats)
}

/// The realm with `service`, one `scope` per scope, and the `account` of basic
/// credentials in its query.
fn token_url(request: &TokenRequest<'_>) -> String {
    let mut url = request.realm.to_string();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    let mut add = |name: &str, value: &str| {
        url.push(separator);
        url.push_str(name);
        url.push('=');
        url.push_str(&percent_encode(value));
        separator = '&';
    };
    if let Some(service) = request.service {
        add("service", service);
    }
    for scope in request.scopes.iter() {
        add("scope", &scope.to_string());
    }
    if let Credentials::Basic { username, .. } = request.credentials {
        add("account", username.expose());
    }
    url
}

/// The OAuth2 form exchanging a refresh token; the scopes go space-separated in one value.
fn refresh_form(refresh_token: &str, service: Option<&str>, scopes: &Scopes) -> String {
    let mut form = format!(
        "grant_type=refresh_token&client_id=image-migrator&refresh_token={}",
        percent_encode(refresh_token)
    );
    if let Some(service) = service {
        form.push_str(&format!("&service={}", percent_encode(service)));
    }
    form.push_str(&format!("&scope={}", percent_encode(&scopes.to_string())));
    form
}

/// The token of a `200` answer (`token`, else `access_token`) and when to renew it.
fn read_token(response: Response, registry: &str) -> Result<Token> {
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
    fn scopes_read_as_the_token_service_expects() {
        let push = RepositoryScope {
            repository: "team/app".into(),
            access: Access::Push,
        };
        assert_eq!(push.to_string(), "repository:team/app:pull,push");
        let scopes = Scopes::new(push.clone()).and_pull("team/base");
        assert_eq!(
            scopes.to_string(),
            "repository:team/app:pull,push repository:team/base:pull"
        );
        let each: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        assert_eq!(
            each,
            ["repository:team/app:pull,push", "repository:team/base:pull"]
        );
        // Push scope first: the order is part of what is asked, and of the cache key.
        let pull_first = Scopes::new(RepositoryScope {
            repository: "team/base".into(),
            access: Access::Pull,
        });
        assert_ne!(scopes, pull_first);
        assert_eq!(Scopes::new(push.clone()), Scopes::new(push));
    }

    #[test]
    fn each_scope_is_a_query_value_of_its_own_and_one_form_value() {
        let scopes = Scopes::new(RepositoryScope {
            repository: "a/b".into(),
            access: Access::Push,
        })
        .and_pull("c");
        let credentials = Credentials::Basic {
            username: crate::credentials::Secret::new("robot$ci".to_string()),
            password: crate::credentials::Secret::new("x".to_string()),
        };
        let anonymous = CredentialKey::Anonymous;
        let request = TokenRequest {
            registry: "r.io",
            realm: "https://auth.r.io/token?x=1",
            service: Some("r.io"),
            scopes: &scopes,
            credentials: &credentials,
            credentials_key: &anonymous,
            insecure: false,
        };
        assert_eq!(
            token_url(&request),
            "https://auth.r.io/token?x=1&service=r.io\
             &scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository%3Ac%3Apull\
             &account=robot%24ci"
        );
        assert_eq!(
            refresh_form("t/1", None, &scopes),
            "grant_type=refresh_token&client_id=image-migrator&refresh_token=t%2F1\
             &scope=repository%3Aa%2Fb%3Apull%2Cpush%20repository%3Ac%3Apull"
        );
    }
}
