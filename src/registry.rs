//! The registry client (distribution API v2): the [`Client`] a run shares, each registry's
//! `Endpoint` state, and the [`Repo`] handle whose methods are the protocol's
//! operations, one file per resource: `tags`, `manifests`, `blobs` (uploads and mounts
//! included), `referrers`. Every `/v2/` path is built in `paths`; how each request is
//! authenticated, redirected and capped lives in `session`; URL arithmetic in `url`; what
//! a registry was found to support in `memo`. Never prints.

pub mod auth;
mod blobs;
mod catalog;
mod cloud_sign_in;
mod limit;
mod manifest_cache;
mod manifests;
mod memo;
mod pages;
mod paths;
mod quota;
mod referrers;
mod session;
mod tags;
mod uploads;
mod url;

pub use blobs::Mount;
pub use manifests::{Deletion, ManifestHead};
pub use quota::PullQuota;
pub use referrers::ReferrerListing;
pub use tags::{REJECTED_TAGS_KEPT, Tags};
pub use uploads::{DEFAULT_CHUNK_SIZE, UploadAt, UploadError};
pub use url::next_link;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::credentials::CredentialStore;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::http::Transport;
use crate::reference::{RepoId, TagOrDigest};
use auth::{Challenge, TokenCache};
use limit::Semaphore;
use manifest_cache::ManifestCache;
use memo::Memo;
use quota::Quota;

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
    /// the blob, settled by [`Repo::probe_self_mount`].
    self_mount: Memo,
    /// What the registry said of its pull quota.
    quota: Quota,
    /// Whether the registry answers the OCI 1.1 referrers API, settled by its answers
    /// (see [`Repo::referrers`]).
    referrers_api: Memo,
    /// Whether `DELETE /v2/<name>/manifests/<tag>` removes a tag (distribution 2.8 reads
    /// the tag as a digest and refuses), settled by the first tag deletion.
    tag_deletes: Memo,
}

/// Access wanted on a repository; decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Pull,
    Push,
    /// Push and delete (`--prune`): distribution's token servers ask for `delete`.
    Delete,
    /// The registry's `_catalog` (scope `registry:catalog:*`).
    Catalog,
}

/// Small blobs read whole, by repository and digest.
type HeldBlobs = HashMap<(RepoId, Digest), Arc<Vec<u8>>>;

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
    held_blobs: Mutex<HeldBlobs>,
    /// `--chunk-size`: every upload in `PATCH` chunks of this size.
    chunk_size: Option<u64>,
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
            chunk_size: None,
        })
    }

    /// Every upload in `PATCH` chunks of `size` bytes (`--chunk-size`), when given.
    pub fn with_chunk_size(mut self, size: Option<u64>) -> Self {
        self.chunk_size = size;
        self
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Where every repository's credentials come from.
    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// The registry's API base URL (`https://host`, or what an `insecure` registry's
    /// probe settled on).
    pub fn registry_base(&self, registry: &str) -> Result<String> {
        self.repo(registry, "", Access::Pull).base()
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

    /// Pings each of `registries` that has not been yet, one after the other: run beside
    /// planning (which reads the sources), it has the targets' answers and connections
    /// ready when the copy starts, instead of a round trip and a handshake more on the
    /// copy's first requests (three round trips on a far registry). A registry that does
    /// not answer is left to the requests that need it: they ping again within their
    /// retries, and report.
    pub fn ping_all(&self, registries: &[&str]) {
        for registry in registries {
            let _ = self.repo(registry, "", Access::Pull).ping();
        }
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
                    self_mount: Memo::new(),
                    quota: Quota::new(),
                    referrers_api: Memo::new(),
                    tag_deletes: Memo::new(),
                })
            })
            .clone();
        Repo {
            client: self,
            endpoint,
            id: RepoId::new(registry, repository),
            access,
        }
    }
}

/// Where a registry's API lives: Docker Hub's is registry-1.docker.io.
pub fn api_host(registry: &str) -> &str {
    if registry == crate::reference::DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// One repository on one registry. Its operations are in the files of their resource.
pub struct Repo<'c> {
    client: &'c Client,
    endpoint: Arc<Endpoint>,
    id: RepoId,
    access: Access,
}

impl Repo<'_> {
    pub fn registry(&self) -> &str {
        &self.id.registry
    }

    pub fn name(&self) -> &str {
        &self.id.repository
    }

    /// Which repository this is.
    pub fn id(&self) -> &RepoId {
        &self.id
    }

    /// What the source registry has said of its pull quota.
    pub fn pull_quota(&self) -> PullQuota {
        self.endpoint.quota.state()
    }

    /// `registry/repository`, for messages.
    fn display(&self) -> String {
        self.id.to_string()
    }
}

/// A tag or digest given as a string to a [`Repo`] method, read once at its door.
fn tag_or_digest(reference: &str) -> Result<TagOrDigest> {
    TagOrDigest::parse(reference).map_err(|e| Error::protocol(e.to_string()))
}
