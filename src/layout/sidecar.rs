//! The bundle's sidecar file, `image-migrator.json` inside the layout: what the export
//! was asked (the rules file, its defaults) and what it planned — each image's source
//! reference and the target its rule names — so that `import` pushes each image where
//! `sync` would have, without the rules file at hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sidecar's file name inside the layout.
pub const FILE_NAME: &str = "image-migrator.json";

/// What a bundle records of the export that wrote it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sidecar {
    /// This bundle, as a delta's sidecar names its base: the digest of its `index.json`
    /// when the export ended.
    #[serde(default)]
    pub id: String,
    pub tool_version: String,
    /// The rules file the export read, as given.
    pub images_file: String,
    pub default_registry: Option<String>,
    pub default_namespace: Option<String>,
    /// Whether the export carried referrers (`--referrers`): the import then pushes them.
    #[serde(default)]
    pub referrers: bool,
    /// Every image the bundle holds, in rule order (exports into the same layout add
    /// theirs; an image of the same source replaces the older entry).
    pub images: Vec<BundleImage>,
    /// With `export --base`: the bundle this one is a delta of, which must be imported
    /// into the target first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
}

/// The base of a delta bundle: its id and the blobs it carried, by source repository
/// (the blobs this bundle left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Base {
    pub id: String,
    /// The `--base` the export was given.
    pub given: String,
    pub blobs: BTreeMap<String, BTreeSet<String>>,
}

/// One image of the bundle: its name in the layout (the source reference) and where
/// its rule sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleImage {
    pub rule: String,
    pub rule_line: usize,
    pub source: String,
    pub target: String,
    /// The configs and layers the image uses (in this bundle or its base): what a
    /// delta against this bundle leaves out.
    #[serde(default)]
    pub blobs: Vec<String>,
}

impl Sidecar {
    /// The sidecar of the layout at `layout`, or `None` when it has none.
    pub fn read(layout: &Path) -> Result<Option<Sidecar>> {
        let path = layout.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::protocol(format!("{}: {e}", path.display()))),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::protocol(format!("{}: {e}", path.display())))
    }

    /// The blobs the images use, by source repository (`registry/repository`): what a
    /// delta against this bundle leaves out.
    pub fn blobs_by_repository(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_repository: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for image in &self.images {
            let repository = crate::reference::Reference::parse(&image.source)
                .map(|r| r.name())
                .unwrap_or_default();
            by_repository
                .entry(repository)
                .or_default()
                .extend(image.blobs.iter().cloned());
        }
        by_repository
    }

    /// Adds `images`, replacing earlier entries of the same source and target.
    pub fn add(&mut self, images: Vec<BundleImage>) {
        self.images.retain(|old| {
            !images
                .iter()
                .any(|new| new.source == old.source && new.target == old.target)
        });
        self.images.extend(images);
    }
}

/// The sidecar of the bundle `--base` names: `oci:DIR`, `oci-archive:FILE.tar`, a
/// bundle directory, an archive (`.tar`), or the sidecar file itself.
pub fn read_base(value: &str) -> std::result::Result<Sidecar, String> {
    use super::BundlePath;
    let path = Path::new(value);
    let found = match BundlePath::parse(value) {
        Ok(BundlePath::Directory(dir)) => Sidecar::read(&dir),
        Ok(BundlePath::Archive(file)) => {
            super::Layout::open_archive(&file).and_then(|l| l.sidecar())
        }
        Err(_) if path.is_dir() => Sidecar::read(path),
        Err(_) if value.ends_with(".tar") => {
            super::Layout::open_archive(path).and_then(|l| l.sidecar())
        }
        Err(_) => std::fs::read(path)
            .map_err(|e| Error::protocol(format!("{value}: {e}")))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    Error::protocol(format!("{value}: not a bundle's {FILE_NAME}: {e}"))
                })
            }),
    };
    match found {
        Ok(Some(sidecar)) => Ok(sidecar),
        Ok(None) => Err(format!(
            "{value:?}: no {FILE_NAME} (not a bundle written by export)"
        )),
        Err(e) => Err(e.message),
    }
}
