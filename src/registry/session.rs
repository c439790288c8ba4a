//! How one request to a registry is made: authentication (challenge, basic, bearer
//! token for the repository's scope, renewal after a 401), redirects followed without
//! credentials off the registry's origin, the per-registry request cap, and the choice
//! of HTTPS or plain HTTP for `insecure` registries. A token realm over plain HTTP for an
//! HTTPS registry is refused (credentials would travel in clear), and redirects stay
//! on http(s) for at most `bounds::MAX_REDIRECTS` hops.

use super::auth::{
    Challenge, RepositoryScope, Scopes, TokenRequest, basic_header, parse_challenge,
};
use super::url::{resolve_url, same_origin};
use super::{Repo, paths};
use crate::credentials::{CredentialKey, Resolved};
use crate::credentials::{CredentialSource, Credentials};
use crate::error::{Error, ErrorCode, ErrorKind, Result, StatusClass};
use crate::http::bounds::{self, MAX_REDIRECTS};
use crate::http::{Body, Exchange, Method, RequestStats, Response, redact_url};
use crate::kind::Kind;

/// What a request is, besides its body.
pub(super) struct Call<'a> {
    pub method: Method,
    pub path_or_url: &'a str,
    pub headers: &'a [(&'a str, String)],
    /// A cross-repository mount also needs pull access to this repository.
    pub mount_from: Option<&'a str>,
    /// The answer's body is a blob: the request deadline stops at its headers.
    pub streamed: bool,
    /// The rest of a blob whose transfer is under way (a resumed download): not held to
    /// the registry's cap on requests, since the transfer's upload may hold a slot of it
    /// (waiting for one could wait for itself).
    pub continuation: bool,
}

impl Repo<'_> {
    /// The registry's ping (`GET /v2/`), unless its answer is already known: how it
    /// authenticates, and a connection (with its TLS session) ready for what follows.
    pub fn ping(&self) -> Result<()> {
        self.challenge(&RequestStats::default()).map(|_| ())
    }

    pub(super) fn retrying_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        stats: &RequestStats,
    ) -> Result<Response> {
        self.client.transport.retrying(stats, || {
            let response = self.request(method, path, headers, Body::Empty, stats)?;
            if StatusClass::of(response.status) == StatusClass::Transient {
                return Err(response.describe_error(&format!("{method} {}", self.display())));
            }
            Ok(response)
        })
    }

    pub(super) fn request(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        stats: &RequestStats,
    ) -> Result<Response> {
        let call = Call {
            method,
            path_or_url,
            headers,
            mount_from: None,
            streamed: false,
            continuation: false,
        };
        self.request_scoped(call, body, stats)
    }

    /// One request with authentication: on a 401 the token is renewed and the request
    /// sent once more (bodies that are streams cannot be resent and fail instead).
    pub(super) fn request_scoped(
        &self,
        call: Call<'_>,
        mut body: Body<'_>,
        stats: &RequestStats,
    ) -> Result<Response> {
        let Call {
            method,
            path_or_url,
            headers,
            mount_from,
            streamed,
            continuation,
        } = call;
        let base = self.base()?;
        let url = resolve_url(&base, path_or_url);
        let scope = self.scope(mount_from);
        let resendable = !matches!(body, Body::Stream(..));
        let exchange = Exchange {
            insecure: self.endpoint.insecure,
            streamed,
        };
        for attempt in 0..2 {
            let resolved = self.credentials()?;
            let authorization = self.authorization(&resolved, &scope, stats)?;
            let mut all_headers: Vec<(&str, String)> = headers.to_vec();
            if let Some(value) = authorization.clone() {
                all_headers.push(("authorization", value));
            }
            let this_body = match &mut body {
                Body::Empty => Body::Empty,
                Body::Bytes(bytes) => Body::Bytes(bytes),
                Body::Stream(reader, len) => Body::Stream(&mut **reader, *len),
            };
            let response = {
                let _permit = (!continuation).then(|| self.endpoint.permits.acquire());
                self.client.transport.send(
                    method,
                    &url,
                    &all_headers,
                    this_body,
                    exchange,
                    stats,
                )?
            };
            if response.status == 401 && attempt == 0 && resendable {
                self.refresh_auth(&response, &resolved, &scope);
                response.discard();
                continue;
            }
            if response.status == 401
                && !resendable
                && authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer "))
            {
                // A bearer token can expire while a stream is under way; the stream cannot
                // be resent here, so forget the token and let the caller's retry loop
                // restart the whole transfer with a fresh one.
                self.refresh_auth(&response, &resolved, &scope);
                let error = response.describe_error(&format!(
                    "{}: bearer token refused (expired?)",
                    self.display()
                ));
                return Err(Error {
                    retryable: true,
                    ..error
                });
            }
            if response.status == 401 {
                return Err(self.auth_error(response, &resolved));
            }
            if matches!(method, Method::Get | Method::Head) && is_redirect(response.status) {
                let call = (method, headers, continuation);
                return self.follow_redirects(call, &url, response, exchange, stats);
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second pass")
    }

    fn auth_error(&self, response: Response, resolved: &Resolved) -> Error {
        let registry = self.endpoint.registry.clone();
        let error = response.describe_error(&self.display());
        // Harbor refuses a push into a project that does not exist with a 401.
        let project = self.name().split('/').next().unwrap_or_default();
        if self.access == super::Access::Push
            && error
                .message
                .contains(&format!("project {project} not found"))
        {
            let hint = crate::hints::missing_container(&format!("Harbor project \"{project}\""));
            return Error {
                kind: ErrorKind::NotFound,
                message: format!("{} ({hint})", error.message),
                ..error
            };
        }
        let hint = match (&resolved.source, &resolved.key) {
            (_, CredentialKey::AuthJson(entry)) => {
                format!("the credentials of auth.json entry {entry:?} were refused")
            }
            (CredentialSource::Anonymous, _) => "no credentials in auth.json (or the Docker \
                 config, credential helpers, containers auth file, DOCKER_AUTH_CONFIG) match \
                 this registry/namespace"
                .to_string(),
            (source, _) => format!("the credentials from {source} were refused"),
        };
        Error {
            kind: ErrorKind::Auth,
            message: format!(
                "{registry}: authentication required: {hint} ({})",
                error.message
            ),
            ..error
        }
    }

    /// A push refused because the target's container is missing gets a hint naming it and
    /// `--create-targets`, by the registry's typed error code: ECR answers `NAME_UNKNOWN`
    /// for a repository not created, SWR `DENIED` for an organization that does not exist
    /// (and for one the user may not push to, so the hint says "may").
    pub(super) fn missing_container(&self, error: Error) -> Error {
        if self.access != super::Access::Push {
            return error;
        }
        let hint = match self.client.credentials.kind(&self.endpoint.registry) {
            Some(Kind::Ecr) if error.has_code(&ErrorCode::NameUnknown) => {
                let what = format!("ECR repository \"{}\"", self.name());
                crate::hints::missing_container(&what)
            }
            Some(Kind::Swr) if error.has_code(&ErrorCode::Denied) => {
                let organization = self.name().split('/').next().unwrap_or_default();
                let what = format!("SWR organization \"{organization}\"");
                crate::hints::maybe_missing_container(&what)
            }
            _ => return error,
        };
        Error {
            message: format!("{} ({hint})", error.message),
            ..error
        }
    }

    /// Follows GET/HEAD redirects, to http(s) URLs only and at most [`MAX_REDIRECTS`]
    /// hops; `Authorization` only goes to the registry's origin.
    fn follow_redirects(
        &self,
        (method, headers, continuation): (Method, &[(&str, String)], bool),
        from_url: &str,
        mut response: Response,
        exchange: Exchange,
        stats: &RequestStats,
    ) -> Result<Response> {
        let base = self.base()?;
        let mut url = from_url.to_string();
        for _ in 0..MAX_REDIRECTS {
            let location = response.header("location").ok_or_else(|| {
                Error::protocol(format!(
                    "redirect from {} without Location",
                    redact_url(&url)
                ))
            })?;
            if has_other_scheme(location) {
                return Err(Error::protocol(format!(
                    "redirect from {} to {}: only http and https are followed",
                    redact_url(&url),
                    bounds::escaped(redact_url(location), 200)
                )));
            }
            url = resolve_url(&url, location);
            response.discard();
            let mut all_headers: Vec<(&str, String)> = headers.to_vec();
            if same_origin(&url, &base)
                && let Some(value) =
                    self.authorization(&self.credentials()?, &self.scope(None), stats)?
            {
                all_headers.push(("authorization", value));
            }
            let _permit = (!continuation).then(|| self.endpoint.permits.acquire());
            response = self.client.transport.send(
                method,
                &url,
                &all_headers,
                Body::Empty,
                exchange,
                stats,
            )?;
            if !is_redirect(response.status) {
                return Ok(response);
            }
        }
        Err(Error::protocol(format!(
            "more than {MAX_REDIRECTS} redirects from {} (a redirect loop?)",
            redact_url(from_url)
        )))
    }

    /// The token scopes of a request: this repository with its access, and pull access
    /// to the repository a blob is mounted from.
    fn scope(&self, mount_from: Option<&str>) -> Scopes {
        let scopes = Scopes::new(RepositoryScope {
            repository: self.name().to_string(),
            access: self.access,
        });
        match mount_from {
            Some(from) => scopes.and_pull(from),
            None => scopes,
        }
    }

    /// This repository's credentials (a credential helper runs on first use).
    fn credentials(&self) -> Result<Resolved> {
        self.client
            .credentials
            .get(&self.endpoint.registry, self.name(), self.client)
    }

    /// The `Authorization` value for this repository and scope, if any is needed.
    fn authorization(
        &self,
        resolved: &Resolved,
        scopes: &Scopes,
        stats: &RequestStats,
    ) -> Result<Option<String>> {
        if let Credentials::RegistryToken(token) = &resolved.credentials {
            return Ok(Some(format!("Bearer {}", token.expose())));
        }
        let challenge = self.challenge(stats)?;
        match challenge {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => Ok(basic_header(&resolved.credentials)),
            Challenge::Bearer { realm, service } => {
                self.check_realm(&realm)?;
                let request = TokenRequest {
                    registry: &self.endpoint.registry,
                    realm: &realm,
                    service: service.as_deref(),
                    scopes,
                    credentials: &resolved.credentials,
                    credentials_key: &resolved.key,
                    insecure: self.endpoint.insecure,
                };
                let token = self
                    .client
                    .tokens
                    .token(&self.client.transport, &request, stats)?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// A token realm must be http(s), and HTTPS for an HTTPS registry unless the registry
    /// is `insecure`: credentials go to the realm, and must not travel in clear.
    fn check_realm(&self, realm: &str) -> Result<()> {
        let lower = realm.to_ascii_lowercase();
        let shown = bounds::escaped(redact_url(realm), 200);
        if !lower.starts_with("https://") && !lower.starts_with("http://") {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "{}: the token realm {shown} is not an http(s) URL; refused",
                    self.endpoint.registry
                ),
            ));
        }
        let registry_is_https = self.base()?.starts_with("https://");
        if lower.starts_with("http://") && registry_is_https && !self.endpoint.insecure {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "{}: the registry is HTTPS but its token realm {shown} is plain HTTP: \
                     credentials would travel in clear, so none were sent (mark the registry \
                     \"insecure\": true in auth.json only if that is intended)",
                    self.endpoint.registry
                ),
            ));
        }
        Ok(())
    }

    /// After a 401: forget the token (and a helper's answer, so the helper is asked once
    /// more), and learn the challenge if it changed.
    fn refresh_auth(&self, response: &Response, resolved: &Resolved, scopes: &Scopes) {
        self.client
            .tokens
            .invalidate(&self.endpoint.registry, &resolved.key, scopes);
        self.client
            .credentials
            .refused(resolved, &self.endpoint.registry, self.name());
        if let Some(challenge) = response
            .header("www-authenticate")
            .and_then(parse_challenge)
        {
            *self.endpoint.challenge.lock().unwrap() = Some(challenge);
        }
    }

    fn challenge(&self, stats: &RequestStats) -> Result<Challenge> {
        // Held across the ping: the first requests of a run start in parallel, and all of
        // them need the answer, so one pings and the others wait for it.
        let mut known = self.endpoint.challenge.lock().unwrap();
        if let Some(challenge) = known.clone() {
            return Ok(challenge);
        }
        let base = self.base()?;
        // One attempt: the ping runs inside the retry loop of the operation that needs it.
        let response = {
            let _permit = self.endpoint.permits.acquire();
            self.client.transport.send(
                Method::Get,
                &format!("{base}{}", paths::ROOT),
                &[],
                Body::Empty,
                Exchange::whole(self.endpoint.insecure),
                stats,
            )?
        };
        if StatusClass::of(response.status) == StatusClass::Transient {
            return Err(response.describe_error(&format!("pinging {}", self.endpoint.registry)));
        }
        let challenge = match response.status {
            200..=299 => Challenge::Anonymous,
            401 => response
                .header("www-authenticate")
                .and_then(parse_challenge)
                .ok_or_else(|| {
                    Error::protocol(format!(
                        "{}: 401 without a supported WWW-Authenticate challenge",
                        self.endpoint.registry
                    ))
                })?,
            _ => {
                return Err(response.describe_error(&format!(
                    "{} does not answer as a registry (GET /v2/)",
                    self.endpoint.registry
                )));
            }
        };
        response.discard();
        if let Challenge::Bearer { realm, .. } = &challenge {
            // The token service goes the way the registry goes (its own proxy choice).
            let authority = |url: &str| {
                url.split_once("://")
                    .map_or(url, |(_, rest)| rest)
                    .split(['/', '?'])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            };
            self.client
                .transport
                .proxies()
                .follow(&authority(realm), &authority(&base));
        }
        *known = Some(challenge.clone());
        Ok(challenge)
    }

    /// The API base URL. Docker Hub's API is at registry-1.docker.io. An `insecure`
    /// registry is tried over HTTPS without verification first, then plain HTTP, as
    /// Docker does.
    pub(super) fn base(&self) -> Result<String> {
        let mut base = self.endpoint.base.lock().unwrap();
        if let Some(base) = base.as_ref() {
            return Ok(base.clone());
        }
        let host = super::api_host(&self.endpoint.registry);
        let chosen = if self.endpoint.insecure {
            let https = format!("https://{host}");
            let probe = self.client.transport.send(
                Method::Get,
                &format!("{https}{}", paths::ROOT),
                &[],
                Body::Empty,
                Exchange::whole(true),
                &RequestStats::default(),
            );
            match probe {
                Ok(response) => {
                    response.discard();
                    https
                }
                Err(_) => format!("http://{host}"),
            }
        } else {
            format!("https://{host}")
        };
        *base = Some(chosen.clone());
        Ok(chosen)
    }
}

/// Whether a `Location` names a scheme other than http(s) (`ftp:`, `file:`, `data:`…);
/// a path or an http(s) URL does not.
fn has_other_scheme(location: &str) -> bool {
    let Some((scheme, _)) = location.split_once(':') else {
        return false;
    };
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    is_scheme && !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https")
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_schemes() {
        for followed in ["/v2/x", "x?y=a:b", "https://s3/x", "HTTP://h/x", "//h/x"] {
            assert!(!has_other_scheme(followed), "{followed}");
        }
        for refused in [
            "ftp://h/x",
            "file:///etc/passwd",
            "data:text/plain,x",
            "gopher:x",
        ] {
            assert!(has_other_scheme(refused), "{refused}");
        }
    }
}
