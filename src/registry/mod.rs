//! Registry protocol operations (distribution API v2): tags, manifests, blobs, mounts
//! and uploads, one method each on [`Repo`]. How each request is authenticated, redirected
//! and capped lives in `session`; URL arithmetic in `url`. Never prints.

pub mod auth;
mod limit;
mod manifest_cache;
mod quota;
mod session;
mod url;

use manifest_cache::ManifestCache;
pub use quota::PullQuota;
use quota::Quota;

use limit::Semaphore;
pub use url::next_link;
use url::resolve_url;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::Method;

use crate::credentials::CredentialStore;
use crate::digest::Digest;
use crate::error::{Error, ErrorCode, RegistryError, Result, StatusClass};
use crate::http::{Body, RequestStats, Response, Transport, bounds};
use crate::manifest::{self, Manifest, MediaType};
use crate::reference::is_valid_tag;
use auth::{Challenge, TokenCache};

const TAGS_PAGE: usize = 1000;
/// Size of each `PATCH` when a registry needs chunked uploads.
const UPLOAD_CHUNK: u64 = 16 * 1024 * 1024;

/// Why a blob upload failed: the registry would not take the whole body in one `PUT`
/// (try again in chunks), or anything else.
#[derive(Debug)]
pub enum UploadError {
    MonolithicRefused(Error),
    Failed(Error),
}

impl From<Error> for UploadError {
    fn from(error: Error) -> Self {
        UploadError::Failed(error)
    }
}

impl From<UploadError> for Error {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::MonolithicRefused(e) | UploadError::Failed(e) => e,
        }
    }
}

/// Registry-wide state: where its API lives and how it authenticates.
struct Endpoint {
    registry: String,
    /// `https://host` or `http://host`, settled by the first ping.
    base: Mutex<Option<String>>,
    insecure: bool,
    challenge: Mutex<Option<Challenge>>,
    permits: Semaphore,
    /// Set once the registry refused a monolithic upload.
    chunked: AtomicBool,
    /// Whether a mount from the repository itself answers 201 when the repository has
    /// the blob: one of the `SELF_MOUNT_*` values, settled by [`Repo::probe_self_mount`].
    self_mount: AtomicU8,
    /// What the registry said of its pull quota.
    quota: Quota,
    /// Whether the registry answers the OCI 1.1 referrers API: one of the `REFERRERS_*`
    /// values, settled by its first answer (see [`Repo::referrers`]).
    referrers_api: AtomicU8,
}

const REFERRERS_UNKNOWN: u8 = 0;
const REFERRERS_API: u8 = 1;
const REFERRERS_NO_API: u8 = 2;
/// Pages of one referrers API answer followed at most.
const REFERRERS_PAGES: usize = 100;

const SELF_MOUNT_UNKNOWN: u8 = 0;
const SELF_MOUNT_PROBING: u8 = 1;
const SELF_MOUNT_YES: u8 = 2;
const SELF_MOUNT_NO: u8 = 3;

/// Access wanted on a repository; decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// The registry client shared by all jobs: one transport, one token cache.
pub struct Client {
    transport: Transport,
    credentials: CredentialStore,
    tokens: TokenCache,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    per_registry_limit: usize,
    /// Every manifest fetched in the run (by planning's tag filters or by the copy), so
    /// that none is fetched twice.
    manifests: ManifestCache,
    /// Image configs read during planning, likewise handed to the copy.
    held_blobs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Client {
    pub fn new(
        transport: Transport,
        credentials: CredentialStore,
        per_registry_limit: usize,
    ) -> Result<Self> {
        // A registry's own proxy choice (auth.json `"proxy"`) covers its API host.
        for (registry, proxy) in credentials.auth().proxies() {
            let host = api_host(registry);
            transport.proxies().set_for_host(host, proxy).map_err(|e| {
                Error::protocol(format!("auth.json entry for {registry}: \"proxy\": {e}"))
            })?;
        }
        Ok(Client {
            transport,
            credentials,
            tokens: TokenCache::default(),
            endpoints: Mutex::new(HashMap::new()),
            per_registry_limit,
            manifests: ManifestCache::default(),
            held_blobs: Mutex::new(HashMap::new()),
        })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Manifest `GET`s sent so far, by registry (those that were sent any).
    pub fn manifest_gets(&self) -> std::collections::BTreeMap<String, u64> {
        self.endpoints
            .lock()
            .unwrap()
            .iter()
            .map(|(registry, endpoint)| (registry.clone(), endpoint.quota.manifest_gets()))
            .filter(|(_, count)| *count > 0)
            .collect()
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
                    insecure: self.credentials.auth().is_insecure(registry),
                    challenge: Mutex::new(None),
                    permits: Semaphore::new(self.per_registry_limit),
                    chunked: AtomicBool::new(false),
                    self_mount: AtomicU8::new(SELF_MOUNT_UNKNOWN),
                    quota: Quota::new(),
                    referrers_api: AtomicU8::new(REFERRERS_UNKNOWN),
                })
            })
            .clone();
        Repo {
            client: self,
            endpoint,
            name: repository.to_string(),
            access,
        }
    }
}

/// Where a registry's API lives: Docker Hub's is registry-1.docker.io.
fn api_host(registry: &str) -> &str {
    if registry == crate::reference::DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// A repository's tag list: the tags (sorted, once each), and the names it listed that
/// do not match the tag grammar (skipped: never used in a URL or a file name): how many,
/// and the first few of them.
#[derive(Debug, Default)]
pub struct Tags {
    pub valid: Vec<String>,
    pub rejected: Vec<String>,
    pub rejected_count: usize,
}

/// Names kept of those a tag list holds that are not tags (the rest are only counted, so
/// that a hostile list of long names takes no memory).
pub const REJECTED_TAGS_KEPT: usize = 5;

/// What `HEAD` on a manifest tells.
#[derive(Debug, Clone)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<MediaType>,
}

/// What a repository says refers to one manifest.
#[derive(Debug, Default)]
pub struct ReferrerListing {
    /// Whether the registry answered the referrers API (else the fallback tag was read).
    pub api: bool,
    /// The `sha256-<hex>` fallback index as stored, when read and present.
    pub fallback_index: Option<Arc<Manifest>>,
    pub referrers: Vec<manifest::Referrer>,
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
    access: Access,
}

impl Repo<'_> {
    pub fn registry(&self) -> &str {
        &self.endpoint.registry
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `registry/repo:tag` or `registry/repo@sha256:…`, for messages.
    fn reference(&self, reference: &str) -> String {
        let separator = if Digest::parse(reference).is_ok() {
            '@'
        } else {
            ':'
        };
        format!("{}{separator}{reference}", self.display())
    }

    /// What the source registry has said of its pull quota.
    pub fn pull_quota(&self) -> PullQuota {
        self.endpoint.quota.state()
    }

    /// Every tag, following `Link` pagination, and the names it listed that are not tags.
    pub fn list_tags(&self, stats: &RequestStats) -> Result<Tags> {
        self.tags(false, stats).map(Option::unwrap_or_default)
    }

    /// Every tag, or `None` when the registry does not know the repository (`404` on
    /// the first page): a target repository that the run is about to create.
    pub fn list_tags_if_any(&self, stats: &RequestStats) -> Result<Option<Vec<String>>> {
        Ok(self.tags(true, stats)?.map(|tags| tags.valid))
    }

    /// Follows the pages until one has no `next` link. Bounded: a page of at most
    /// [`bounds::MAX_TAG_PAGE_BYTES`], a link to a page already read is a loop, and more
    /// than [`bounds::MAX_TAGS_PER_REPOSITORY`] names is an error, never a truncation.
    fn tags(&self, absent_is_none: bool, stats: &RequestStats) -> Result<Option<Tags>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tag list of {}", self.display());
        let mut tags = Tags::default();
        let first = format!("/v2/{}/tags/list?n={TAGS_PAGE}", self.name);
        let base = self.base()?;
        let mut visited = HashSet::from([resolve_url(&base, &first)]);
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > bounds::MAX_TAGS_PER_REPOSITORY {
                return Err(Error::protocol(format!(
                    "{what}: more than {} pages; the pagination does not end",
                    bounds::MAX_TAGS_PER_REPOSITORY
                )));
            }
            let response = self.retrying_request(Method::Get, &path, &[], stats)?;
            if response.status == 404 && absent_is_none && pages == 1 {
                return Ok(None);
            }
            if response.status != 200 {
                return Err(response.describe_error(&format!("listing tags of {}", self.display())));
            }
            next = response
                .header("link")
                .and_then(next_link)
                .map(|link| link.to_string());
            let body = response.read_bounded(
                bounds::MAX_TAG_PAGE_BYTES,
                &format!("{what}, page {pages},"),
            )?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
            for name in page.tags.unwrap_or_default() {
                if is_valid_tag(&name) {
                    tags.valid.push(name);
                } else {
                    tags.rejected_count += 1;
                    if tags.rejected.len() < REJECTED_TAGS_KEPT {
                        tags.rejected.push(name);
                    }
                }
            }
            if tags.valid.len() + tags.rejected_count > bounds::MAX_TAGS_PER_REPOSITORY {
                return Err(Error::protocol(format!(
                    "{what}: more than {} tags, the most this tool lists for one repository; \
                     name the tags in the rule instead",
                    bounds::MAX_TAGS_PER_REPOSITORY
                )));
            }
            if let Some(link) = &next
                && !visited.insert(resolve_url(&base, link))
            {
                return Err(Error::protocol(format!(
                    "{what}: the pagination loops (page {pages} links back to {}, a page already read)",
                    bounds::escaped(link, 200)
                )));
            }
        }
        tags.valid.sort();
        tags.valid.dedup();
        Ok(Some(tags))
    }

    /// `HEAD` a manifest; `None` when it does not exist.
    pub fn head_manifest(
        &self,
        reference: &str,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let headers = [("accept", manifest::ACCEPT.to_string())];
        let response = self.retrying_request(Method::Head, &path, &headers, stats)?;
        self.endpoint.quota.observe(&response);
        match response.status {
            200 => Ok(Some(ManifestHead {
                digest: response
                    .header("docker-content-digest")
                    .and_then(|d| Digest::parse(d.trim()).ok()),
                // Reported as it is: only a well-formed media type.
                media_type: response
                    .header("content-type")
                    .map(|v| v.split(';').next().unwrap_or(v).trim())
                    .and_then(MediaType::parse),
            })),
            404 => Ok(None),
            _ => Err(response.describe_error(&format!("checking {}", self.reference(reference)))),
        }
    }

    /// A manifest with its bytes as served; when `reference` is a digest the bytes must
    /// hash to it. Fetched once per run: later calls for the same digest, or for a tag
    /// already fetched (whose digest is then known), are answered from memory.
    pub fn get_manifest(&self, reference: &str, stats: &RequestStats) -> Result<Arc<Manifest>> {
        let key = |digest: Digest| (self.registry().to_string(), self.name.clone(), digest);
        match Digest::parse(reference) {
            Ok(digest) => self
                .client
                .manifests
                .get(key(digest), || self.fetch_manifest(reference, stats)),
            Err(_) => {
                let tag = (
                    self.registry().to_string(),
                    self.name.clone(),
                    reference.to_string(),
                );
                if let Some(digest) = self.client.manifests.digest_of_tag(&tag) {
                    return self.client.manifests.get(key(digest.clone()), || {
                        self.fetch_manifest(digest.as_str(), stats)
                    });
                }
                let manifest = self.fetch_manifest(reference, stats)?;
                Ok(self
                    .client
                    .manifests
                    .keep(key(manifest.digest.clone()), tag, manifest))
            }
        }
    }

    fn fetch_manifest(&self, reference: &str, stats: &RequestStats) -> Result<Manifest> {
        let path = format!("/v2/{}/manifests/{reference}", self.name);
        let headers = [("accept", manifest::ACCEPT.to_string())];
        let what = format!("fetching manifest {}", self.reference(reference));
        let quota = &self.endpoint.quota;
        let (content_type, bytes) = self.client.transport.retrying(stats, || {
            quota.before_pull(self.registry())?;
            let response = self.request(Method::Get, &path, &headers, Body::Empty, stats)?;
            quota.observe(&response);
            if response.status != 200 {
                let none_left = Quota::none_left(&response);
                let retry_after = response.header("retry-after").is_some();
                let error = response.describe_error(&what);
                if Quota::says_exhausted(none_left, retry_after, &error) {
                    return Err(quota.exhaust(self.registry()));
                }
                return Err(error);
            }
            let content_type = response.header("content-type").map(str::to_string);
            Ok((
                content_type,
                response.read_bounded(
                    manifest::MAX_MANIFEST_BYTES,
                    &format!("manifest {}:{reference}", self.display()),
                )?,
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
        let headers = [("content-type", manifest.media_type.to_string())];
        let what = format!("pushing manifest {}", self.reference(reference));
        self.client.transport.retrying(stats, || {
            let response = self.request(
                Method::Put,
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

    /// What refers to `subject`: `GET /v2/<name>/referrers/<subject>` when the registry
    /// answers it (learnt from its first answer: `404` or an answer that is not an index
    /// means no API, and the registry is not asked again); else the referrers tag schema's
    /// `sha256-<hex>` index. `tags`, when known, spares the `GET` of an absent fallback tag.
    pub fn referrers(
        &self,
        subject: &Digest,
        tags: Option<&std::collections::HashSet<String>>,
        stats: &RequestStats,
    ) -> Result<ReferrerListing> {
        if self.endpoint.referrers_api.load(Ordering::Relaxed) != REFERRERS_NO_API
            && let Some(referrers) = self.referrers_api(subject, stats)?
        {
            return Ok(ReferrerListing {
                api: true,
                fallback_index: None,
                referrers,
            });
        }
        let tag = manifest::fallback_tag(subject);
        if tags.is_some_and(|tags| !tags.contains(&tag)) {
            return Ok(ReferrerListing::default());
        }
        let index = match self.get_manifest(&tag, stats) {
            Ok(index) => index,
            Err(e) if e.kind == crate::error::ErrorKind::NotFound => {
                return Ok(ReferrerListing::default());
            }
            Err(e) => return Err(e),
        };
        let referrers = manifest::referrers_of(&index.bytes)
            .map_err(|e| e.context(format!("referrers index {}", self.reference(&tag))))?;
        Ok(ReferrerListing {
            api: false,
            fallback_index: Some(index),
            referrers,
        })
    }

    /// The referrers API's answer (every page), or `None` when the registry has no API.
    fn referrers_api(
        &self,
        subject: &Digest,
        stats: &RequestStats,
    ) -> Result<Option<Vec<manifest::Referrer>>> {
        let what = format!("listing referrers of {}", self.reference(subject.as_str()));
        let headers = [("accept", manifest::OCI_INDEX.to_string())];
        let mut referrers = Vec::new();
        let mut next = Some(format!("/v2/{}/referrers/{subject}", self.name));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > REFERRERS_PAGES {
                return Err(Error::protocol(format!("{what}: pagination does not end")));
            }
            let response = self.retrying_request(Method::Get, &path, &headers, stats)?;
            let status = response.status;
            let refused = matches!(StatusClass::of(status), StatusClass::Auth);
            if refused || (status != 200 && pages > 1) {
                return Err(response.describe_error(&what));
            }
            next = response
                .header("link")
                .and_then(next_link)
                .map(|link| link.to_string());
            let body = response.read_bounded(manifest::MAX_MANIFEST_BYTES, "referrers list")?;
            // An index is the API's answer; a 404 (or 400, 405, …: a route the registry
            // does not have) or anything but an index on the first page means no API. A
            // registry with the API may still say the repository is unknown (a dry run's
            // target): that settles nothing about the registry.
            let page = match status {
                200 => manifest::referrers_of(&body).ok(),
                _ => None,
            };
            match page {
                Some(page) => referrers.extend(page),
                None if pages == 1 => {
                    let repository_unknown = status == 404
                        && RegistryError::codes_of(&body).contains(&ErrorCode::NameUnknown);
                    if !repository_unknown {
                        self.endpoint
                            .referrers_api
                            .store(REFERRERS_NO_API, Ordering::Relaxed);
                    }
                    return Ok(None);
                }
                None => {
                    return Err(Error::protocol(format!(
                        "{what}: page {pages} is not a referrers index"
                    )));
                }
            }
        }
        self.endpoint
            .referrers_api
            .store(REFERRERS_API, Ordering::Relaxed);
        Ok(Some(referrers))
    }

    /// Whether the repository has the blob.
    pub fn blob_exists(&self, digest: &Digest, stats: &RequestStats) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{digest}", self.name);
        let response = self.retrying_request(Method::Head, &path, &[], stats)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => {
                Err(response
                    .describe_error(&format!("checking blob {digest} in {}", self.display())))
            }
        }
    }

    /// Asks the registry to mount `digest` from repository `from` of the same registry
    /// (`from` may be this repository: see [`Repo::mounts_in_place`]).
    pub fn mount_blob(&self, digest: &Digest, from: &str, stats: &RequestStats) -> Result<Mount> {
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            self.name,
            auth::percent_encode(from)
        );
        let other = (from != self.name).then_some(from);
        let response = self.client.transport.retrying(stats, || {
            let call = session::Call {
                method: Method::Post,
                path_or_url: &path,
                headers: &[],
                mount_from: other,
                streamed: false,
            };
            self.request_scoped(call, Body::Empty, stats)
        })?;
        match response.status {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Upload(self.upload_location(&response)?)),
            _ => {
                Err(response.describe_error(&format!("mounting {digest} into {}", self.display())))
            }
        }
    }

    /// Whether this registry is known to answer a mount from the repository itself with
    /// `201` when the repository has the blob (and `202` with an upload session when it
    /// does not): then one request replaces the `HEAD` + `POST` before an upload.
    pub fn mounts_in_place(&self) -> bool {
        self.endpoint.self_mount.load(Ordering::Relaxed) == SELF_MOUNT_YES
    }

    /// Once per registry: asks for a mount of `digest`, which this repository is known to
    /// have, from the repository itself. `201` settles [`Repo::mounts_in_place`] as true;
    /// anything else as false (an upload session opened instead is cancelled). Later calls
    /// send nothing.
    pub fn probe_self_mount(&self, digest: &Digest, stats: &RequestStats) {
        let won = self.endpoint.self_mount.compare_exchange(
            SELF_MOUNT_UNKNOWN,
            SELF_MOUNT_PROBING,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if won.is_err() {
            return;
        }
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            self.name,
            auth::percent_encode(&self.name)
        );
        let answer = match self.request(Method::Post, &path, &[], Body::Empty, stats) {
            Ok(response) if response.status == 201 => SELF_MOUNT_YES,
            Ok(response) => {
                if response.status == 202
                    && let Ok(session) = self.upload_location(&response)
                {
                    // Best effort: an abandoned session is purged by the registry anyway.
                    let _ = self.request(Method::Delete, &session, &[], Body::Empty, stats);
                }
                SELF_MOUNT_NO
            }
            Err(_) => SELF_MOUNT_NO,
        };
        self.endpoint.self_mount.store(answer, Ordering::Relaxed);
    }

    /// Opens an upload session; returns its absolute URL (query kept). One attempt; the
    /// caller retries the whole transfer.
    pub fn start_upload(&self, stats: &RequestStats) -> Result<String> {
        let path = format!("/v2/{}/blobs/uploads/", self.name);
        let response = self.request(Method::Post, &path, &[], Body::Empty, stats)?;
        if response.status != 202 {
            return Err(response.describe_error(&format!("starting upload to {}", self.display())));
        }
        self.upload_location(&response)
    }

    /// Uploads a blob's content into an open upload session: one monolithic `PUT`, or —
    /// once this registry has refused that — `PATCH` chunks and a closing `PUT`. One
    /// attempt: the stream cannot be replayed, so the caller retries the whole transfer.
    /// A refused monolithic `PUT` is [`UploadError::MonolithicRefused`]: the registry is
    /// then marked to take chunks, and the caller tries again with a fresh stream.
    pub fn upload_blob(
        &self,
        upload_url: &str,
        digest: &Digest,
        content: &mut dyn Read,
        size: u64,
        stats: &RequestStats,
    ) -> std::result::Result<(), UploadError> {
        let what = || format!("uploading {digest} to {}", self.display());
        let chunked = self.prefers_chunks();
        let (url, closing_body) = if chunked {
            let url = self.patch_chunks(upload_url, digest, content, size, stats)?;
            (url, Body::Empty)
        } else {
            (upload_url.to_string(), Body::Stream(content, size))
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}digest={digest}");
        let headers = [("content-type", "application/octet-stream".to_string())];
        let response = self
            .request(Method::Put, &url, &headers, closing_body, stats)
            .map_err(|e| e.context(what()))?;
        match response.status {
            201 => Ok(()),
            // A registry (or a proxy in front of it) that will not take the whole body at once.
            400 | 405 | 411 | 413 | 415 | 416 | 501 if !chunked => {
                self.endpoint.chunked.store(true, Ordering::Relaxed);
                Err(UploadError::MonolithicRefused(
                    response.describe_error(&what()),
                ))
            }
            _ => Err(response.describe_error(&what()).into()),
        }
    }

    /// Sends the content as `PATCH` chunks; returns the URL for the closing `PUT`.
    fn patch_chunks(
        &self,
        upload_url: &str,
        digest: &Digest,
        content: &mut dyn Read,
        size: u64,
        stats: &RequestStats,
    ) -> Result<String> {
        let what = || format!("uploading {digest} to {}", self.display());
        let mut url = upload_url.to_string();
        let mut offset = 0;
        while offset < size {
            let len = UPLOAD_CHUNK.min(size - offset);
            let mut part = Read::take(&mut *content, len);
            let headers = [
                ("content-type", "application/octet-stream".to_string()),
                ("content-range", format!("{offset}-{}", offset + len - 1)),
            ];
            let response = self
                .request(
                    Method::Patch,
                    &url,
                    &headers,
                    Body::Stream(&mut part, len),
                    stats,
                )
                .map_err(|e| e.context(what()))?;
            if response.status != 202 {
                return Err(response.describe_error(&what()));
            }
            url = self.upload_location(&response)?;
            offset += len;
        }
        // Reach the end of the stream so that its size and digest are verified now.
        let mut end = [0u8; 1];
        match content.read(&mut end) {
            Ok(0) => Ok(url),
            Ok(_) => Err(Error::digest(format!("{digest}: more data than its size"))),
            Err(e) => Err(Error::digest(format!("{digest}: {e}"))),
        }
    }

    /// Whether uploads to this registry go in `PATCH` chunks.
    pub fn prefers_chunks(&self) -> bool {
        self.endpoint.chunked.load(Ordering::Relaxed)
    }

    /// `GET` a blob as a stream (redirects followed, credentials kept to the registry).
    /// One attempt; the caller retries the whole transfer.
    pub fn get_blob(&self, digest: &Digest, stats: &RequestStats) -> Result<Response> {
        let path = format!("/v2/{}/blobs/{digest}", self.name);
        let call = session::Call {
            method: Method::Get,
            path_or_url: &path,
            headers: &[],
            mount_from: None,
            streamed: true,
        };
        let response = self.request_scoped(call, Body::Empty, stats)?;
        if response.status != 200 {
            return Err(
                response.describe_error(&format!("fetching blob {digest} from {}", self.display()))
            );
        }
        Ok(response)
    }

    /// `GET` a small blob (an image config) whole, retried, and checked against its digest;
    /// kept for the copy, which then does not fetch it again.
    pub fn get_small_blob(
        &self,
        digest: &Digest,
        limit: u64,
        stats: &RequestStats,
    ) -> Result<Vec<u8>> {
        let bytes = self.client.transport.retrying(stats, || {
            self.get_blob(digest, stats)?
                .read_bounded(limit, &format!("blob {digest}"))
        })?;
        if Digest::sha256_of(&bytes) != *digest {
            return Err(Error::digest(format!(
                "blob {digest} of {}: content does not match its digest",
                self.display()
            )));
        }
        self.client.held_blobs.lock().unwrap().insert(
            format!("{}@{digest}", self.display()),
            Arc::new(bytes.clone()),
        );
        Ok(bytes)
    }

    /// A blob [`Repo::get_small_blob`] already read in this run, if any.
    pub fn held_blob(&self, digest: &Digest) -> Option<Arc<Vec<u8>>> {
        self.client
            .held_blobs
            .lock()
            .unwrap()
            .get(&format!("{}@{digest}", self.display()))
            .cloned()
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
}
