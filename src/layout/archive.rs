//! `oci-archive:FILE.tar`: a layout packed as one tar, as containers/image's
//! `oci-archive:` transport reads it. The small files come first — `oci-layout`,
//! `index.json`, the sidecar, then every manifest reachable from the index — and the
//! config and layer blobs after them, so that a reader of a stream knows the images
//! before their layers arrive. Entries over 8 GiB carry their size in a PAX header (the
//! ustar size field holds 8 GiB − 1 at most). `import` reads an archive where it is: the
//! small files into memory, the blobs at their offsets (nothing unpacked, so a read-only
//! medium works and no second copy needs room); only the names a layout has are taken.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use tar::{EntryType, Header};

use super::Layout;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{self, Content};

/// The largest size the ustar header's 11 octal digits hold: 8 GiB − 1.
pub(super) const USTAR_MAX_SIZE: u64 = 0o777_7777_7777;

/// The header of an entry of `size` bytes at `path`, and the PAX records that must
/// precede it (a `size` record when the ustar field cannot hold the size).
pub(super) fn entry_header(path: &str, size: u64) -> io::Result<(Header, Vec<(String, String)>)> {
    let mut header = Header::new_ustar();
    header.set_path(path)?;
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(EntryType::Regular);
    let mut pax = Vec::new();
    if size > USTAR_MAX_SIZE {
        pax.push(("size".to_string(), size.to_string()));
        header.set_size(0);
    } else {
        header.set_size(size);
    }
    header.set_cksum();
    Ok((header, pax))
}

/// Packs the layout into `archive` (written beside it, then renamed over it).
pub fn pack(layout: &Layout, archive: &Path) -> Result<()> {
    let temporary = archive.with_extension(format!("partial-{}", std::process::id()));
    let packed = (|| {
        let file = fs::File::create(&temporary)?;
        let mut builder = tar::Builder::new(io::BufWriter::new(file));
        for name in ["oci-layout", "index.json", super::sidecar::FILE_NAME] {
            let path = layout.root.join(name);
            if path.is_file() {
                append_file(&mut builder, name, &path)?;
            }
        }
        let manifests = layout.manifest_digests().map_err(io::Error::other)?;
        for digest in &manifests {
            append_blob(&mut builder, layout, digest)?;
        }
        for digest in layout.blob_digests()? {
            if !manifests.contains(&digest) {
                append_blob(&mut builder, layout, &digest)?;
            }
        }
        let mut out = builder.into_inner()?;
        out.flush()?;
        out.get_ref().sync_all()?;
        fs::rename(&temporary, archive)
    })();
    packed.map_err(|e: io::Error| {
        let _ = fs::remove_file(&temporary);
        Error::protocol(format!("writing {}: {e}", archive.display()))
    })
}

fn append_blob<W: Write>(
    builder: &mut tar::Builder<W>,
    layout: &Layout,
    digest: &Digest,
) -> io::Result<()> {
    let (algorithm, hex) = digest.as_str().split_once(':').unwrap_or_default();
    append_file(
        builder,
        &format!("blobs/{algorithm}/{hex}"),
        &layout.blobs.path(digest),
    )
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, name: &str, path: &Path) -> io::Result<()> {
    let file = fs::File::open(path)?;
    let size = file.metadata()?.len();
    let (header, pax) = entry_header(name, size)?;
    if !pax.is_empty() {
        builder.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))?;
    }
    builder.append(&header, file.take(size))
}

impl Layout {
    /// Every manifest reachable from `index.json` (indexes, their children, referrers
    /// listed in fallback indexes), parents before children; those absent are skipped.
    fn manifest_digests(&self) -> Result<Vec<Digest>> {
        let index = super::IndexFile::read(&self.index.index)?;
        let mut stack: Vec<Digest> = index
            .manifests
            .iter()
            .filter_map(|m| Digest::parse(m.get("digest")?.as_str()?).ok())
            .rev()
            .collect();
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        while let Some(digest) = stack.pop() {
            if !seen.insert(digest.clone()) || !self.blobs.exists(&digest) {
                continue;
            }
            let manifest = self.manifest(&digest, None)?;
            if let Content::Index { children } = manifest::content(&manifest)? {
                stack.extend(children.into_iter().rev().map(|(child, _)| child));
            }
            order.push(digest);
        }
        Ok(order)
    }

    /// Every stored blob, sorted (temporary files left out).
    fn blob_digests(&self) -> io::Result<Vec<Digest>> {
        let mut digests = Vec::new();
        let root = self.root.join("blobs");
        for algorithm in fs::read_dir(&root)? {
            let algorithm = algorithm?;
            let name = algorithm.file_name().to_string_lossy().into_owned();
            for blob in fs::read_dir(algorithm.path())? {
                let hex = blob?.file_name().to_string_lossy().into_owned();
                if let Ok(digest) = Digest::parse(&format!("{name}:{hex}")) {
                    digests.push(digest);
                }
            }
        }
        digests.sort();
        Ok(digests)
    }
}

/// Bound on the small files of an archive (`oci-layout`, `index.json`, the sidecar), read
/// into memory.
const MAX_SMALL_FILE: u64 = 256 * 1024 * 1024;

impl Layout {
    /// The layout inside `archive`, read where it is (nothing is unpacked): `oci-layout`,
    /// `index.json` and the sidecar into memory, each blob by its offset in the archive.
    /// Only the names a layout holds are taken; any other entry is refused.
    pub fn open_archive(archive: &Path) -> Result<Layout> {
        let fail = |e: io::Error| Error::protocol(format!("{}: {e}", archive.display()));
        let file = fs::File::open(archive).map_err(fail)?;
        let mut tar = tar::Archive::new(file);
        let mut small: HashMap<String, Vec<u8>> = HashMap::new();
        let mut at = HashMap::new();
        for entry in tar.entries_with_seek().map_err(fail)? {
            let mut entry = entry.map_err(fail)?;
            let path = entry.path().map_err(fail)?.into_owned();
            if entry.header().entry_type().is_dir() {
                continue;
            }
            if !is_layout_name(&path) || !entry.header().entry_type().is_file() {
                return Err(Error::protocol(format!(
                    "{}: {} is not part of an OCI image layout",
                    archive.display(),
                    path.display()
                )));
            }
            match blob_of(&path) {
                Some(digest) => {
                    at.insert(digest, (entry.raw_file_position(), entry.size()));
                }
                None => {
                    let mut bytes = Vec::new();
                    (&mut entry)
                        .take(MAX_SMALL_FILE)
                        .read_to_end(&mut bytes)
                        .map_err(fail)?;
                    small.insert(path.display().to_string(), bytes);
                }
            }
        }
        Layout::packed(archive, small, at)
    }

    fn packed(
        archive: &Path,
        small: HashMap<String, Vec<u8>>,
        at: HashMap<Digest, (u64, u64)>,
    ) -> Result<Layout> {
        let named = |name: &str| small.get(name).or_else(|| small.get(&format!("./{name}")));
        for required in ["oci-layout", "index.json"] {
            if named(required).is_none() {
                return Err(Error::new(
                    crate::error::ErrorKind::NotFound,
                    format!(
                        "{}: not an OCI image layout (no {required})",
                        archive.display()
                    ),
                ));
            }
        }
        let what = format!("{}: index.json", archive.display());
        let index = super::IndexFile::parse(named("index.json").expect("checked"), &what)?;
        let sidecar = named(super::sidecar::FILE_NAME)
            .map(|bytes| serde_json::from_slice(bytes))
            .transpose()
            .map_err(|e| {
                Error::protocol(format!(
                    "{}: {}: {e}",
                    archive.display(),
                    super::sidecar::FILE_NAME
                ))
            })?;
        let mut layout = Layout::at(archive);
        layout.location = format!("{}{}", super::ARCHIVE_SCHEME, archive.display());
        layout.blobs = super::Blobs::packed(archive, at);
        layout.index.known(&index);
        layout.packed_sidecar = Some(sidecar);
        Ok(layout)
    }
}

/// The digest a `blobs/<algorithm>/<hex>` path names.
fn blob_of(path: &Path) -> Option<Digest> {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        ["blobs", algorithm, hex] => Digest::parse(&format!("{algorithm}:{hex}")).ok(),
        _ => None,
    }
}

/// `oci-layout`, `index.json`, the sidecar, or `blobs/<algorithm>/<hex>` (plain names,
/// nothing that climbs out).
fn is_layout_name(path: &Path) -> bool {
    let parts: Vec<&str> = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(part) => part.to_str().unwrap_or("/"),
            _ => "/",
        })
        .collect();
    match parts.as_slice() {
        [name] => ["oci-layout", "index.json", super::sidecar::FILE_NAME].contains(name),
        ["blobs", algorithm, hex] => Digest::parse(&format!("{algorithm}:{hex}")).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_over_8_gib_carry_their_size_in_a_pax_header() {
        let (header, pax) = entry_header("blobs/sha256/x", USTAR_MAX_SIZE).unwrap();
        assert!(pax.is_empty());
        assert_eq!(header.size().unwrap(), USTAR_MAX_SIZE);
        let huge = 8 * 1024 * 1024 * 1024 + 1;
        let (header, pax) = entry_header("blobs/sha256/x", huge).unwrap();
        assert_eq!(pax, [("size".to_string(), huge.to_string())]);
        assert_eq!(header.size().unwrap(), 0, "the ustar field is not used");
        // A reader honours the PAX size: an entry written with a PAX size record of 5
        // (over a header saying 0) reads back as 5 bytes.
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("size", b"5".as_slice())])
            .unwrap();
        let (header, _) = entry_header("blobs/sha256/y", 0).unwrap();
        builder.append(&header, &b"hello"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let mut read = String::new();
        entry.read_to_string(&mut read).unwrap();
        assert_eq!(read, "hello");
    }

    #[test]
    fn only_the_names_of_a_layout_are_taken() {
        for good in ["oci-layout", "./index.json", "image-migrator.json"] {
            assert!(is_layout_name(Path::new(good)), "{good}");
        }
        let hex = "a".repeat(64);
        assert!(is_layout_name(Path::new(&format!("blobs/sha256/{hex}"))));
        for bad in [
            "../index.json",
            "/etc/passwd",
            "blobs/sha256/../../x",
            "blobs/sha256/short",
            "other.txt",
        ] {
            assert!(!is_layout_name(Path::new(bad)), "{bad}");
        }
    }
}
