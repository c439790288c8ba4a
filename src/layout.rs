//! An OCI image layout (image-spec `image-layout.md`: `oci-layout`, `index.json`,
//! `blobs/<algorithm>/<hex>`) as an end of the copy, for the air gap: `export` copies into
//! one, `import` copies out of one, with the copy engine unchanged (regclient's `ocidir`
//! beside its `reg`). One layout holds every image of a bundle, blobs stored once and byte
//! for byte; an image is named by its full source reference in `index.json`
//! (`org.opencontainers.image.ref.name`), so the end opened for registry `r` and
//! repository `p` is the images named `r/p:<tag>`.
//!
//! This module writes files (blobs, `index.json`, the sidecar): a layout is a store of
//! images as a registry is, and writing it is the job of this end. The dependency test
//! allows it here and nowhere else below `commands`.

pub mod archive;
mod blobs;
mod check;
mod index;
pub mod sidecar;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Digest;
use crate::end::{Access, End, Ends, ManifestHead, Mount, ReferrerListing, UploadAt, UploadError};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{BlobBody, RequestStats};
use crate::manifest::{self, MAX_MANIFEST_BYTES, Manifest, MediaType};
use crate::reference::TagOrDigest;
use blobs::Blobs;
pub use index::{Entry, REF_NAME};
use index::{IndexFile, IndexPaths};
pub use sidecar::{Base, BundleImage, Sidecar};

/// How a layout is named on the command line: `oci:DIR`.
pub const SCHEME: &str = "oci:";

/// The `oci-layout` file's content.
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// How a bundle is named on the command line (`--to`, `--from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundlePath {
    /// `oci:DIR`: an OCI image layout directory.
    Directory(PathBuf),
    /// `oci-archive:FILE.tar`: a layout packed as one tar.
    Archive(PathBuf),
}

/// The prefix of an archive bundle.
pub const ARCHIVE_SCHEME: &str = "oci-archive:";

impl BundlePath {
    /// `oci:DIR` or `oci-archive:FILE`, or why the value is neither.
    pub fn parse(value: &str) -> std::result::Result<BundlePath, String> {
        let (path, kind): (_, fn(PathBuf) -> BundlePath) =
            if let Some(file) = value.strip_prefix(ARCHIVE_SCHEME) {
                (file, BundlePath::Archive)
            } else if let Some(dir) = value.strip_prefix(SCHEME) {
                (dir, BundlePath::Directory)
            } else {
                return Err(format!(
                    "{value:?}: expected oci:DIR (an OCI image layout) or oci-archive:FILE.tar"
                ));
            };
        if path.is_empty() {
            return Err(format!(
                "{value:?}: needs a path, e.g. oci:bundle or oci-archive:bundle.tar"
            ));
        }
        Ok(kind(PathBuf::from(path)))
    }
}

/// An OCI image layout on disk.
pub struct Layout {
    root: PathBuf,
    /// `oci:<root>`: where its ends live, as a registry host names a registry's.
    location: String,
    blobs: Blobs,
    index: IndexPaths,
    /// With `export --base`: the blobs the base bundle carried, by source repository
    /// (`registry/repository`); they count as present and are left out.
    base: HashMap<String, HashSet<Digest>>,
    /// For a layout read inside an archive: its sidecar, read with the archive's index.
    packed_sidecar: Option<Option<Sidecar>>,
}

impl Layout {
    /// The layout at `root` as it is (for a dry run: nothing is made; a missing
    /// `index.json` reads as empty).
    pub fn at(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
            location: format!("{SCHEME}{}", root.display()),
            blobs: Blobs::new(root),
            index: IndexPaths::new(root),
            base: HashMap::new(),
            packed_sidecar: None,
        }
    }

    /// The layout at `root`, made (directories, `oci-layout`, an empty `index.json`)
    /// where it is missing; an existing layout is added to.
    pub fn create(root: &Path) -> Result<Layout> {
        let layout = Layout::at(root);
        let fail = |e: std::io::Error| Error::protocol(format!("{}: {e}", root.display()));
        std::fs::create_dir_all(root.join("blobs").join("sha256")).map_err(fail)?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            std::fs::write(&marker, OCI_LAYOUT).map_err(fail)?;
        }
        layout.index.create()?;
        Ok(layout)
    }

    /// The layout at `root`, which must be one (`oci-layout` and `index.json`).
    pub fn open(root: &Path) -> Result<Layout> {
        for file in ["oci-layout", "index.json"] {
            if !root.join(file).is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{}: not an OCI image layout (no {file})", root.display()),
                ));
            }
        }
        let layout = Layout::at(root);
        IndexFile::read(&layout.index.index)?;
        Ok(layout)
    }

    /// Leaves out the blobs a base bundle carried (`export --base`): by source
    /// repository, the blobs its images used.
    pub fn with_base(mut self, base: HashMap<String, HashSet<Digest>>) -> Layout {
        self.base = base;
        self
    }

    /// The bundle's sidecar, when it has one.
    pub fn sidecar(&self) -> Result<Option<Sidecar>> {
        match &self.packed_sidecar {
            Some(sidecar) => Ok(sidecar.clone()),
            None => Sidecar::read(&self.root),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `oci:<dir>`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Every named image, as `index.json` lists it.
    pub fn images(&self) -> Result<Vec<Entry>> {
        self.index.entries()
    }

    fn entry(&self, name: &str) -> Result<Option<Entry>> {
        self.index.get(name)
    }

    /// Names `manifest` (already stored) `name` in `index.json`.
    pub fn name_manifest(&self, name: &str, manifest: &Manifest) -> Result<()> {
        self.index.set(Entry {
            name: name.to_string(),
            digest: manifest.digest.clone(),
            media_type: Some(manifest.media_type.as_str().to_string()),
            size: manifest.bytes.len() as u64,
        })
    }

    /// Writes the names still waiting to `index.json` (names are written in batches).
    pub fn flush(&self) -> Result<()> {
        self.index.flush()
    }

    /// Names the stored manifest `digest` `name` in `index.json`.
    pub fn name_stored(&self, name: &str, digest: &Digest) -> Result<()> {
        self.name_manifest(name, &self.manifest(digest, None)?)
    }

    /// Adds to the sidecar (read and written under the index's lock, replaced whole).
    pub fn record(&self, update: impl FnOnce(&mut Sidecar)) -> Result<()> {
        self.index.flush()?;
        self.index.locked(|| {
            let mut sidecar = Sidecar::read(&self.root)?.unwrap_or_default();
            update(&mut sidecar);
            let index = std::fs::read(&self.index.index)
                .map_err(|e| Error::protocol(format!("{}: {e}", self.index.index.display())))?;
            sidecar.id = Digest::sha256_of(&index).to_string();
            let bytes =
                serde_json::to_vec_pretty(&sidecar).map_err(|e| Error::protocol(e.to_string()))?;
            let path = self.root.join(sidecar::FILE_NAME);
            let temporary =
                self.root
                    .join(format!("{}.{}.tmp", sidecar::FILE_NAME, std::process::id()));
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|e| Error::protocol(format!("writing {}: {e}", path.display())))
        })
    }

    /// A stored manifest, checked against its digest.
    fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> Result<Manifest> {
        let bytes = self.blobs.read_verified(digest, MAX_MANIFEST_BYTES)?;
        let media_type = manifest::media_type_of(&bytes, media_type)?;
        Ok(Manifest {
            bytes,
            media_type,
            digest: digest.clone(),
        })
    }
}

/// Names still waiting are written when the layout is dropped (best effort: an export
/// flushes them itself, and says when it cannot).
impl Drop for Layout {
    fn drop(&mut self) {
        let _ = self.index.flush();
    }
}

impl Ends for Layout {
    fn open(&self, location: &str, repository: &str, _access: Access) -> Box<dyn End + '_> {
        Box::new(LayoutRepo {
            layout: self,
            name: format!("{location}/{repository}"),
        })
    }
}

/// The images of a layout named `<name>:<tag>` (`name` is a source's registry and
/// repository).
struct LayoutRepo<'l> {
    layout: &'l Layout,
    name: String,
}

impl LayoutRepo<'_> {
    fn ref_name(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name)
    }

    fn in_base(&self, digest: &Digest) -> bool {
        (self.layout.base)
            .get(&self.name)
            .is_some_and(|blobs| blobs.contains(digest))
    }

    fn tagged(&self, tag: &str) -> Result<Option<Entry>> {
        self.layout.entry(&self.ref_name(tag))
    }

    fn not_found(&self, reference: &TagOrDigest) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "{}{}{} is not in {}",
                self.name,
                reference.separator(),
                reference.as_str(),
                self.layout.location
            ),
        )
    }
}

impl End for LayoutRepo<'_> {
    fn registry(&self) -> &str {
        &self.layout.location
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn list_tags(&self, _stats: &RequestStats) -> Result<Option<Vec<String>>> {
        let tags = (self.layout.index.tags(&self.name)?.into_iter())
            .filter(|tag| crate::reference::is_valid_tag(tag))
            .collect();
        Ok(Some(tags))
    }

    fn head_manifest(
        &self,
        reference: &TagOrDigest,
        _stats: &RequestStats,
    ) -> Result<Option<ManifestHead>> {
        match reference {
            TagOrDigest::Tag(tag) => Ok(self.tagged(tag.as_str())?.map(|e| ManifestHead {
                media_type: e.media_type.as_deref().and_then(MediaType::parse),
                digest: Some(e.digest),
            })),
            TagOrDigest::Digest(digest) if self.layout.blobs.exists(digest) => {
                let manifest = self.layout.manifest(digest, None)?;
                Ok(Some(ManifestHead {
                    digest: Some(manifest.digest),
                    media_type: Some(manifest.media_type),
                }))
            }
            TagOrDigest::Digest(_) => Ok(None),
        }
    }

    fn get_manifest(
        &self,
        reference: &TagOrDigest,
        _stats: &RequestStats,
    ) -> Result<Arc<Manifest>> {
        let (digest, media_type) = match reference {
            TagOrDigest::Tag(tag) => {
                let entry = self
                    .tagged(tag.as_str())?
                    .ok_or_else(|| self.not_found(reference))?;
                (entry.digest, entry.media_type)
            }
            TagOrDigest::Digest(digest) => (digest.clone(), None),
        };
        let manifest = self
            .layout
            .manifest(&digest, media_type.as_deref())
            .map_err(|e| match e.kind {
                ErrorKind::NotFound => self.not_found(reference),
                _ => e,
            })?;
        Ok(Arc::new(manifest))
    }

    fn put_manifest(
        &self,
        reference: &TagOrDigest,
        manifest: &Manifest,
        _stats: &RequestStats,
    ) -> Result<()> {
        if !self.layout.blobs.exists(&manifest.digest) {
            let size = manifest.bytes.len() as u64;
            (self.layout.blobs).write(&manifest.digest, size, &mut manifest.bytes.as_slice())?;
        }
        match reference {
            TagOrDigest::Tag(tag) => self
                .layout
                .name_manifest(&self.ref_name(tag.as_str()), manifest),
            TagOrDigest::Digest(_) => Ok(()),
        }
    }

    /// The referrers tag schema inside the layout: the `sha256-<hex>` index of the
    /// subject, tagged as a registry without the referrers API keeps it.
    fn referrers(
        &self,
        subject: &Digest,
        _tags: Option<&HashSet<String>>,
        stats: &RequestStats,
    ) -> Result<ReferrerListing> {
        let tag = TagOrDigest::parse(&manifest::fallback_tag(subject))
            .map_err(|e| Error::protocol(e.to_string()))?;
        if self.tagged(tag.as_str())?.is_none() {
            return Ok(ReferrerListing::default());
        }
        let index = self.get_manifest(&tag, stats)?;
        Ok(ReferrerListing {
            api: false,
            referrers: manifest::referrers_of(&index.bytes)?,
            fallback_index: Some(index),
        })
    }

    /// Here, or (with a base) carried by the base bundle for this repository.
    fn blob_exists(&self, digest: &Digest, _stats: &RequestStats) -> Result<bool> {
        Ok(self.layout.blobs.exists(digest) || self.in_base(digest))
    }

    fn get_blob(&self, digest: &Digest, _stats: &RequestStats) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.layout.blobs.open(digest)?))
    }

    /// The blob's file from `offset` on.
    fn get_blob_from(
        &self,
        digest: &Digest,
        offset: u64,
        _size: u64,
        _stats: &RequestStats,
    ) -> Result<BlobBody<'_>> {
        Ok(BlobBody {
            reader: self.layout.blobs.open_from(digest, offset)?,
            starts_at: offset,
        })
    }

    /// A layout never opens an upload (a blob is written whole, `put_blob` is never given
    /// one).
    fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: &mut dyn Read,
        _upload: Option<UploadAt>,
        _stats: &RequestStats,
    ) -> std::result::Result<(), UploadError> {
        Ok(self.layout.blobs.write(digest, size, body)?)
    }

    /// A blob that broke while written is written again from its start.
    fn upload_offset(&self, _upload: &UploadAt, _stats: &RequestStats) -> Result<Option<UploadAt>> {
        Ok(None)
    }

    /// Every image of a layout shares its blobs: a blob another image brought is here.
    fn mount_blob(&self, digest: &Digest, _from: &str, _stats: &RequestStats) -> Result<Mount> {
        if self.layout.blobs.exists(digest) || self.in_base(digest) {
            Ok(Mount::Mounted)
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                format!("blob {digest} is not in {}", self.layout.location),
            ))
        }
    }
}
