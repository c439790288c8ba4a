//! The layout's `index.json`: the images it holds, each named by the
//! `org.opencontainers.image.ref.name` annotation. Changed only under a lock (a `flock` on
//! `index.json.lock`, so that parallel exports into one layout do not lose each other's
//! entries) and replaced whole: written to a temporary file, then renamed over the old.
//! Entries this tool did not write (other tools' fields, platforms) are kept as they are.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The annotation naming an image in a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// `index.json` as read: its entries and whatever else it holds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct IndexFile {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(default)]
    pub(super) manifests: Vec<Value>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// One named entry of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub digest: Digest,
    pub media_type: Option<String>,
    pub size: u64,
}

impl IndexFile {
    fn empty() -> Self {
        let mut rest = Map::new();
        rest.insert("mediaType".into(), Value::from(INDEX_MEDIA_TYPE));
        IndexFile {
            schema_version: 2,
            manifests: Vec::new(),
            rest,
        }
    }

    /// The index at `path`; empty when there is none yet.
    pub(super) fn read(path: &Path) -> Result<IndexFile> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(IndexFile::empty()),
            Err(e) => return Err(Error::protocol(format!("{}: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::protocol(format!("{}: not an OCI index: {e}", path.display())))
    }

    /// The entries named with [`REF_NAME`] (entries without a name are left out).
    pub(super) fn entries(&self) -> Vec<Entry> {
        self.manifests.iter().filter_map(entry_of).collect()
    }

    /// Names `entries`, each replacing an entry of the same name.
    fn set_all(&mut self, entries: &[Entry]) {
        let mut at: HashMap<String, usize> = (self.manifests.iter().enumerate())
            .filter_map(|(n, v)| Some((name_of(v)?.to_string(), n)))
            .collect();
        for entry in entries {
            let mut value = serde_json::json!({
                "mediaType": entry.media_type,
                "digest": entry.digest.as_str(),
                "size": entry.size,
                "annotations": { REF_NAME: entry.name },
            });
            if entry.media_type.is_none() {
                value.as_object_mut().unwrap().remove("mediaType");
            }
            match at.get(&entry.name) {
                Some(&n) => self.manifests[n] = value,
                None => {
                    at.insert(entry.name.clone(), self.manifests.len());
                    self.manifests.push(value);
                }
            }
        }
    }
}

fn name_of(value: &Value) -> Option<&str> {
    value.get("annotations")?.get(REF_NAME)?.as_str()
}

fn entry_of(value: &Value) -> Option<Entry> {
    Some(Entry {
        name: name_of(value)?.to_string(),
        digest: Digest::parse(value.get("digest")?.as_str()?).ok()?,
        media_type: value
            .get("mediaType")
            .and_then(Value::as_str)
            .map(String::from),
        size: value.get("size")?.as_u64()?,
    })
}

/// How long names may wait in memory before `index.json` is written: each write rewrites
/// the whole file, so a bundle of thousands of images names them in batches. A run killed
/// in between loses only those names; run again, their images cost a manifest each.
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// Names that wait at most before `index.json` is written.
const WRITE_AT: usize = 256;

/// The files of the index: `index.json` and its lock; its named entries as this process
/// last read or wrote them (read once, not once per question: a bundle of thousands of
/// images is asked about each of them), and the names not yet written.
pub(super) struct IndexPaths {
    pub(super) index: PathBuf,
    lock: PathBuf,
    named: Mutex<Option<Named>>,
    pending: Mutex<Pending>,
}

impl IndexFile {
    /// An index from its bytes (`what` names it in errors).
    pub(super) fn parse(bytes: &[u8], what: &str) -> Result<IndexFile> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::protocol(format!("{what}: not an OCI index: {e}")))
    }
}

/// Names given but not yet written to `index.json`.
#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    /// When `index.json` was last written by this process.
    written: Option<Instant>,
}

/// The named entries of `index.json` by name, and the tags of each repository
/// (`<repository>:<tag>` names).
#[derive(Default)]
struct Named {
    by_name: HashMap<String, Entry>,
    tags: HashMap<String, BTreeSet<String>>,
}

impl Named {
    fn of(entries: Vec<Entry>) -> Named {
        let mut named = Named::default();
        for entry in entries {
            named.insert(entry);
        }
        named
    }

    fn insert(&mut self, entry: Entry) {
        if let Some((repository, tag)) = entry.name.rsplit_once(':')
            && !tag.contains('/')
        {
            (self.tags.entry(repository.to_string()).or_default()).insert(tag.to_string());
        }
        self.by_name.insert(entry.name.clone(), entry);
    }
}

impl IndexPaths {
    pub(super) fn new(layout: &Path) -> Self {
        IndexPaths {
            index: layout.join("index.json"),
            lock: layout.join("index.json.lock"),
            named: Mutex::new(None),
            pending: Mutex::default(),
        }
    }

    /// Writes an empty index unless there is one (under the lock).
    pub(super) fn create(&self) -> Result<()> {
        self.locked(|| {
            if self.index.exists() {
                return Ok(());
            }
            self.replace(&IndexFile::empty())
        })
    }

    /// Names `entry`: at once for this process, in `index.json` with the next batch.
    pub(super) fn set(&self, entry: Entry) -> Result<()> {
        self.with_named(|named| named.insert(entry.clone()))?;
        let batch = {
            let mut pending = self.pending.lock().unwrap();
            pending.entries.push(entry);
            let due = pending.written.is_none_or(|at| at.elapsed() >= WRITE_EVERY)
                || pending.entries.len() >= WRITE_AT;
            if !due {
                return Ok(());
            }
            pending.written = Some(Instant::now());
            std::mem::take(&mut pending.entries)
        };
        self.write(&batch)
    }

    /// Writes the names still waiting.
    pub(super) fn flush(&self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending.lock().unwrap().entries);
        if batch.is_empty() {
            return Ok(());
        }
        self.write(&batch)
    }

    /// Adds `entries` to `index.json`, read and written under the lock (so entries other
    /// processes wrote meanwhile are kept).
    fn write(&self, entries: &[Entry]) -> Result<()> {
        self.locked(|| {
            let mut index = IndexFile::read(&self.index)?;
            index.set_all(entries);
            self.replace(&index)
        })
    }

    /// The entries of an index read elsewhere (an archive's): this view is all there is.
    pub(super) fn known(&self, index: &IndexFile) {
        *self.named.lock().unwrap() = Some(Named::of(index.entries()));
    }

    /// Runs `f` on the named entries, read on first use.
    fn with_named<T>(&self, f: impl FnOnce(&mut Named) -> T) -> Result<T> {
        let mut named = self.named.lock().unwrap();
        if named.is_none() {
            *named = Some(Named::of(IndexFile::read(&self.index)?.entries()));
        }
        Ok(f(named.as_mut().expect("read above")))
    }

    /// The entry named `name`.
    pub(super) fn get(&self, name: &str) -> Result<Option<Entry>> {
        self.with_named(|named| named.by_name.get(name).cloned())
    }

    /// The tags of `repository` (names `<repository>:<tag>`).
    pub(super) fn tags(&self, repository: &str) -> Result<Vec<String>> {
        self.with_named(|named| {
            (named.tags.get(repository))
                .map(|tags| tags.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Every named entry, by name.
    pub(super) fn entries(&self) -> Result<Vec<Entry>> {
        self.with_named(|named| {
            let mut entries: Vec<Entry> = named.by_name.values().cloned().collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            entries
        })
    }

    /// Runs `f` holding the lock on `index.json.lock` (other processes wait for it).
    pub(super) fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let fail = |e: io::Error| Error::protocol(format!("{}: {e}", self.lock.display()));
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(fail)?;
        // SAFETY: flock on a descriptor this function owns; released when `lock` closes.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(fail(io::Error::last_os_error()));
        }
        let result = f();
        drop(lock);
        result
    }

    /// `index` written beside `index.json`, then renamed over it.
    fn replace(&self, index: &IndexFile) -> Result<()> {
        let temporary = self
            .index
            .with_file_name(format!("index.json.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = fs::File::create(&temporary)?;
            serde_json::to_writer(&mut file, index)?;
            file.flush()?;
            file.sync_all()?;
            fs::rename(&temporary, &self.index)
        })();
        written.map_err(|e: io::Error| {
            let _ = fs::remove_file(&temporary);
            Error::protocol(format!("writing {}: {e}", self.index.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, bytes: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            digest: Digest::sha256_of(bytes),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn parallel_writers_lose_no_entry_and_others_fields_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = IndexPaths::new(dir.path());
        paths.create().unwrap();
        let mut foreign = IndexFile::read(&paths.index).unwrap();
        foreign.manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::sha256_of(b"x").as_str(), "size": 1,
            "platform": {"os": "linux", "architecture": "amd64"}
        }));
        paths.replace(&foreign).unwrap();
        std::thread::scope(|scope| {
            for n in 0..8 {
                let paths = &paths;
                scope.spawn(move || {
                    let other = IndexPaths::new(paths.index.parent().unwrap());
                    other.set(entry(&format!("r.io/a:t{n}"), &[n])).unwrap();
                    other.flush().unwrap();
                });
            }
        });
        paths.set(entry("r.io/a:t3", b"again")).unwrap();
        paths.flush().unwrap();
        assert_eq!(
            paths.tags("r.io/a").unwrap().len(),
            8,
            "read when first asked"
        );
        let index = IndexFile::read(&paths.index).unwrap();
        let mut names: Vec<String> = index.entries().into_iter().map(|e| e.name).collect();
        names.sort();
        assert_eq!(names.len(), 8, "{names:?}");
        assert_eq!(index.manifests.len(), 9, "the unnamed entry is kept");
        assert!(index.manifests[0].get("platform").is_some());
        let t3 = index.entries().into_iter().find(|e| e.name == "r.io/a:t3");
        assert_eq!(t3.unwrap().digest, Digest::sha256_of(b"again"));
    }
}
