//! The registries' management APIs beside the distribution API: what the registry protocol
//! cannot do — list the repositories of a Harbor project, a Docker Hub or Quay namespace
//! (distribution's `_catalog` is the fallback), check and create the container a push
//! needs (a Harbor project, an SWR organization, an ECR repository). Each vendor has its own file; this one settles a registry's
//! kind (its host, auth.json's `kind`, else Harbor's ping) and makes the requests, through
//! `http` like every other request, with errors that name the API asked and its answer.
//! Never prints.

mod ecr;
pub mod harbor;
mod hub;
pub mod prepare;
mod quay;
pub mod rules;
pub mod swr;

use crate::config::{AuthConfig, Credentials};
use crate::error::{Error, ErrorKind, Result, StatusClass};
use crate::http::{Body, Exchange, Method, RequestStats, Response, bounds};
use crate::kind::{self, Kind};
use crate::registry::{Client, api_host};

/// Largest API answer read into memory (a page of a listing).
const MAX_API_BODY: u64 = bounds::MAX_TAG_PAGE_BYTES;

/// Repositories listed at most, across pages (as many as the tags of one repository).
const MAX_REPOSITORIES: usize = bounds::MAX_TAGS_PER_REPOSITORY;

/// What is known of a registry's kind without asking it: for `validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// `None`: Harbor or distribution, told apart by Harbor's ping at run time.
    pub kind: Option<Kind>,
    pub region: Option<String>,
    /// The management API's base URL; `None` when it depends on the kind.
    pub api: Option<String>,
    /// Where the kind comes from: `host`, `auth.json`, or `ping` (asked at run time).
    pub from: &'static str,
}

/// A registry's kind, region and API as far as its host and auth.json say.
pub fn describe(auth: &AuthConfig, registry: &str) -> Described {
    let fields = auth.vendor(registry);
    let host = kind::from_host(registry);
    let (kind, from) = match (fields.kind, &host) {
        (Some(kind), _) => (Some(kind), "auth.json"),
        (None, Some(host)) => (Some(host.kind), "host"),
        (None, None) => (None, "ping"),
    };
    let region = fields
        .region
        .clone()
        .or_else(|| host.as_ref().and_then(|h| h.region.clone()));
    let suffix = host.as_ref().map_or("", |h| h.suffix);
    let scheme = if auth.is_insecure(registry) {
        "http(s)"
    } else {
        "https"
    };
    let api = fields.api.clone().or_else(|| {
        let registry_base = format!("{scheme}://{}", api_host(registry));
        kind.and_then(|kind| kind::default_api(kind, region.as_deref(), suffix, &registry_base))
    });
    Described {
        kind,
        region,
        api,
        from,
    }
}

/// A registry's management API, its kind settled.
pub struct Api<'c> {
    client: &'c Client,
    pub registry: String,
    pub kind: Kind,
    pub region: Option<String>,
    /// Base URL, without a trailing `/`.
    pub base: String,
    insecure: bool,
}

impl<'c> Api<'c> {
    /// The API of `registry`: its kind from auth.json or its host, else Harbor when
    /// `GET /api/v2.0/ping` answers `Pong`, else distribution.
    pub fn of(client: &'c Client, registry: &str, stats: &RequestStats) -> Result<Api<'c>> {
        let auth = client.credentials().auth();
        let described = describe(auth, registry);
        let insecure = auth.is_insecure(registry);
        let mut api = Api {
            client,
            registry: registry.to_string(),
            kind: described.kind.unwrap_or(Kind::Distribution),
            region: described.region,
            base: String::new(),
            insecure,
        };
        api.base = match described.api {
            Some(base) if auth.vendor(registry).api.is_some() => base,
            _ => match api.kind {
                Kind::Harbor | Kind::Distribution => client.registry_base(registry)?,
                _ => described.api.unwrap_or_default(),
            },
        };
        if api.base.is_empty() {
            return Err(Error::protocol(format!(
                "{registry}: the {} API needs a region: add \"region\" to its auth.json entry",
                api.kind
            )));
        }
        if described.kind.is_none() && api.is_harbor(stats)? {
            api.kind = Kind::Harbor;
        }
        Ok(api)
    }

    /// Harbor answers `GET /api/v2.0/ping` with `Pong` (anonymously); anything else is not
    /// Harbor. Only a transport failure is an error.
    fn is_harbor(&self, stats: &RequestStats) -> Result<bool> {
        let url = format!("{}/api/v2.0/ping", self.base);
        let response = self.client.transport().retrying(stats, || {
            let response = self.send(Method::Get, &url, &[], Body::Empty, stats)?;
            if StatusClass::of(response.status) == StatusClass::Transient {
                return Err(response.describe_error(&format!("GET {url}")));
            }
            Ok(response)
        })?;
        if response.status != 200 {
            return Ok(false);
        }
        let body = response
            .read_bounded(1024, "Harbor's ping")
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        Ok(text.trim().trim_matches('"') == "Pong")
    }

    /// One attempt.
    fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        stats: &RequestStats,
    ) -> Result<Response> {
        self.client.transport().send(
            method,
            url,
            headers,
            body,
            Exchange::whole(self.insecure),
            stats,
        )
    }

    /// A request, retried while the answer is transient; the answer's status and body (at
    /// most [`MAX_API_BODY`]), and its headers.
    pub(crate) fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
        stats: &RequestStats,
    ) -> Result<Answer> {
        let what = format!("{method} {}", crate::http::redact_url(url));
        self.client.transport().retrying(stats, || {
            let request_body = if body.is_empty() && method == Method::Get {
                Body::Empty
            } else {
                Body::Bytes(body)
            };
            let response = self.send(method, url, headers, request_body, stats)?;
            let status = response.status;
            let response_headers = response.headers();
            let retry_after = response.retry_after();
            let bytes = response.read_bounded(MAX_API_BODY, &format!("the answer to {what}"))?;
            let answer = Answer {
                what: what.clone(),
                status,
                headers: response_headers,
                body: bytes,
            };
            if StatusClass::of(status) == StatusClass::Transient {
                return Err(answer.error("").with_retry_after(retry_after));
            }
            Ok(answer)
        })
    }

    /// The credentials the registry gets for `repository` (auth.json, Docker config,
    /// helpers), as `Authorization: Basic`; `None` when anonymous.
    pub(crate) fn basic_authorization(&self, repository: &str) -> Result<Option<String>> {
        let resolved = self
            .client
            .credentials()
            .get(&self.registry, repository, self.client)?;
        Ok(crate::registry::auth::basic_header(&resolved.credentials))
    }

    /// The username and password for `repository`, when there are both.
    pub(crate) fn user_password(&self, repository: &str) -> Result<Option<(String, String)>> {
        let resolved = self
            .client
            .credentials()
            .get(&self.registry, repository, self.client)?;
        Ok(match resolved.credentials {
            Credentials::Basic { username, password } => {
                Some((username.expose().to_string(), password.expose().to_string()))
            }
            _ => None,
        })
    }
}

/// An API's answer, read whole.
pub(crate) struct Answer {
    /// `METHOD url` without its query, for messages.
    pub what: String,
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::protocol(format!(
                "{}: the answer is not what the API documents: {e}",
                self.what
            ))
        })
    }

    /// The answer as an error naming the API and what it said; `hint` follows.
    pub fn error(&self, hint: &str) -> Error {
        let said = api_error_text(&self.body)
            .map(|text| format!(": {text}"))
            .unwrap_or_default();
        let mut error = Error::from_status(
            self.status,
            format!("{} answered HTTP {}{said}{hint}", self.what, self.status),
        );
        if StatusClass::of(self.status) == StatusClass::Auth {
            error.kind = ErrorKind::Auth;
        }
        error
    }
}

/// What an API's error body says, in any of the vendors' shapes: distribution and Harbor
/// (`{"errors":[{"code","message"}]}`), SWR (`error_code`/`error_msg`), AWS (`__type`/
/// `message`), Docker Hub and Quay (`detail`/`message`/`error_message`), else the text
/// itself; escaped and at most 300 characters.
fn api_error_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            return (!text.is_empty()).then(|| bounds::printable(text, 300));
        }
    };
    let field = |v: &serde_json::Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| v.get(*n).and_then(|x| x.as_str()).map(str::to_string))
    };
    let text = if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
        errors
            .iter()
            .take(5)
            .map(|e| {
                format!(
                    "{} {}",
                    field(e, &["code"]).unwrap_or_default(),
                    field(e, &["message"]).unwrap_or_default()
                )
                .trim()
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        let code = field(&value, &["error_code", "__type", "code"]).unwrap_or_default();
        let message = field(
            &value,
            &[
                "error_msg",
                "message",
                "Message",
                "detail",
                "error_message",
                "error",
            ],
        )
        .unwrap_or_default();
        format!("{code} {message}").trim().to_string()
    };
    (!text.is_empty()).then(|| bounds::printable(&text, 300))
}

/// `registry[/namespace]` for `config --from-registry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Full repository paths (with the namespace), sorted, once each.
    pub repositories: Vec<String>,
    /// The API asked, for messages: `GET https://…/api/v2.0/projects/p/repositories`.
    pub asked: String,
}

/// Every repository under `namespace` (at a `/` boundary; all when `None`), through the
/// registry's own API by kind. An empty listing is an error naming the API and its answer.
pub fn list_repositories(
    client: &Client,
    registry: &str,
    namespace: Option<&str>,
    stats: &RequestStats,
) -> Result<(Kind, Listing)> {
    let api = Api::of(client, registry, stats)?;
    let mut listing = match api.kind {
        Kind::Harbor => harbor::list(&api, namespace, stats)?,
        Kind::DockerHub => hub::list(&api, namespace, stats)?,
        Kind::Quay => quay::list(&api, namespace, stats)?,
        Kind::Distribution => {
            let asked = format!("GET {}/v2/_catalog", api.base);
            Listing {
                repositories: client.catalog(registry, namespace, stats)?,
                asked,
            }
        }
        Kind::Swr => swr::list(&api, namespace, stats)?,
        Kind::Ecr => ecr::list(&api, stats)?,
    };
    listing
        .repositories
        .retain(|repository| crate::config::auth::namespace_covers(namespace, repository));
    listing.repositories.sort();
    listing.repositories.dedup();
    if listing.repositories.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{}: no repositories under {registry}{}; the credentials may not see them \
                 (the {} API was asked)",
                listing.asked,
                namespace.map(|n| format!("/{n}")).unwrap_or_default(),
                api.kind
            ),
        ));
    }
    Ok((api.kind, listing))
}

/// Percent-encodes a query value or path segment (RFC 3986 unreserved kept).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A listing that grew past [`MAX_REPOSITORIES`].
pub(crate) fn too_many(asked: &str) -> Error {
    Error::protocol(format!(
        "{asked}: more than {MAX_REPOSITORIES} repositories; name a narrower namespace"
    ))
}

/// A listing whose pages do not end.
pub(crate) fn endless(asked: &str, pages: usize) -> Error {
    Error::protocol(format!(
        "{asked}: more than {pages} pages; the pagination does not end"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_each_vendor() {
        let text = |body: &str| api_error_text(body.as_bytes()).unwrap();
        assert_eq!(
            text(r#"{"errors":[{"code":"UNAUTHORIZED","message":"project p not found"}]}"#),
            "UNAUTHORIZED project p not found"
        );
        assert_eq!(
            text(r#"{"error_code":"SVCSTG.SWR.4001","error_msg":"Namespace already exists"}"#),
            "SVCSTG.SWR.4001 Namespace already exists"
        );
        assert_eq!(
            text(r#"{"__type":"RepositoryNotFoundException","message":"no such repo"}"#),
            "RepositoryNotFoundException no such repo"
        );
        assert_eq!(text(r#"{"detail":"object not found"}"#), "object not found");
        assert_eq!(text("Forbidden\n"), "Forbidden");
        assert_eq!(api_error_text(b""), None);
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("team/a b"), "team%2Fa%20b");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
    }
}
