//! The layout's content store, `blobs/<algorithm>/<hex>`: a blob is written under a
//! temporary name beside the others, verified (size and digest) while it is written, then
//! renamed into place. A name in `blobs/` is therefore always whole and verified, so an
//! interrupted export run again keeps what it finished and redoes only the rest.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, ErrorKind, Result};

/// Temporary files of one process get distinct names (the process id tells processes apart).
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Where the blobs of a layout live.
pub(super) struct Blobs {
    root: PathBuf,
    /// For a layout read inside an archive: where each blob's bytes are in it.
    packed: Option<Packed>,
    /// Blobs hashed whole in this run ([`Blobs::verify`]): a layer many images share is
    /// hashed once.
    verified: Mutex<HashSet<Digest>>,
}

impl Blobs {
    pub(super) fn new(layout: &Path) -> Self {
        Blobs {
            root: layout.join("blobs"),
            packed: None,
            verified: Mutex::default(),
        }
    }

    /// The blobs of an archive, read where they are in it (never unpacked).
    pub(super) fn packed(archive: &Path, at: HashMap<Digest, (u64, u64)>) -> Self {
        Blobs {
            root: archive.join("blobs"),
            packed: Some(Packed {
                archive: archive.to_path_buf(),
                at,
            }),
            verified: Mutex::default(),
        }
    }

    /// The path of a blob, `blobs/<algorithm>/<hex>`.
    pub(super) fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.as_str().split_once(':').map_or("", |(_, hex)| hex);
        self.root.join(digest.algorithm()).join(hex)
    }

    pub(super) fn exists(&self, digest: &Digest) -> bool {
        match &self.packed {
            Some(packed) => packed.at.contains_key(digest),
            None => self.path(digest).is_file(),
        }
    }

    /// A blob's bytes, as stored (the reader verifies them).
    pub(super) fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        self.open_from(digest, 0)
    }

    /// A blob's bytes from byte `from` on (a transfer continued after a break).
    pub(super) fn open_from(&self, digest: &Digest, from: u64) -> Result<Box<dyn Read + Send>> {
        let (path, offset, size) = match &self.packed {
            None => (self.path(digest), 0, None),
            Some(packed) => match packed.at.get(digest) {
                Some(&(offset, size)) => (packed.archive.clone(), offset, Some(size)),
                None => {
                    let missing = io::Error::from(io::ErrorKind::NotFound);
                    return Err(self.io_error(digest, missing));
                }
            },
        };
        let mut file = fs::File::open(&path).map_err(|e| self.io_error(digest, e))?;
        file.seek(io::SeekFrom::Start(offset + from))
            .map_err(|e| self.io_error(digest, e))?;
        Ok(match size {
            Some(size) => Box::new(file.take(size.saturating_sub(from))),
            None => Box::new(file),
        })
    }

    /// A small blob (a manifest) read whole and checked against its digest.
    pub(super) fn read_verified(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(digest)?
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_error(digest, e))?;
        if bytes.len() as u64 > max {
            return Err(Error::protocol(format!(
                "{}: more than {max} bytes for a manifest",
                self.path(digest).display()
            )));
        }
        if !digest.matches(&bytes) {
            return Err(corrupt(digest, &self.path(digest)));
        }
        Ok(bytes)
    }

    /// Hashes a stored blob whole: whether it is there, of `size` bytes, and hashes to
    /// its name. The error names the digest.
    pub(super) fn verify(&self, digest: &Digest, size: u64) -> Result<()> {
        if self.verified.lock().unwrap().contains(digest) {
            return Ok(());
        }
        let file = self.open(digest).map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    format!("the bundle lacks blob {digest}"),
                )
            } else {
                e
            }
        })?;
        let mut reader = VerifyingReader::new(file, digest.clone(), size);
        match io::copy(&mut reader, &mut io::sink()) {
            Ok(_) => {
                self.verified.lock().unwrap().insert(digest.clone());
                Ok(())
            }
            Err(_) if reader.failure().is_some() => Err(corrupt(digest, &self.path(digest))),
            Err(e) => Err(self.io_error(digest, e)),
        }
    }

    /// Stores `size` bytes of `body` as `digest`: written to a temporary file, verified,
    /// then renamed into place (a blob already there is left as it is).
    pub(super) fn write(&self, digest: &Digest, size: u64, body: &mut dyn Read) -> Result<()> {
        if let Some(packed) = &self.packed {
            return Err(Error::protocol(format!(
                "{} is read, never written",
                packed.archive.display()
            )));
        }
        let path = self.path(digest);
        let dir = path.parent().expect("blobs/<algorithm>");
        fs::create_dir_all(dir).map_err(|e| self.io_error(digest, e))?;
        let temporary = dir.join(format!(
            ".{}.{}-{}.partial",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("blob"),
            std::process::id(),
            NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_verified(&temporary, digest, size, body)
            .and_then(|()| fs::rename(&temporary, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temporary);
            return Err(if e.kind() == io::ErrorKind::InvalidData {
                Error::digest(format!("blob {digest}: {e}"))
            } else {
                self.io_error(digest, e)
            });
        }
        Ok(())
    }

    fn io_error(&self, digest: &Digest, e: io::Error) -> Error {
        let kind = if e.kind() == io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Protocol
        };
        Error::new(
            kind,
            format!("blob {digest} at {}: {e}", self.path(digest).display()),
        )
    }
}

/// Where the blobs of an archive are: byte offset and size of each.
struct Packed {
    archive: PathBuf,
    at: HashMap<Digest, (u64, u64)>,
}

/// `body` into a new file at `path`, hashed on the way, flushed to disk when whole.
fn write_verified(path: &Path, digest: &Digest, size: u64, body: &mut dyn Read) -> io::Result<()> {
    let mut file = fs::File::create_new(path)?;
    let mut reader = VerifyingReader::new(body, digest.clone(), size);
    io::copy(&mut reader, &mut file)?;
    if reader.count() != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes of {size}", reader.count()),
        ));
    }
    file.flush()?;
    file.sync_all()
}

fn corrupt(digest: &Digest, path: &Path) -> Error {
    Error::digest(format!(
        "blob {digest} in the bundle is corrupt: {} does not hash to its name",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_renamed_into_place_only_when_verified() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(dir.path());
        let bytes = b"layer bytes";
        let digest = Digest::sha256_of(bytes);
        let wrong = Digest::sha256_of(b"something else");
        assert!(blobs.write(&wrong, 11, &mut &bytes[..]).is_err());
        assert!(!blobs.exists(&wrong));
        assert!(blobs.write(&digest, 10, &mut &bytes[..]).is_err());
        assert!(!blobs.exists(&digest));
        blobs.write(&digest, 11, &mut &bytes[..]).unwrap();
        assert!(blobs.exists(&digest));
        blobs.verify(&digest, 11).unwrap();
        let leftovers: Vec<_> = fs::read_dir(blobs.path(&digest).parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary file is left: {leftovers:?}"
        );
        fs::write(blobs.path(&digest), b"layer bytez").unwrap();
        blobs.verify(&digest, 11).unwrap(); // hashed once per run
        let error = Blobs::new(dir.path()).verify(&digest, 11).unwrap_err();
        assert!(error.message.contains(digest.as_str()), "{}", error.message);
    }
}
