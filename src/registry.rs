//! Registry protocol operations (distribution API v2): ping, tags, manifests, blobs,
//! mounts and uploads. Handles authentication per request, follows redirects without
//! credentials, and caps concurrent requests per registry. Never prints.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};

use ureq::http::Method;

use crate::auth::{Challenge, TokenCache, basic_header, parse_challenge};
use crate::config::{AuthConfig, AuthEntry};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Body, RequestStats, Response, Transport, redact_url};
use crate::manifest::{self, Manifest};
use crate::reference::DOCKER_HUB;

const MAX_REDIRECTS: usize = 5;
const TAGS_PAGE: usize = 1000;

/// Registry-wide state: where its API lives and how it authenticates.
struct Endpoint {
    registry: String,
    /// `https://host` or `http://host`, settled by the first ping.
    base: Mutex<Option<String>>,
    insecure: bool,
    challenge: Mutex<Option<Challenge>>,
    permits: Semaphore,
}

/// A counting semaphore capping concurrent requests to one registry.
struct Semaphore {
    available: Mutex<usize>,
    freed: Condvar,
}

impl Semaphore {
    fn new(count: usize) -> Self {
        Semaphore {
            available: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut available = self.available.lock().unwrap();
        while *available == 0 {
            available = self.freed.wait(available).unwrap();
        }
        *available -= 1;
        Permit(self)
    }
}

struct Permit<'a>(&'a Semaphore);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.available.lock().unwrap() += 1;
        self.0.freed.notify_one();
    }
}

/// Access wanted on a repository; decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// The registry client shared by all jobs: one transport, one token cache.
pub struct Client {
    transport: Transport,
    auth: AuthConfig,
    tokens: TokenCache,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    per_registry_limit: usize,
}

impl Client {
    pub fn new(transport: Transport, auth: AuthConfig, per_registry_limit: usize) -> Self {
        Client {
            transport,
            auth,
            tokens: TokenCache::default(),
            endpoints: Mutex::new(HashMap::new()),
            per_registry_limit,
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A handle on one repository with the credentials auth.json gives it.
    pub fn repo(&self, registry: &str, repository: &str, access: Access) -> Repo<'_> {
        let endpoint = self
            .endpoints
            .lock()
            .unwrap()
            .entry(registry.to_string())
            .or_insert_with(|| {
                Arc::new(Endpoint {
                    registry: registry.to_string(),
                    base: Mutex::new(None),
                    insecure: self.auth.is_insecure(registry),
                    challenge: Mutex::new(None),
                    permits: Semaphore::new(self.per_registry_limit),
                })
            })
            .clone();
        Repo {
            client: self,
            endpoint,
            name: repository.to_string(),
            entry: self.auth.lookup(registry, repository).cloned(),
            access,
        }
    }
}

/// What `HEAD` on a manifest tells.
#[derive(Debug, Clone)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
}

/// Result of a cross-repository mount request.
pub enum Mount {
    Mounted,
    /// The registry opened a normal upload instead (no mount support, or blob unknown).
    Upload(String),
}

/// One repository on one registry.
pub struct Repo<'c> {
    client: &'c Client,
    endpoint: Arc<Endpoint>,
    name: String,
    entry: Option<AuthEntry>,
    access: Access,
}

impl Repo<'_> {
    pub fn registry(&self) -> &str {
        &self.endpoint.registry
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every tag, following `Link` pagination.
    pub fn list_tags(&self, stats: &RequestStats) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut next = Some(format!("/v2/{}/tags/list?n={TAGS_PAGE}", self.name));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(Error::protocol("tag list pagination does not end"));
            }
            let response = self.retrying_request(Method::GET, &path, &[], stats)?;
            if response.status != 200 {
                return Err(response.describe_error(&format!("listing tags of {}", self.display())));
            }
            next = response
                .header("link")
                .and_then(next_link)
                .map(|link| link.to_string());
            let body = response.read_limited(64 * 1024 * 1024)?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::protocol(format!("tag list of {}: {e}", self.display())))?;
            tags.extend(page.tags.unwrap_or_default());
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// `HEAD` a manifest; `None` when it does not exist.
    pub fn head_manifest(
        &self,
        reference: &str,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let headers = [("accept", manifest::ACCEPT.to_string())];
        let response = self.retrying_request(Method::HEAD, &path, &headers, stats)?;
        match response.status {
            200 => Ok(Some(ManifestHead {
                digest: response
                    .header("docker-content-digest")
                    .and_then(|d| Digest::parse(d.trim()).ok()),
                media_type: response.header("content-type").map(str::to_string),
            })),
            404 => Ok(None),
            _ => Err(response.describe_error(&format!("checking {}:{reference}", self.display()))),
        }
    }

    /// `GET` a manifest, keeping its bytes; when `reference` is a digest the bytes must
    /// hash to it.
    pub fn get_manifest(&self, reference: &str, stats: &RequestStats) -> Result<Manifest> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let headers = [("accept", manifest::ACCEPT.to_string())];
        let what = format!("fetching manifest {}:{reference}", self.display());
        let (content_type, bytes) = self.client.transport.retrying(stats, || {
            let response = self.request(Method::GET, &path, &headers, Body::Empty, stats)?;
            if response.status != 200 {
                return Err(response.describe_error(&what));
            }
            let content_type = response.header("content-type").map(str::to_string);
            Ok((
                content_type,
                response.read_limited(manifest::MAX_MANIFEST_BYTES)?,
            ))
        })?;
        let digest = Digest::sha256_of(&bytes);
        if let Ok(expected) = Digest::parse(reference)
            && expected != digest
        {
            return Err(Error::digest(format!(
                "manifest {}@{expected}: content hashes to {digest}",
                self.display()
            )));
        }
        let media_type = manifest::media_type_of(&bytes, content_type.as_deref())?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `PUT` a manifest under a tag or its digest; the registry must agree on the digest.
    pub fn put_manifest(
        &self,
        reference: &str,
        manifest: &Manifest,
        stats: &RequestStats,
    ) -> Result<()> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let headers = [("content-type", manifest.media_type.clone())];
        let what = format!("pushing manifest {}:{reference}", self.display());
        self.client.transport.retrying(stats, || {
            let response = self.request(
                Method::PUT,
                &path,
                &headers,
                Body::Bytes(&manifest.bytes),
                stats,
            )?;
            if response.status != 201 && response.status != 200 {
                return Err(response.describe_error(&what));
            }
            match response.header("docker-content-digest") {
                Some(d) if d.trim() != manifest.digest.as_str() => Err(Error::digest(format!(
                    "{what}: registry stored it as {d}, expected {}",
                    manifest.digest
                ))),
                _ => Ok(()),
            }
        })
    }

    /// Whether the repository has the blob.
    pub fn blob_exists(&self, digest: &Digest, stats: &RequestStats) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{digest}", self.name);
        let response = self.retrying_request(Method::HEAD, &path, &[], stats)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => {
                Err(response
                    .describe_error(&format!("checking blob {digest} in {}", self.display())))
            }
        }
    }

    /// Asks the registry to mount `digest` from repository `from` of the same registry.
    pub fn mount_blob(&self, digest: &Digest, from: &str, stats: &RequestStats) -> Result<Mount> {
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            self.name,
            crate::auth::percent_encode(from)
        );
        let response = self.client.transport.retrying(stats, || {
            self.request_scoped(Method::POST, &path, &[], Body::Empty, Some(from), stats)
        })?;
        match response.status {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Upload(self.upload_location(&response)?)),
            _ => {
                Err(response.describe_error(&format!("mounting {digest} into {}", self.display())))
            }
        }
    }

    /// Opens an upload session; returns its absolute URL (query kept).
    pub fn start_upload(&self, stats: &RequestStats) -> Result<String> {
        let path = format!("/v2/{}/blobs/uploads/", self.name);
        let response = self.client.transport.retrying(stats, || {
            self.request(Method::POST, &path, &[], Body::Empty, stats)
        })?;
        if response.status != 202 {
            return Err(response.describe_error(&format!("starting upload to {}", self.display())));
        }
        self.upload_location(&response)
    }

    /// Completes an upload with one `PUT` carrying the whole stream. One attempt: the
    /// stream cannot be replayed, so the caller retries the whole transfer.
    pub fn finish_upload(
        &self,
        upload_url: &str,
        digest: &Digest,
        content: &mut dyn Read,
        size: u64,
        stats: &RequestStats,
    ) -> Result<()> {
        let separator = if upload_url.contains('?') { '&' } else { '?' };
        let url = format!("{upload_url}{separator}digest={digest}");
        let headers = [("content-type", "application/octet-stream".to_string())];
        let response = self
            .request(
                Method::PUT,
                &url,
                &headers,
                Body::Stream(content, size),
                stats,
            )
            .map_err(|e| e.context(format!("uploading {digest} to {}", self.display())))?;
        if response.status != 201 {
            return Err(
                response.describe_error(&format!("uploading {digest} to {}", self.display()))
            );
        }
        Ok(())
    }

    /// `GET` a blob as a stream (redirects followed, credentials kept to the registry).
    /// One attempt; the caller retries the whole transfer.
    pub fn get_blob(&self, digest: &Digest, stats: &RequestStats) -> Result<Response> {
        let path = format!("/v2/{}/blobs/{digest}", self.name);
        let response = self.request(Method::GET, &path, &[], Body::Empty, stats)?;
        if response.status != 200 {
            return Err(
                response.describe_error(&format!("fetching blob {digest} from {}", self.display()))
            );
        }
        Ok(response)
    }

    fn display(&self) -> String {
        format!("{}/{}", self.endpoint.registry, self.name)
    }

    fn upload_location(&self, response: &Response) -> Result<String> {
        let location = response
            .header("location")
            .ok_or_else(|| Error::protocol("upload response without Location header"))?;
        Ok(resolve_url(&self.base()?, location))
    }

    fn retrying_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        stats: &RequestStats,
    ) -> Result<Response> {
        self.client.transport.retrying(stats, || {
            let response = self.request(method.clone(), path, headers, Body::Empty, stats)?;
            if is_transient(response.status) {
                return Err(response.describe_error(&format!("{method} {}", self.display())));
            }
            Ok(response)
        })
    }

    fn request(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        stats: &RequestStats,
    ) -> Result<Response> {
        self.request_scoped(method, path_or_url, headers, body, None, stats)
    }

    /// One request with authentication: on a 401 the token is renewed and the request
    /// sent once more (bodies that are streams cannot be resent and fail instead).
    fn request_scoped(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, String)],
        mut body: Body<'_>,
        mount_from: Option<&str>,
        stats: &RequestStats,
    ) -> Result<Response> {
        let base = self.base()?;
        let url = resolve_url(&base, path_or_url);
        let scope = self.scope(mount_from);
        let resendable = !matches!(body, Body::Stream(..));
        for attempt in 0..2 {
            let authorization = self.authorization(&scope, stats)?;
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
                let _permit = self.endpoint.permits.acquire();
                self.client.transport.send(
                    method.clone(),
                    &url,
                    &all_headers,
                    this_body,
                    self.endpoint.insecure,
                    stats,
                )?
            };
            if response.status == 401 && attempt == 0 && resendable {
                self.refresh_auth(&response, &scope);
                continue;
            }
            if response.status == 401 {
                return Err(self.auth_error(response, authorization.is_some()));
            }
            if matches!(method, Method::GET | Method::HEAD) && is_redirect(response.status) {
                return self.follow_redirects(method, &url, response, headers, stats);
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second pass")
    }

    fn auth_error(&self, response: Response, sent_credentials: bool) -> Error {
        let registry = self.endpoint.registry.clone();
        let error = response.describe_error(&self.display());
        let hint = match (&self.entry, sent_credentials) {
            (Some(entry), _) if entry.credentials().is_some() => format!(
                "the credentials of auth.json entry {:?} were refused",
                entry.key
            ),
            _ => "no credentials in auth.json match this registry/namespace".to_string(),
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

    /// Follows GET/HEAD redirects; `Authorization` only goes to the registry's origin.
    fn follow_redirects(
        &self,
        method: Method,
        from_url: &str,
        mut response: Response,
        headers: &[(&str, String)],
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
            url = resolve_url(&url, location);
            let mut all_headers: Vec<(&str, String)> = headers.to_vec();
            if same_origin(&url, &base)
                && let Some(value) = self.authorization(&self.scope(None), stats)?
            {
                all_headers.push(("authorization", value));
            }
            response = self.client.transport.send(
                method.clone(),
                &url,
                &all_headers,
                Body::Empty,
                self.endpoint.insecure,
                stats,
            )?;
            if !is_redirect(response.status) {
                return Ok(response);
            }
        }
        Err(Error::protocol(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            redact_url(from_url)
        )))
    }

    fn scope(&self, mount_from: Option<&str>) -> String {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let mut scope = format!("repository:{}:{actions}", self.name);
        if let Some(from) = mount_from {
            scope.push_str(&format!(" repository:{from}:pull"));
        }
        scope
    }

    /// The `Authorization` value for this repository and scope, if any is needed.
    fn authorization(&self, scope: &str, stats: &RequestStats) -> Result<Option<String>> {
        let challenge = self.challenge(stats)?;
        match challenge {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => Ok(basic_header(self.entry.as_ref())),
            Challenge::Bearer { realm, service } => {
                let token = self.client.tokens.token(
                    &self.client.transport,
                    &self.endpoint.registry,
                    &realm,
                    service.as_deref(),
                    scope,
                    self.entry.as_ref(),
                    self.endpoint.insecure,
                    stats,
                )?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// After a 401: forget the token, and learn the challenge if it changed.
    fn refresh_auth(&self, response: &Response, scope: &str) {
        self.client
            .tokens
            .invalidate(&self.endpoint.registry, self.entry.as_ref(), scope);
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
        let response = self.client.transport.retrying(stats, || {
            let response = self.client.transport.send(
                Method::GET,
                &format!("{base}/v2/"),
                &[],
                Body::Empty,
                self.endpoint.insecure,
                stats,
            )?;
            if is_transient(response.status) {
                return Err(response.describe_error(&format!("pinging {}", self.endpoint.registry)));
            }
            Ok(response)
        })?;
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
        *known = Some(challenge.clone());
        Ok(challenge)
    }

    /// The API base URL. Docker Hub's API is at registry-1.docker.io. An `insecure`
    /// registry is tried over HTTPS without verification first, then plain HTTP, as
    /// Docker does.
    fn base(&self) -> Result<String> {
        let mut base = self.endpoint.base.lock().unwrap();
        if let Some(base) = base.as_ref() {
            return Ok(base.clone());
        }
        let host = if self.endpoint.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.endpoint.registry
        };
        let chosen = if self.endpoint.insecure {
            let https = format!("https://{host}");
            let probe = self.client.transport.send(
                Method::GET,
                &format!("{https}/v2/"),
                &[],
                Body::Empty,
                true,
                &RequestStats::default(),
            );
            match probe {
                Ok(_) => https,
                Err(_) => format!("http://{host}"),
            }
        } else {
            format!("https://{host}")
        };
        *base = Some(chosen.clone());
        Ok(chosen)
    }
}

fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// Resolves `location` (absolute URL, absolute path, or relative path) against `base`.
pub fn resolve_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin = origin_of(base);
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = &base[origin.len()..];
    let path = path.split('?').next().unwrap_or("");
    let dir = path.rfind('/').map_or("", |i| &path[..=i]);
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{origin}{dir}{location}")
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    origin_of(a).eq_ignore_ascii_case(origin_of(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let base = "http://r:5000";
        assert_eq!(
            resolve_url(base, "/v2/a/blobs/uploads/x?_state=s"),
            "http://r:5000/v2/a/blobs/uploads/x?_state=s"
        );
        assert_eq!(
            resolve_url(base, "https://s3.example/b?sig=1"),
            "https://s3.example/b?sig=1"
        );
        assert_eq!(
            resolve_url("http://r:5000/v2/a/blobs/uploads/?x=1", "u1?_state=2"),
            "http://r:5000/v2/a/blobs/uploads/u1?_state=2"
        );
    }

    #[test]
    fn origins() {
        assert!(same_origin("https://r.io/v2/x", "https://r.io"));
        assert!(!same_origin("https://r.io:444/x", "https://r.io"));
        assert!(!same_origin("http://r.io/x", "https://r.io"));
        assert!(!same_origin("https://cdn.r.io/x", "https://r.io"));
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
