//! A manifest tree into the target: an index's children (each child's own tree first,
//! then the child), an image's blobs, before the manifest that references them. Blobs go
//! down the ladder: already there → mount from another repository of the same registry →
//! stream source→target with size and sha256 verified on the way. Where a registry
//! answers a mount from the repository itself (probed once), that one request replaces
//! the `HEAD` + `POST` of each new blob. Each child manifest and each blob is claimed
//! (see [`super::claims`]), so that jobs reaching the same one copy it once.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::claims::{BlobClaim, Claim, DigestKey};
use super::{Copier, Ctx, Push, by_digest};
use crate::digest::Digest;
use crate::end::Mount;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, Content, Manifest};

impl Copier<'_> {
    /// What a manifest references, before the manifest itself: an image's blobs, or an
    /// index's children, in parallel. `depth` counts the indexes from the top one down to
    /// `manifest`; more than [`manifest::MAX_INDEX_DEPTH`] fails, naming the index that
    /// nests too deep.
    pub(super) fn copy_tree(&self, ctx: &Ctx, manifest: &Manifest, depth: usize) -> Result<()> {
        let Content::Index { children } = manifest::content(manifest)? else {
            return self.copy_image(ctx, manifest);
        };
        if depth > manifest::MAX_INDEX_DEPTH {
            return Err(Error::protocol(format!(
                "index {} in {}/{} nests indexes more than {} levels deep",
                manifest.digest,
                ctx.source.registry(),
                ctx.source.name(),
                manifest::MAX_INDEX_DEPTH
            )));
        }
        let there = &ctx.target_repo;
        self.threads.for_each(&children, |(child, _size)| {
            match self
                .targets
                .children
                .claim(&(there.number, DigestKey::from(child)))
            {
                Claim::Done(()) => Ok(()),
                Claim::Owner(guard) => {
                    let check = self.options.push == Push::Changed && there.may_hold_children();
                    self.copy_child(ctx, child, check, depth)?;
                    guard.done(());
                    Ok(())
                }
            }
        })
    }

    /// One child manifest of an index at `depth`, owned by this job: `HEAD` when `check`
    /// says so, else (or when absent) its own tree and then the manifest itself.
    fn copy_child(&self, ctx: &Ctx, child: &Digest, check: bool, depth: usize) -> Result<()> {
        let (stats, child) = (ctx.stats(), by_digest(child));
        if check && ctx.target.head_manifest(&child, stats)?.is_some() {
            return Ok(());
        }
        let child_manifest = ctx.source.get_manifest(&child, stats)?;
        self.copy_tree(ctx, &child_manifest, depth + 1)?;
        ctx.target.put_manifest(&child, &child_manifest, stats)
    }

    /// Every blob of an image manifest, in parallel: first those nobody else is
    /// uploading, then (waiting for their uploads) the others, so that a shared layer
    /// another job is uploading holds this job up only once its own blobs are done.
    fn copy_image(&self, ctx: &Ctx, manifest: &Manifest) -> Result<()> {
        let Content::Image { blobs } = manifest::content(manifest)? else {
            return Err(Error::protocol(format!(
                "manifest {} is an index where an image was expected",
                manifest.digest
            )));
        };
        let busy = Mutex::new(Vec::new());
        self.threads.for_each(&blobs, |blob| -> Result<()> {
            if !self.copy_blob(ctx, blob, false)? {
                busy.lock().unwrap().push(blob.clone());
            }
            Ok(())
        })?;
        let busy = busy.into_inner().unwrap();
        self.threads
            .for_each(&busy, |blob| self.copy_blob(ctx, blob, true).map(drop))
    }

    /// The blob ladder: present → mount → stream. Without `wait`, a blob another job is
    /// uploading is left (`Ok(false)`); with it, that upload is waited for.
    fn copy_blob(&self, ctx: &Ctx, (digest, size): &(Digest, u64), wait: bool) -> Result<bool> {
        let target = ctx.target;
        match (self.ledger).claim(target.registry(), digest, target.name(), wait) {
            BlobClaim::Busy => return Ok(false),
            BlobClaim::Present => {
                ctx.tally.skipped.fetch_add(1, Ordering::Relaxed);
            }
            BlobClaim::MountFrom(from, guard) => {
                self.mount_or_stream(ctx, &from, digest, *size)?;
                guard.placed();
            }
            BlobClaim::Owner(guard) => {
                self.owner_copy(ctx, digest, *size)?;
                guard.placed();
            }
        }
        Ok(true)
    }

    /// A blob nobody in this run has put in the target registry yet.
    fn owner_copy(&self, ctx: &Ctx, digest: &Digest, size: u64) -> Result<()> {
        let (source, target, stats) = (ctx.source, ctx.target, ctx.stats());
        // Same registry, other repository: a mount needs no transfer at all.
        let same_registry =
            source.registry() == target.registry() && source.name() != target.name();
        if target.mounts_in_place() {
            if same_registry {
                return self.mount_or_stream(ctx, source.name(), digest, size);
            }
            // One request: 201 = the repository has it; 202 = the upload session for it.
            match target.mount_blob(digest, target.name(), stats) {
                Ok(Mount::Mounted) => {
                    ctx.tally.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Mount::Upload(url)) => return self.stream_blob(ctx, digest, size, Some(url)),
                Err(e) if e.kind == ErrorKind::Cancelled => return Err(e),
                Err(_) => {} // the ladder below, request by request
            }
        }
        if target.blob_exists(digest, stats)? {
            ctx.tally.skipped.fetch_add(1, Ordering::Relaxed);
            target.probe_self_mount(digest, stats);
            return Ok(());
        }
        if same_registry {
            return self.mount_or_stream(ctx, source.name(), digest, size);
        }
        self.stream_blob(ctx, digest, size, None)?;
        target.probe_self_mount(digest, stats);
        Ok(())
    }

    /// A cross-repository mount; when the registry opens an upload instead (no mount
    /// support, or it does not know the blob there) or refuses, a normal upload follows.
    fn mount_or_stream(&self, ctx: &Ctx, from: &str, digest: &Digest, size: u64) -> Result<()> {
        match ctx.target.mount_blob(digest, from, ctx.stats()) {
            Ok(Mount::Mounted) => {
                ctx.tally.mounted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Mount::Upload(url)) => self.stream_blob(ctx, digest, size, Some(url)),
            Err(e) if e.kind == ErrorKind::Cancelled => Err(e),
            Err(_) => self.stream_blob(ctx, digest, size, None),
        }
    }
}
