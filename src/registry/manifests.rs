//! Manifests (`/v2/<name>/manifests/<tag or digest>`): `HEAD` for what a tag names,
//! `GET` once per run through the manifest cache (checked against its digest, counted
//! against the pull quota), `PUT` with the registry's digest checked against ours. The
//! bytes are kept as served: a manifest is never re-serialised.

use std::sync::Arc;

use super::quota::Quota;
use super::{Repo, paths, tag_or_digest};
use crate::digest::Digest;
use crate::error::{Error, ErrorCode, Result, StatusClass};
use crate::http::{Body, Method, RequestStats, Response};
use crate::manifest::{self, Manifest, MediaType};
use crate::reference::TagOrDigest;

/// What `HEAD` on a manifest tells.
#[derive(Debug, Clone)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<MediaType>,
}

impl Repo<'_> {
    /// `HEAD` a manifest; `None` when it does not exist.
    pub fn head_manifest(
        &self,
        reference: &str,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        self.head_manifest_at(&tag_or_digest(reference)?, stats)
    }

    /// [`Repo::head_manifest`] for a reference already read.
    pub fn head_manifest_at(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        let response = self.head_request(reference, stats, true)?;
        self.head_answer(reference, response)
    }

    /// [`Repo::head_manifest_at`] in one attempt: a transient failure is an error, not
    /// retried (for a question asked ahead, whose asker asks again if it must).
    pub fn head_manifest_once(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        let response = self.head_request(reference, stats, false)?;
        self.head_answer(reference, response)
    }

    /// A manifest `HEAD`, within the retry loop or in one attempt.
    fn head_request(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
        retried: bool,
    ) -> Result<Response> {
        let path = paths::manifest(self.name(), reference);
        let headers = [("accept", manifest::ACCEPT.to_string())];
        if retried {
            return self.retrying_request(Method::Head, &path, &headers, stats);
        }
        let response = self.request(Method::Head, &path, &headers, Body::Empty, stats)?;
        if StatusClass::of(response.status) == StatusClass::Transient {
            return Err(response.describe_error(&format!("checking {}", self.id.at(reference))));
        }
        Ok(response)
    }

    /// A manifest `HEAD`'s answer: its digest and media type, `None` for a 404.
    fn head_answer(
        &self,
        reference: &TagOrDigest,
        response: Response,
    ) -> Result<Option<ManifestHead>> {
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
            _ => Err(response.describe_error(&format!("checking {}", self.id.at(reference)))),
        }
    }

    /// A manifest with its bytes as served; when `reference` is a digest the bytes must
    /// hash to it. Fetched once per run: later calls for the same digest, or for a tag
    /// already fetched (whose digest is then known), are answered from memory.
    pub fn get_manifest(&self, reference: &str, stats: &RequestStats) -> Result<Arc<Manifest>> {
        self.manifest_at(&tag_or_digest(reference)?, stats)
    }

    /// [`Repo::get_manifest`] for a reference already read.
    pub fn manifest_at(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Arc<Manifest>> {
        let manifests = &self.client.manifests;
        let key = |digest: Digest| (self.id.clone(), digest);
        let tag = match reference {
            TagOrDigest::Digest(digest) => {
                return manifests.get(key(digest.clone()), || {
                    self.fetch_manifest(reference, stats)
                });
            }
            TagOrDigest::Tag(tag) => (self.id.clone(), tag.clone()),
        };
        if let Some(digest) = manifests.digest_of_tag(&tag) {
            let by_digest = TagOrDigest::Digest(digest.clone());
            return manifests.get(key(digest), || self.fetch_manifest(&by_digest, stats));
        }
        let manifest = self.fetch_manifest(reference, stats)?;
        Ok(manifests.keep(key(manifest.digest.clone()), tag, manifest))
    }

    fn fetch_manifest(&self, reference: &TagOrDigest, stats: &RequestStats) -> Result<Manifest> {
        let path = paths::manifest(self.name(), reference);
        let headers = [("accept", manifest::ACCEPT.to_string())];
        let what = format!("fetching manifest {}", self.id.at(reference));
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
        if let Some(expected) = reference.digest()
            && *expected != digest
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
        self.put_manifest_at(&tag_or_digest(reference)?, manifest, stats)
    }

    /// [`Repo::put_manifest`] for a reference already read.
    pub fn put_manifest_at(
        &self,
        reference: &TagOrDigest,
        manifest: &Manifest,
        stats: &RequestStats,
    ) -> Result<()> {
        let path = paths::manifest(self.name(), reference);
        let headers = [("content-type", manifest.media_type.to_string())];
        let what = format!("pushing manifest {}", self.id.at(reference));
        self.client.transport.retrying(stats, || {
            let response = self.request(
                Method::Put,
                &path,
                &headers,
                Body::Bytes(&manifest.bytes),
                stats,
            )?;
            if response.status != 201 && response.status != 200 {
                let error = reference_read_while_written(response.describe_error(&what));
                return Err(self.missing_container(immutable_tag(error)));
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
}

/// A manifest `PUT` answered `MANIFEST_BLOB_UNKNOWN`, when the copy pushes a manifest only
/// after everything it references is in place: the registry read a reference while it was
/// being written — distribution rewrites a manifest's link in place (truncated, then
/// written) when the same manifest is pushed again, as another job does under another tag,
/// and a registry on eventually consistent storage may not see a fresh blob at once. Such
/// an answer is retried (within the retry budget); one that stays is reported as it came.
fn reference_read_while_written(error: Error) -> Error {
    if error.status != Some(400) || !error.has_code(&ErrorCode::ManifestBlobUnknown) {
        return error;
    }
    Error {
        retryable: true,
        ..error
    }
}

/// A manifest `PUT` refused because the tag is immutable in the target, as Harbor answers
/// it (`412 PRECONDITION`: "… configured as immutable") and ECR (`TAG_INVALID`: "… cannot
/// be overwritten because the repository is immutable"): kind
/// [`ErrorKind::Immutable`](crate::error::ErrorKind::Immutable), with a hint.
fn immutable_tag(error: Error) -> Error {
    let harbor = error.status == Some(412) && error.has_code(&ErrorCode::Precondition);
    if !harbor && !error.has_code(&ErrorCode::TagInvalid) {
        return error;
    }
    Error {
        kind: crate::error::ErrorKind::Immutable,
        message: format!("{} ({})", error.message, crate::hints::immutable_tag()),
        ..error
    }
}

/// What a `DELETE` of a manifest came to.
#[derive(Debug)]
pub enum Deletion {
    /// `202 Accepted` (or another 2xx).
    Deleted,
    /// `404`: nothing by that name any more.
    Absent,
    /// The registry does not delete this way: `405`, `UNSUPPORTED` (distribution with
    /// deletes disabled), or a `400` for a tag (distribution 2.8 reads it as a digest:
    /// `DIGEST_INVALID`; the spec lets registries delete by digest only).
    Unsupported(Error),
}

impl Repo<'_> {
    /// `DELETE /v2/<name>/manifests/<tag>`: removes the tag alone, where the registry
    /// deletes tags. Once the registry showed it does not, later calls answer
    /// [`Deletion::Unsupported`] without a request.
    pub fn delete_tag(&self, tag: &str, stats: &RequestStats) -> Result<Deletion> {
        let memo = &self.endpoint.tag_deletes;
        if memo.get() == super::memo::Capability::No {
            return Ok(Deletion::Unsupported(Error::protocol(format!(
                "{} does not delete tags",
                self.registry()
            ))));
        }
        let deletion = self.delete_manifest_at(&tag_or_digest(tag)?, stats)?;
        match deletion {
            Deletion::Deleted => memo.settle(true),
            Deletion::Unsupported(_) => memo.settle(false),
            Deletion::Absent => {}
        }
        Ok(deletion)
    }

    /// `DELETE /v2/<name>/manifests/<digest>`: removes the manifest and, on distribution,
    /// every tag that names it.
    pub fn delete_manifest(&self, digest: &Digest, stats: &RequestStats) -> Result<Deletion> {
        self.delete_manifest_at(&TagOrDigest::Digest(digest.clone()), stats)
    }

    fn delete_manifest_at(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Deletion> {
        let path = paths::manifest(self.name(), reference);
        let response = self.retrying_request(Method::Delete, &path, &[], stats)?;
        let what = format!("deleting {}", self.id.at(reference));
        match response.status {
            200..=299 => Ok(Deletion::Deleted),
            404 => {
                response.discard();
                Ok(Deletion::Absent)
            }
            status => {
                let error = response.describe_error(&what);
                // A tag where the registry wants a digest: distribution 2.8 answers
                // `400 DIGEST_INVALID`, others a bare 400.
                let by_tag_refused = reference.digest().is_none() && status == 400;
                let unsupported =
                    status == 405 || error.has_code(&ErrorCode::Unsupported) || by_tag_refused;
                if unsupported {
                    Ok(Deletion::Unsupported(error))
                } else {
                    Err(error)
                }
            }
        }
    }
}
