//! Manifest media types and the little we need to read from a manifest: its children
//! (for an index) or its config and layers (for an image). Manifests are never
//! re-serialised: the raw bytes are what gets pushed, so digests stay identical.

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Largest manifest accepted (distribution refuses larger ones too).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The `Accept` header for manifest requests.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A manifest exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// What a manifest references.
#[derive(Debug, Clone)]
pub enum Content {
    /// A single-platform image: config and layers are blobs.
    Image { blobs: Vec<(Digest, u64)> },
    /// A multi-platform index: children are manifests.
    Index { children: Vec<(Digest, u64)> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// The media type a manifest declares, falling back to its shape (OCI allows omitting
/// `mediaType`), then to the header the registry sent.
pub fn media_type_of(bytes: &[u8], header: Option<&str>) -> Result<String> {
    let shape: Shape = serde_json::from_slice(bytes)
        .map_err(|e| Error::protocol(format!("manifest is not valid JSON: {e}")))?;
    if shape.schema_version == Some(1) {
        return Err(Error::protocol(
            "Docker schema 1 manifests are deprecated and not supported; the registry \
             should serve schema 2 or OCI",
        ));
    }
    if let Some(media_type) = shape.media_type.filter(|m| !m.is_empty()) {
        return Ok(media_type);
    }
    let header = header
        .map(|h| h.split(';').next().unwrap_or(h).trim())
        .filter(|h| is_index(h) || is_image(h));
    Ok(match (header, shape.manifests.is_some()) {
        (Some(header), _) => header.to_string(),
        (None, true) => OCI_INDEX.to_string(),
        (None, false) => OCI_MANIFEST.to_string(),
    })
}

pub fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_LIST || media_type == OCI_INDEX
}

pub fn is_image(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST || media_type == OCI_MANIFEST
}

/// Reads what a manifest references.
pub fn content(manifest: &Manifest) -> Result<Content> {
    let shape: Shape = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::protocol(format!("manifest {}: {e}", manifest.digest)))?;
    let parse = |d: &Descriptor| {
        Digest::parse(&d.digest)
            .map(|digest| (digest, d.size))
            .map_err(|e| Error::protocol(format!("manifest {}: {e}", manifest.digest)))
    };
    if is_index(&manifest.media_type) {
        let children = shape.manifests.unwrap_or_default();
        return Ok(Content::Index {
            children: children.iter().map(parse).collect::<Result<_>>()?,
        });
    }
    if !is_image(&manifest.media_type) {
        return Err(Error::protocol(format!(
            "manifest {} has unsupported media type {:?}",
            manifest.digest, manifest.media_type
        )));
    }
    let config = shape
        .config
        .ok_or_else(|| Error::protocol(format!("manifest {} has no config", manifest.digest)))?;
    let blobs = std::iter::once(&config)
        .chain(shape.layers.iter())
        .map(parse)
        .collect::<Result<_>>()?;
    Ok(Content::Image { blobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_field_shape_or_header() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(media_type_of(index, None).unwrap(), OCI_INDEX);
        let list = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[]}}"#);
        assert_eq!(media_type_of(list.as_bytes(), None).unwrap(), DOCKER_LIST);
        let image = br#"{"schemaVersion":2,"config":{"digest":"x","size":1},"layers":[]}"#;
        assert_eq!(
            media_type_of(image, Some(&format!("{DOCKER_MANIFEST}; charset=utf-8"))).unwrap(),
            DOCKER_MANIFEST
        );
        assert!(media_type_of(br#"{"schemaVersion":1}"#, None).is_err());
    }
}
