//! Blobs (`/v2/<name>/blobs/…`): `HEAD` to see whether a repository has one, a streamed
//! `GET` (redirects followed, credentials kept to the registry), small blobs read whole
//! and held for the copy, cross-repository mounts (and the once-per-registry probe of a
//! mount from the repository itself), and uploads: a session, then one monolithic `PUT`
//! or, once a registry refused that, `PATCH` chunks and a closing `PUT`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::memo::Capability;
use super::session::Call;
use super::url::resolve_url;
use super::{Repo, paths};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::http::{BlobBody, Body, Method, RequestStats, Response};

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

    /// Opens an upload session; returns its absolute URL (query kept). One attempt; the
    /// caller retries the whole transfer.
    pub fn start_upload(&self, stats: &RequestStats) -> Result<String> {
        let path = paths::uploads(self.name());
        let response = self.request(Method::Post, &path, &[], Body::Empty, stats)?;
        if response.status != 202 {
            let error = response.describe_error(&format!("starting upload to {}", self.display()));
            return Err(self.missing_container(error));
        }
        self.upload_location(&response, &path)
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
        let url = paths::closing_upload(&url, digest);
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
            url = self.upload_location(&response, &url)?;
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
        let response = self.fetch_blob(digest, &[], stats)?;
        if response.status != 200 {
            return Err(self.blob_fetch_error(digest, response));
        }
        Ok(response)
    }

    /// The blob's body from byte `offset` of its `size` on: `Range: bytes=offset-(size-1)`,
    /// to the registry and to a redirect target alike. A server that sends the whole body
    /// instead (200), refuses the range (416) or answers another range is read from the
    /// start: [`BlobBody::starts_at`] says which. One attempt.
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
            return Ok(whole(self.get_blob(digest, stats)?));
        }
        let range = [("range", format!("bytes={offset}-{}", size - 1))];
        let response = self.fetch_blob(digest, &range, stats)?;
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
            206 | 416 => Ok(whole(self.get_blob(digest, stats)?)),
            _ => Err(self.blob_fetch_error(digest, response)),
        }
    }

    /// One blob `GET` with `headers`, whatever its answer.
    fn fetch_blob(
        &self,
        digest: &Digest,
        headers: &[(&str, String)],
        stats: &RequestStats,
    ) -> Result<Response> {
        let path = paths::blob(self.name(), digest);
        let call = Call {
            method: Method::Get,
            path_or_url: &path,
            headers,
            mount_from: None,
            streamed: true,
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
    fn upload_location(&self, response: &Response, request: &str) -> Result<String> {
        let location = response
            .header("location")
            .ok_or_else(|| Error::protocol("upload response without Location header"))?;
        let request_url = resolve_url(&self.base()?, request);
        Ok(resolve_url(&request_url, location))
    }
}
