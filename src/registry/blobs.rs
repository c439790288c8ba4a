//! Blobs (`/v2/<name>/blobs/…`): `HEAD` to see whether a repository has one, a streamed
//! `GET` (redirects followed, credentials kept to the registry), small blobs read whole
//! and held for the copy, or from a byte on (`Range`) to continue a broken read,
//! cross-repository mounts (and the once-per-registry probe of a mount from the
//! repository itself). Uploads are in `uploads`.

use std::sync::Arc;

use super::memo::Capability;
use super::session::Call;
use super::url::resolve_url;
use super::{Repo, paths};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::http::{BlobBody, Body, Method, RequestStats, Response};

/// Result of a cross-repository mount request.
pub enum Mount {
    Mounted,
    /// The registry opened a normal upload instead (no mount support, or blob unknown).
    Upload(String),
}

impl Repo<'_> {
    /// Whether the repository has the blob.
    pub fn blob_exists(&self, digest: &Digest, stats: &RequestStats) -> Result<bool> {
        let path = paths::blob(self.name(), digest);
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
        let path = paths::mount(self.name(), digest, from);
        let other = (from != self.name()).then_some(from);
        let response = self.client.transport.retrying(stats, || {
            let call = Call {
                method: Method::Post,
                path_or_url: &path,
                headers: &[],
                mount_from: other,
                streamed: false,
                continuation: false,
            };
            self.request_scoped(call, Body::Empty, stats)
        })?;
        match response.status {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Upload(self.upload_location(&response, &path)?)),
            _ => {
                Err(response.describe_error(&format!("mounting {digest} into {}", self.display())))
            }
        }
    }

    /// Whether this registry is known to answer a mount from the repository itself with
    /// `201` when the repository has the blob (and `202` with an upload session when it
    /// does not): then one request replaces the `HEAD` + `POST` before an upload.
    pub fn mounts_in_place(&self) -> bool {
        self.endpoint.self_mount.get() == Capability::Yes
    }

    /// Once per registry: asks for a mount of `digest`, which this repository is known to
    /// have, from the repository itself. `201` settles [`Repo::mounts_in_place`] as true;
    /// anything else as false (an upload session opened instead is cancelled). Later calls
    /// send nothing.
    pub fn probe_self_mount(&self, digest: &Digest, stats: &RequestStats) {
        if !self.endpoint.self_mount.start_probe() {
            return;
        }
        let path = paths::mount(self.name(), digest, self.name());
        let mounted = match self.request(Method::Post, &path, &[], Body::Empty, stats) {
            Ok(response) if response.status == 201 => true,
            Ok(response) => {
                if response.status == 202
                    && let Ok(session) = self.upload_location(&response, &path)
                {
                    // Best effort: an abandoned session is purged by the registry anyway.
                    let _ = self.request(Method::Delete, &session, &[], Body::Empty, stats);
                }
                false
            }
            Err(_) => false,
        };
        self.endpoint.self_mount.settle(mounted);
    }

    /// `GET` a blob as a stream (redirects followed, credentials kept to the registry).
    /// One attempt; the caller retries the whole transfer.
    pub fn get_blob(&self, digest: &Digest, stats: &RequestStats) -> Result<Response> {
        self.get_whole_blob(digest, false, stats)
    }

    /// The blob's body from byte `offset` of its `size` on, to continue a transfer under
    /// way: `Range: bytes=offset-(size-1)`, to the registry and to a redirect target
    /// alike. A server that sends the whole body instead (200), refuses the range (416) or
    /// answers another range is read from the start: [`BlobBody::starts_at`] says which.
    /// Not held to the registry's cap on requests (see [`Call::continuation`]). One attempt.
    pub fn get_blob_from(
        &self,
        digest: &Digest,
        offset: u64,
        size: u64,
        stats: &RequestStats,
    ) -> Result<BlobBody<'static>> {
        let whole = |response: Response| BlobBody {
            reader: Box::new(response.into_reader()),
            starts_at: 0,
        };
        if offset == 0 || offset >= size {
            return Ok(whole(self.get_whole_blob(digest, true, stats)?));
        }
        let range = [("range", format!("bytes={offset}-{}", size - 1))];
        let response = self.fetch_blob(digest, &range, true, stats)?;
        let answered_from = response
            .header("content-range")
            .and_then(|r| r.trim().strip_prefix("bytes "))
            .and_then(|r| r.split('-').next())
            .and_then(|start| start.trim().parse::<u64>().ok());
        match response.status {
            206 if answered_from == Some(offset) => Ok(BlobBody {
                reader: Box::new(response.into_reader()),
                starts_at: offset,
            }),
            200 => Ok(whole(response)),
            206 | 416 => Ok(whole(self.get_whole_blob(digest, true, stats)?)),
            _ => Err(self.blob_fetch_error(digest, response)),
        }
    }

    fn get_whole_blob(
        &self,
        digest: &Digest,
        continuation: bool,
        stats: &RequestStats,
    ) -> Result<Response> {
        let response = self.fetch_blob(digest, &[], continuation, stats)?;
        if response.status != 200 {
            return Err(self.blob_fetch_error(digest, response));
        }
        Ok(response)
    }

    /// One blob `GET` with `headers`, whatever its answer.
    fn fetch_blob(
        &self,
        digest: &Digest,
        headers: &[(&str, String)],
        continuation: bool,
        stats: &RequestStats,
    ) -> Result<Response> {
        let path = paths::blob(self.name(), digest);
        let call = Call {
            method: Method::Get,
            path_or_url: &path,
            headers,
            mount_from: None,
            streamed: true,
            continuation,
        };
        self.request_scoped(call, Body::Empty, stats)
    }

    fn blob_fetch_error(&self, digest: &Digest, response: Response) -> Error {
        response.describe_error(&format!("fetching blob {digest} from {}", self.display()))
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
        self.client
            .held_blobs
            .lock()
            .unwrap()
            .insert((self.id.clone(), digest.clone()), Arc::new(bytes.clone()));
        Ok(bytes)
    }

    /// A blob [`Repo::get_small_blob`] already read in this run, if any.
    pub fn held_blob(&self, digest: &Digest) -> Option<Arc<Vec<u8>>> {
        self.client
            .held_blobs
            .lock()
            .unwrap()
            .get(&(self.id.clone(), digest.clone()))
            .cloned()
    }

    /// The upload session an answer names: its `Location`, resolved (as any relative
    /// reference, RFC 3986) against the URL of the request it answers — `request`, a path
    /// of the registry or an absolute URL.
    pub(super) fn upload_location(&self, response: &Response, request: &str) -> Result<String> {
        let location = response
            .header("location")
            .ok_or_else(|| Error::protocol("upload response without Location header"))?;
        let request_url = resolve_url(&self.base()?, request);
        Ok(resolve_url(&request_url, location))
    }
}
