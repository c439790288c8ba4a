//! The bundle's sidecar file, `image-migrator.json` inside the layout: what the export
//! was asked (the rules file, its defaults) and what it planned — each image's source
//! reference and the target its rule names — so that `import` pushes each image where
//! `sync` would have, without the rules file at hand.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sidecar's file name inside the layout.
pub const FILE_NAME: &str = "image-migrator.json";

/// What a bundle records of the export that wrote it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sidecar {
    pub tool_version: String,
    /// The rules file the export read, as given.
    pub images_file: String,
    pub default_registry: Option<String>,
    pub default_namespace: Option<String>,
    /// Every image the bundle holds, in rule order (exports into the same layout add
    /// theirs; an image of the same source replaces the older entry).
    pub images: Vec<BundleImage>,
}

/// One image of the bundle: its name in the layout (the source reference) and where
/// its rule sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleImage {
    pub rule: String,
    pub rule_line: usize,
    pub source: String,
    pub target: String,
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
