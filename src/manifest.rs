//! Manifest media types and the little we need to read from a manifest: its children
//! (for an index) or its config and layers (for an image). Manifests are never
//! re-serialised: the raw bytes are what gets pushed, so digests stay identical. What a
//! registry sends is bounded and checked before use: size, media types, digests, and
//! how many children an index has and how deep indexes nest.

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Largest manifest accepted (distribution refuses larger ones too).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Levels of indexes above an image manifest: an index of indexes of images has 2.
pub const MAX_INDEX_DEPTH: usize = 3;
/// Children of one index, and blobs of one image manifest.
pub const MAX_MANIFEST_CHILDREN: usize = 10_000;

/// The `Accept` header for manifest requests.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A manifest's media type: the four this tool copies as images and indexes, or another
/// well-formed one (an artifact, kept as written). Only [`MediaType::parse`] makes one, so
/// a value from the wire is checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaType {
    DockerManifest,
    DockerList,
    OciManifest,
    OciIndex,
    Other(String),
}

impl MediaType {
    /// `None` when `value` is not an RFC 6838 `type/subtype` (see [`is_valid_media_type`]).
    pub fn parse(value: &str) -> Option<MediaType> {
        Some(match value {
            DOCKER_MANIFEST => MediaType::DockerManifest,
            DOCKER_LIST => MediaType::DockerList,
            OCI_MANIFEST => MediaType::OciManifest,
            OCI_INDEX => MediaType::OciIndex,
            other if is_valid_media_type(other) => MediaType::Other(other.to_string()),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            MediaType::DockerManifest => DOCKER_MANIFEST,
            MediaType::DockerList => DOCKER_LIST,
            MediaType::OciManifest => OCI_MANIFEST,
            MediaType::OciIndex => OCI_INDEX,
            MediaType::Other(other) => other,
        }
    }

    /// A Docker manifest list or an OCI index.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::DockerList | MediaType::OciIndex)
    }

    /// A single-platform image manifest (Docker schema 2 or OCI).
    pub fn is_image(&self) -> bool {
        matches!(self, MediaType::DockerManifest | MediaType::OciManifest)
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manifest exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: MediaType,
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

/// A wanted platform (`--platform os/arch[/variant]`, or `--os`/`--arch`); a missing part
/// matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
}

impl std::str::FromStr for PlatformSpec {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        let parts: Vec<&str> = value.trim().split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid(p)) {
            return Err(format!(
                "{value:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            ));
        }
        Ok(PlatformSpec {
            os: Some(parts[0].to_string()),
            architecture: Some(parts[1].to_string()),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.os.as_deref().unwrap_or("*"),
            self.architecture.as_deref().unwrap_or("*")
        )?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl PlatformSpec {
    pub fn matches(&self, platform: &Platform) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        same(&self.os, &platform.os)
            && same(&self.architecture, &platform.architecture)
            && same(&self.variant, platform.variant.as_deref().unwrap_or(""))
    }
}

/// An index reduced to the children whose platform one of `wanted` matches. The bytes
/// are rewritten, so the digest changes; everything else in the index is kept.
pub fn filter_index(index: &Manifest, wanted: &[PlatformSpec]) -> Result<Manifest> {
    let mut value: serde_json::Value = serde_json::from_slice(&index.bytes)
        .map_err(|e| Error::protocol(format!("index {}: {e}", index.digest)))?;
    let children = value
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| Error::protocol(format!("index {} has no manifests", index.digest)))?;
    children.retain(|child| {
        serde_json::from_value::<Platform>(child.get("platform").cloned().unwrap_or_default())
            .is_ok_and(|platform| wanted.iter().any(|w| w.matches(&platform)))
    });
    if children.is_empty() {
        let wanted: Vec<String> = wanted.iter().map(ToString::to_string).collect();
        return Err(Error::new(
            crate::error::ErrorKind::NotFound,
            format!(
                "index {} has no manifest for platform {}",
                index.digest,
                wanted.join(", ")
            ),
        ));
    }
    let bytes = serde_json::to_vec_pretty(&value)
        .map_err(|e| Error::protocol(format!("index {}: {e}", index.digest)))?;
    Ok(Manifest {
        digest: Digest::sha256_of(&bytes),
        bytes,
        media_type: index.media_type.clone(),
    })
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
pub fn media_type_of(bytes: &[u8], header: Option<&str>) -> Result<MediaType> {
    let shape: Shape = serde_json::from_slice(bytes)
        .map_err(|e| Error::protocol(format!("manifest is not valid JSON: {e}")))?;
    if shape.schema_version == Some(1) {
        return Err(Error::protocol(
            "Docker schema 1 manifests are deprecated and not supported; the registry \
             should serve schema 2 or OCI",
        ));
    }
    if let Some(media_type) = shape.media_type.filter(|m| !m.is_empty()) {
        return MediaType::parse(&media_type).ok_or_else(|| {
            Error::protocol(format!(
                "manifest declares an invalid media type {}",
                escaped(&media_type)
            ))
        });
    }
    let header = header
        .and_then(|h| MediaType::parse(h.split(';').next().unwrap_or(h).trim()))
        .filter(|h| h.is_index() || h.is_image());
    Ok(match (header, shape.manifests.is_some()) {
        (Some(header), _) => header,
        (None, true) => MediaType::OciIndex,
        (None, false) => MediaType::OciManifest,
    })
}

/// RFC 6838 `type/subtype`: each a restricted name of 1 to 127 characters (letters,
/// digits and `!#$&-^_.+`, starting with a letter or digit), no parameters.
pub fn is_valid_media_type(value: &str) -> bool {
    let restricted = |name: &str| {
        (1..=127).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    value
        .split_once('/')
        .is_some_and(|(kind, subtype)| restricted(kind) && restricted(subtype))
}

/// A value from the wire, quoted with control characters escaped and cut to 100 chars.
fn escaped(value: &str) -> String {
    let short: String = value.chars().take(100).collect();
    format!("{short:?}")
}

/// Reads what a manifest references.
pub fn content(manifest: &Manifest) -> Result<Content> {
    let shape: Shape = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::protocol(format!("manifest {}: {e}", manifest.digest)))?;
    let parse = |d: &Descriptor| {
        if !d.media_type.is_empty() && !is_valid_media_type(&d.media_type) {
            return Err(Error::protocol(format!(
                "manifest {}: a descriptor has an invalid media type {}",
                manifest.digest,
                escaped(&d.media_type)
            )));
        }
        Digest::parse(&d.digest)
            .map(|digest| (digest, d.size))
            .map_err(|e| Error::protocol(format!("manifest {}: {e}", manifest.digest)))
    };
    let fan_out = shape
        .manifests
        .as_ref()
        .map_or(0, Vec::len)
        .max(shape.layers.len() + 1);
    if fan_out > MAX_MANIFEST_CHILDREN {
        return Err(Error::protocol(format!(
            "manifest {} references {fan_out} manifests or blobs, more than the {} this tool \
             follows",
            manifest.digest, MAX_MANIFEST_CHILDREN
        )));
    }
    if manifest.media_type.is_index() {
        let children = shape.manifests.unwrap_or_default();
        return Ok(Content::Index {
            children: children.iter().map(parse).collect::<Result<_>>()?,
        });
    }
    if !manifest.media_type.is_image() {
        return Err(Error::protocol(format!(
            "manifest {} has unsupported media type {:?}",
            manifest.digest,
            manifest.media_type.as_str()
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

/// One manifest that refers to another (a signature, an SBOM, an attestation), as a
/// referrers index lists it: its descriptor is kept whole (`artifactType`, annotations)
/// so that a merged fallback index says what the source said.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub descriptor: serde_json::Value,
}

impl Referrer {
    /// Its artifact type, else its media type, for messages.
    pub fn kind(&self) -> &str {
        self.artifact_type.as_deref().unwrap_or(&self.media_type)
    }
}

/// The referrers a referrers index (the API's answer, or a fallback tag) lists.
pub fn referrers_of(index: &[u8]) -> Result<Vec<Referrer>> {
    let value: serde_json::Value = serde_json::from_slice(index)
        .map_err(|e| Error::protocol(format!("referrers index is not valid JSON: {e}")))?;
    let Some(entries) = value.get("manifests").and_then(|m| m.as_array()) else {
        return Err(Error::protocol("referrers index has no manifests"));
    };
    entries
        .iter()
        .map(|entry| {
            let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let digest = Digest::parse(&text("digest").unwrap_or_default())
                .map_err(|e| Error::protocol(format!("referrers index: {e}")))?;
            Ok(Referrer {
                digest,
                media_type: text("mediaType").unwrap_or_default(),
                artifact_type: text("artifactType").filter(|t| !t.is_empty()),
                descriptor: entry.clone(),
            })
        })
        .collect()
}

/// The referrers tag schema's tag for `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    subject.as_str().replacen(':', "-", 1)
}

/// cosign's tags for `subject`: signatures, attestations, SBOMs.
pub fn cosign_tags(subject: &Digest) -> [String; 3] {
    let base = fallback_tag(subject);
    [".sig", ".att", ".sbom"].map(|suffix| format!("{base}{suffix}"))
}

/// Whether `tag` is a referrers tag schema tag (`sha256-<hex>`) or a cosign tag
/// (`sha256-<hex>.sig`, `.att`, `.sbom`).
pub fn is_referrer_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = [".sig", ".att", ".sbom"]
        .iter()
        .find_map(|suffix| rest.strip_suffix(suffix))
        .unwrap_or(rest);
    hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// A fallback index with `added` appended to what `existing` lists (nothing dropped,
/// nothing listed twice; everything else in `existing` kept).
pub fn merge_referrers(existing: Option<&Manifest>, added: &[Referrer]) -> Result<Manifest> {
    let mut value = match existing {
        Some(index) => serde_json::from_slice(&index.bytes)
            .map_err(|e| Error::protocol(format!("referrers index {}: {e}", index.digest)))?,
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
        }),
    };
    if !value.get("manifests").is_some_and(|m| m.is_array()) {
        value["manifests"] = serde_json::json!([]);
    }
    let entries = value["manifests"].as_array_mut().expect("an array");
    for referrer in added {
        let listed = entries
            .iter()
            .any(|e| e.get("digest").and_then(|d| d.as_str()) == Some(referrer.digest.as_str()));
        if !listed {
            entries.push(referrer.descriptor.clone());
        }
    }
    let bytes = serde_json::to_vec_pretty(&value)
        .map_err(|e| Error::protocol(format!("referrers index: {e}")))?;
    Ok(Manifest {
        digest: Digest::sha256_of(&bytes),
        bytes,
        media_type: MediaType::OciIndex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_index_children_by_platform() {
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{a}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},
{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{b}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{c}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}}],
"annotations":{{"keep":"me"}}}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        )
        .into_bytes();
        let index = Manifest {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: MediaType::OciIndex,
        };
        let wanted: Vec<PlatformSpec> = vec!["linux/arm64".parse().unwrap()];
        let filtered = filter_index(&index, &wanted).unwrap();
        assert_ne!(filtered.digest, index.digest);
        let Content::Index { children } = content(&filtered).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(children.len(), 1);
        assert!(children[0].0.as_str().ends_with(&"b".repeat(64)));
        assert!(String::from_utf8_lossy(&filtered.bytes).contains("keep"));
        let none: Vec<PlatformSpec> = vec!["windows/amd64".parse().unwrap()];
        assert!(filter_index(&index, &none).is_err());
        assert!("linux".parse::<PlatformSpec>().is_err());
    }

    #[test]
    fn media_type_from_field_shape_or_header() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(media_type_of(index, None).unwrap(), MediaType::OciIndex);
        let list = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[]}}"#);
        assert_eq!(
            media_type_of(list.as_bytes(), None).unwrap(),
            MediaType::DockerList
        );
        let image = br#"{"schemaVersion":2,"config":{"digest":"x","size":1},"layers":[]}"#;
        assert_eq!(
            media_type_of(image, Some(&format!("{DOCKER_MANIFEST}; charset=utf-8"))).unwrap(),
            MediaType::DockerManifest
        );
        let artifact = "application/vnd.dev.cosign.artifact.sig.v1+json";
        assert_eq!(
            MediaType::parse(artifact).map(|m| m.to_string()).as_deref(),
            Some(artifact)
        );
        assert!(MediaType::parse(OCI_INDEX).is_some_and(|m| m.is_index()));
        assert_eq!(MediaType::parse("not a type"), None);
        assert!(media_type_of(br#"{"schemaVersion":1}"#, None).is_err());
        let injected = br#"{"schemaVersion":2,"mediaType":"application/x\r\nX-Evil: 1"}"#;
        let error = media_type_of(injected, None).unwrap_err();
        assert!(
            error.message.contains(r#""application/x\r\nX-Evil: 1""#),
            "{error}"
        );
    }

    #[test]
    fn media_type_grammar() {
        for good in [OCI_INDEX, DOCKER_MANIFEST, "application/vnd.x+json", "a/b"] {
            assert!(is_valid_media_type(good), "{good}");
        }
        let long = format!("application/{}", "x".repeat(128));
        for bad in [
            "",
            "a",
            "a/",
            "/b",
            "a/b/c",
            "a/b; charset=utf-8",
            "a /b",
            &long,
        ] {
            assert!(!is_valid_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn fan_out_is_bounded_and_named() {
        let child = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":1}}"#,
            "a".repeat(64)
        );
        let many = vec![child; MAX_MANIFEST_CHILDREN + 1].join(",");
        let bytes = format!(r#"{{"schemaVersion":2,"manifests":[{many}]}}"#).into_bytes();
        let index = Manifest {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: MediaType::OciIndex,
        };
        let error = content(&index).unwrap_err();
        assert!(error.message.contains(index.digest.as_str()), "{error}");
        assert!(error.message.contains("10000"), "{error}");
    }

    #[test]
    fn fallback_indexes_merge_without_dropping_entries() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let existing_bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
{{"mediaType":"{OCI_MANIFEST}","digest":"{a}","size":3,"artifactType":"application/spdx+json"}}],
"annotations":{{"keep":"me"}}}}"#
        )
        .into_bytes();
        let existing = Manifest {
            digest: Digest::sha256_of(&existing_bytes),
            bytes: existing_bytes,
            media_type: MediaType::OciIndex,
        };
        let source = format!(
            r#"{{"schemaVersion":2,"manifests":[
{{"mediaType":"{OCI_MANIFEST}","digest":"{a}","size":3,"artifactType":"application/spdx+json"}},
{{"mediaType":"{OCI_MANIFEST}","digest":"{b}","size":4,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","annotations":{{"x":"y"}}}}]}}"#
        );
        let referrers = referrers_of(source.as_bytes()).unwrap();
        assert_eq!(referrers.len(), 2);
        assert_eq!(
            referrers[1].kind(),
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        );
        let merged = merge_referrers(Some(&existing), &referrers).unwrap();
        let listed = referrers_of(&merged.bytes).unwrap();
        let digests: Vec<&str> = listed.iter().map(|r| r.digest.as_str()).collect();
        assert_eq!(digests, [a.as_str(), b.as_str()]);
        assert_eq!(listed[1].descriptor["annotations"]["x"], "y");
        assert!(String::from_utf8_lossy(&merged.bytes).contains("keep"));
        let fresh = merge_referrers(None, &referrers[1..]).unwrap();
        assert_eq!(referrers_of(&fresh.bytes).unwrap().len(), 1);
        assert_eq!(
            media_type_of(&fresh.bytes, None).unwrap(),
            MediaType::OciIndex
        );
        let subject = Digest::parse(&a).unwrap();
        assert_eq!(fallback_tag(&subject), format!("sha256-{}", "a".repeat(64)));
        assert_eq!(
            cosign_tags(&subject)[0],
            format!("sha256-{}.sig", "a".repeat(64))
        );
    }
}
