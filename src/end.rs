//! The seam between the copy engine and what it copies from and to. The copy ladder (skip,
//! mount, stream and verify, push the manifest last) talks to its two ends only through
//! [`End`], so a second kind of end — an OCI image layout, for the air gap — is a second
//! implementation, not a second engine (regclient's `scheme` with `reg` and `ocidir`,
//! containers/image's transports). A repository of a registry is the first: [`Ends`] for
//! the registry [`Client`] opens them.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::Result;
use crate::http::{BlobBody, RequestStats};
use crate::manifest::Manifest;
use crate::reference::TagOrDigest;
pub use crate::registry::{
    Access, ManifestHead, Mount, PullQuota, ReferrerListing, UploadAt, UploadError,
};
use crate::registry::{Client, Repo};

/// Opens the ends of a copy, by location (a registry host, or later a layout) and
/// repository.
pub trait Ends: Sync {
    fn open(&self, location: &str, repository: &str, access: Access) -> Box<dyn End + '_>;
}

/// One repository the copy reads from or writes to.
pub trait End: Sync {
    /// Where the repository lives (a registry host): blobs may be shared within it.
    fn registry(&self) -> &str;
    /// The repository.
    fn name(&self) -> &str;
    /// Every tag, or `None` when the repository does not exist (yet).
    fn list_tags(&self, stats: &RequestStats) -> Result<Option<Vec<String>>>;
    /// A manifest's digest and media type, or `None` when it is absent.
    fn head_manifest(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>>;
    /// [`End::head_manifest`] in one attempt, for a question asked ahead of need: whoever
    /// needs the answer asks again (within its retries) if this one failed.
    fn head_manifest_once(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        self.head_manifest(reference, stats)
    }
    /// A manifest with its bytes as stored; by digest, they hash to it.
    fn get_manifest(&self, reference: &TagOrDigest, stats: &RequestStats) -> Result<Arc<Manifest>>;
    /// Stores a manifest under a tag or its digest.
    fn put_manifest(
        &self,
        reference: &TagOrDigest,
        manifest: &Manifest,
        stats: &RequestStats,
    ) -> Result<()>;
    /// What refers to `subject` (`tags`: the repository's tags, when listed, to spare
    /// asking for fallback tags that are absent).
    fn referrers(
        &self,
        subject: &Digest,
        tags: Option<&HashSet<String>>,
        stats: &RequestStats,
    ) -> Result<ReferrerListing>;
    fn blob_exists(&self, digest: &Digest, stats: &RequestStats) -> Result<bool>;
    /// A blob's bytes, unverified (the copy verifies them while they stream).
    fn get_blob(&self, digest: &Digest, stats: &RequestStats) -> Result<Box<dyn Read + '_>>;
    /// A blob of `size` bytes from byte `offset` on, to continue a transfer under way (a
    /// broken read, an upload resumed at an offset); an end that cannot start there gives
    /// the whole (see [`BlobBody::starts_at`]).
    fn get_blob_from(
        &self,
        digest: &Digest,
        offset: u64,
        size: u64,
        stats: &RequestStats,
    ) -> Result<BlobBody<'_>>;
    /// Stores a blob of `size` bytes read from `body`, into `upload` when one is open (a
    /// mount opened it, or an interrupted upload holds the bytes before its offset:
    /// `body` then starts at that offset).
    fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: &mut dyn Read,
        upload: Option<UploadAt>,
        stats: &RequestStats,
    ) -> std::result::Result<(), UploadError>;
    /// Where an interrupted upload stands, or `None` when it cannot be continued.
    fn upload_offset(&self, upload: &UploadAt, stats: &RequestStats) -> Result<Option<UploadAt>>;
    /// Makes a blob that repository `from` of the same registry holds available here.
    fn mount_blob(&self, digest: &Digest, from: &str, stats: &RequestStats) -> Result<Mount>;
    /// Whether a mount from this repository itself tells whether it holds a blob (one
    /// request instead of a `HEAD` and an upload).
    fn mounts_in_place(&self) -> bool {
        false
    }
    /// Learns, once per registry, whether [`End::mounts_in_place`] holds, with a blob the
    /// repository is known to hold.
    fn probe_self_mount(&self, _digest: &Digest, _stats: &RequestStats) {}
    /// What the end has said of a pull quota.
    fn pull_quota(&self) -> PullQuota {
        PullQuota::Unlimited
    }
}

impl Ends for Client {
    fn open(&self, location: &str, repository: &str, access: Access) -> Box<dyn End + '_> {
        Box::new(self.repo(location, repository, access))
    }
}

impl End for Repo<'_> {
    fn registry(&self) -> &str {
        Repo::registry(self)
    }

    fn name(&self) -> &str {
        Repo::name(self)
    }

    fn list_tags(&self, stats: &RequestStats) -> Result<Option<Vec<String>>> {
        self.list_tags_if_any(stats)
    }

    fn head_manifest(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        self.head_manifest_at(reference, stats)
    }

    fn head_manifest_once(
        &self,
        reference: &TagOrDigest,
        stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        Repo::head_manifest_once(self, reference, stats)
    }

    fn get_manifest(&self, reference: &TagOrDigest, stats: &RequestStats) -> Result<Arc<Manifest>> {
        self.manifest_at(reference, stats)
    }

    fn put_manifest(
        &self,
        reference: &TagOrDigest,
        manifest: &Manifest,
        stats: &RequestStats,
    ) -> Result<()> {
        self.put_manifest_at(reference, manifest, stats)
    }

    fn referrers(
        &self,
        subject: &Digest,
        tags: Option<&HashSet<String>>,
        stats: &RequestStats,
    ) -> Result<ReferrerListing> {
        Repo::referrers(self, subject, tags, stats)
    }

    fn blob_exists(&self, digest: &Digest, stats: &RequestStats) -> Result<bool> {
        Repo::blob_exists(self, digest, stats)
    }

    /// A config read while planning (tag filters) is not fetched again.
    fn get_blob(&self, digest: &Digest, stats: &RequestStats) -> Result<Box<dyn Read + '_>> {
        Ok(match self.held_blob(digest) {
            Some(bytes) => Box::new(std::io::Cursor::new(bytes.to_vec())),
            None => Box::new(Repo::get_blob(self, digest, stats)?.into_reader()),
        })
    }

    fn get_blob_from(
        &self,
        digest: &Digest,
        offset: u64,
        size: u64,
        stats: &RequestStats,
    ) -> Result<BlobBody<'_>> {
        match self.held_blob(digest) {
            Some(bytes) => {
                let mut held = std::io::Cursor::new(bytes.to_vec());
                held.set_position(offset);
                Ok(BlobBody {
                    reader: Box::new(held),
                    starts_at: offset,
                })
            }
            None => Repo::get_blob_from(self, digest, offset, size, stats),
        }
    }

    fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: &mut dyn Read,
        upload: Option<UploadAt>,
        stats: &RequestStats,
    ) -> std::result::Result<(), UploadError> {
        let at = match upload {
            Some(at) => at,
            None => UploadAt::new(self.start_upload(stats)?),
        };
        self.upload_blob(&at, digest, body, size, stats)
    }

    fn upload_offset(&self, upload: &UploadAt, stats: &RequestStats) -> Result<Option<UploadAt>> {
        Repo::upload_offset(self, &upload.url, stats)
    }

    fn mount_blob(&self, digest: &Digest, from: &str, stats: &RequestStats) -> Result<Mount> {
        Repo::mount_blob(self, digest, from, stats)
    }

    fn mounts_in_place(&self) -> bool {
        Repo::mounts_in_place(self)
    }

    fn probe_self_mount(&self, digest: &Digest, stats: &RequestStats) {
        Repo::probe_self_mount(self, digest, stats)
    }

    fn pull_quota(&self) -> PullQuota {
        Repo::pull_quota(self)
    }
}
