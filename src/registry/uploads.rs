//! Blob uploads (`/v2/<name>/blobs/uploads/…`): a session, then one monolithic `PUT` or
//! `PATCH` chunks (`Content-Range`) and a closing `PUT ?digest=`. Chunks when
//! `--chunk-size` says so, or once a registry refused a blob in one `PUT` (64 MiB each
//! then). A chunk that breaks on the way leaves the session open
//! ([`UploadError::Interrupted`]): the registry is asked how much it holds
//! ([`Repo::upload_offset`], a `GET` on the session and its `Range` header) and the upload
//! continues from there; a registry that cannot say starts the blob again.

use std::io::Read;
use std::sync::atomic::Ordering;

use super::{Repo, paths};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::http::{Body, Method, RequestStats};

/// Size of each `PATCH` once a registry refused a whole blob, unless `--chunk-size` says.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// An open upload session and how many bytes of the blob it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAt {
    /// Absolute URL, query (`_state`) kept.
    pub url: String,
    pub offset: u64,
}

impl UploadAt {
    /// A session that holds nothing yet.
    pub fn new(url: String) -> Self {
        UploadAt { url, offset: 0 }
    }
}

/// Why a blob upload failed: the registry would not take the whole body in one `PUT`
/// (try again in chunks), a chunk broke on the way (the session may hold part of the
/// blob), or anything else.
#[derive(Debug)]
pub enum UploadError {
    MonolithicRefused(Error),
    Interrupted { at: UploadAt, error: Error },
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
            UploadError::MonolithicRefused(e)
            | UploadError::Interrupted { error: e, .. }
            | UploadError::Failed(e) => e,
        }
    }
}

impl Repo<'_> {
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

    /// Uploads a blob's content, from byte `at.offset` on, into an open upload session:
    /// one monolithic `PUT`, or `PATCH` chunks and a closing `PUT`. One attempt. A refused
    /// monolithic `PUT` is [`UploadError::MonolithicRefused`]: the registry is then marked
    /// to take chunks, and the caller tries again with a fresh stream.
    pub fn upload_blob(
        &self,
        at: &UploadAt,
        digest: &Digest,
        content: &mut dyn Read,
        size: u64,
        stats: &RequestStats,
    ) -> std::result::Result<(), UploadError> {
        let what = || format!("uploading {digest} to {}", self.display());
        let chunked = self.prefers_chunks() || at.offset > 0;
        let (url, closing_body) = if chunked {
            let url = self.patch_chunks(at, digest, content, size, stats)?;
            (url, Body::Empty)
        } else {
            (at.url.clone(), Body::Stream(content, size))
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

    /// Sends the content from `at.offset` on as `PATCH` chunks; returns the URL for the
    /// closing `PUT`. A chunk that fails transiently is [`UploadError::Interrupted`] with
    /// the session as the last answer left it.
    fn patch_chunks(
        &self,
        at: &UploadAt,
        digest: &Digest,
        content: &mut dyn Read,
        size: u64,
        stats: &RequestStats,
    ) -> std::result::Result<String, UploadError> {
        let what = || format!("uploading {digest} to {}", self.display());
        let chunk = self.chunk_size();
        let mut url = at.url.clone();
        let mut offset = at.offset;
        while offset < size {
            let len = chunk.min(size - offset);
            let mut part = Read::take(&mut *content, len);
            let headers = [
                ("content-type", "application/octet-stream".to_string()),
                ("content-range", format!("{offset}-{}", offset + len - 1)),
            ];
            let body = Body::Stream(&mut part, len);
            let error = match self.request(Method::Patch, &url, &headers, body, stats) {
                Ok(response) if response.status == 202 => {
                    url = self.upload_location(&response, &url)?;
                    offset += len;
                    continue;
                }
                Ok(response) => response.describe_error(&what()),
                Err(e) => e.context(what()),
            };
            return Err(match error.retryable {
                true => UploadError::Interrupted {
                    at: UploadAt { url, offset },
                    error,
                },
                false => UploadError::Failed(error),
            });
        }
        // Reach the end of the stream so that its size and digest are verified now.
        let mut end = [0u8; 1];
        match content.read(&mut end) {
            Ok(0) => Ok(url),
            Ok(_) => Err(Error::digest(format!("{digest}: more data than its size")).into()),
            Err(e) => Err(Error::digest(format!("{digest}: {e}")).into()),
        }
    }

    /// How much of the blob the session `url` holds (`GET` on it, its `Range: 0-<last>`),
    /// and its URL from now on; `None` when the registry does not know the session (it
    /// cannot resume: the blob starts again). One attempt.
    pub fn upload_offset(&self, url: &str, stats: &RequestStats) -> Result<Option<UploadAt>> {
        let response = self.request(Method::Get, url, &[], Body::Empty, stats)?;
        match response.status {
            200 | 204 => {
                let offset = response.header("range").map_or(Ok(0), held_bytes)?;
                let url = match response.header("location") {
                    Some(_) => self.upload_location(&response, url)?,
                    None => url.to_string(),
                };
                Ok(Some(UploadAt { url, offset }))
            }
            400..=499 if response.status != 401 && response.status != 429 => Ok(None),
            _ => Err(response.describe_error(&format!(
                "asking {} how much of an upload it holds",
                self.display()
            ))),
        }
    }

    /// Whether uploads to this registry go in `PATCH` chunks.
    pub fn prefers_chunks(&self) -> bool {
        self.client.chunk_size.is_some() || self.endpoint.chunked.load(Ordering::Relaxed)
    }

    fn chunk_size(&self) -> u64 {
        self.client.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE)
    }
}

/// The bytes an upload's `Range: 0-<last>` (or `bytes=0-<last>`) says the registry holds.
/// `0-0` is read as none: distribution writes it for an empty session.
fn held_bytes(range: &str) -> Result<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let last = range
        .strip_prefix("0-")
        .and_then(|last| last.trim().parse::<u64>().ok())
        .ok_or_else(|| Error::protocol(format!("upload status with Range {range:?}")))?;
    Ok(if last == 0 { 0 } else { last + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_range_says_how_many_bytes_are_held() {
        assert_eq!(held_bytes("0-1048575").unwrap(), 1_048_576);
        assert_eq!(held_bytes("bytes=0-9").unwrap(), 10);
        assert_eq!(held_bytes("0-0").unwrap(), 0);
        assert!(held_bytes("5-9").is_err());
        assert!(held_bytes("0-x").is_err());
    }
}
