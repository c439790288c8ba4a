//! Reading a bundle (an OCI image layout) the way an independent reader would: its
//! `index.json` entries by name, its blobs checked against their names, its sidecar.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::seed::sha256_digest;

/// `index.json`'s entries: ref name → digest.
pub fn names(layout: &Path) -> BTreeMap<String, String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| {
            Some((
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()?
                    .to_string(),
                m["digest"].as_str().expect("digest").to_string(),
            ))
        })
        .collect()
}

/// The path of a blob.
pub fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    layout.join("blobs").join(algorithm).join(hex)
}

/// Every file in `blobs/sha256` hashes to its name (no temporary file left); their names.
pub fn assert_blobs_verified(layout: &Path) -> Vec<String> {
    blobs_verified(layout, false)
}

/// [`assert_blobs_verified`], leaving out temporary files (`.…partial`, which a killed
/// run leaves and no reader takes for a blob) when `temporaries_allowed`.
pub fn blobs_verified(layout: &Path, temporaries_allowed: bool) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs/sha256") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if temporaries_allowed && name.starts_with('.') && name.ends_with(".partial") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            sha256_digest(&bytes),
            format!("sha256:{name}"),
            "blob file {name} does not hash to its name"
        );
        names.push(format!("sha256:{name}"));
    }
    names.sort();
    names
}

/// The sidecar `image-migrator.json`.
pub fn sidecar(layout: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(layout.join("image-migrator.json")).expect("sidecar"))
        .expect("sidecar is JSON")
}
