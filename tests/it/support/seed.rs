//! Put real images into a test registry, and read them back for assertions.
//!
//! This talks the distribution HTTP API with ureq directly — deliberately none of the
//! product's code — so a test's setup and its checks do not share the bugs of the code
//! under test. Everything panics on unexpected answers: it is test setup.
//!
//! Manifests are kept exactly as pushed: a digest is always the sha256 of the bytes.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Every manifest media type, for `Accept` headers.
pub const ALL_MANIFEST_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Which family of media types an image or index uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// Docker schema2 manifest / manifest list.
    Docker,
    /// OCI image manifest / image index.
    Oci,
}

impl Media {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Media::Docker => DOCKER_MANIFEST,
            Media::Oci => OCI_MANIFEST,
        }
    }
    pub fn index_type(self) -> &'static str {
        match self {
            Media::Docker => DOCKER_MANIFEST_LIST,
            Media::Oci => OCI_INDEX,
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Media::Docker => DOCKER_CONFIG,
            Media::Oci => OCI_CONFIG,
        }
    }
    fn layer_type(self, gzipped: bool) -> &'static str {
        match (self, gzipped) {
            (Media::Docker, true) => DOCKER_LAYER_GZIP,
            (Media::Docker, false) => DOCKER_LAYER_TAR,
            (Media::Oci, true) => OCI_LAYER_GZIP,
            (Media::Oci, false) => OCI_LAYER_TAR,
        }
    }
}

/// What [`Seeder::push_image`] builds.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Layer blobs, exactly as they will be stored. Gzip'd bytes (e.g. from
    /// [`deterministic_layer`]) get a `…tar+gzip` media type and a diff_id of their
    /// decompressed content; anything else is treated as an uncompressed tar.
    pub layers: Vec<Vec<u8>>,
    pub media: Media,
    /// `(os, architecture)`, e.g. `("linux", "amd64")`.
    pub platform: (String, String),
    /// The config's `created` (RFC 3339); the epoch unless set.
    pub created: String,
}

impl ImageSpec {
    pub fn new(media: Media, os: &str, arch: &str, layers: Vec<Vec<u8>>) -> ImageSpec {
        ImageSpec {
            layers,
            media,
            platform: (os.to_string(), arch.to_string()),
            created: "1970-01-01T00:00:00Z".to_string(),
        }
    }

    /// The same image with another creation time in its config (a distinct config, so a
    /// distinct digest).
    pub fn created_at(mut self, created: &str) -> ImageSpec {
        self.created = created.to_string();
        self
    }
}

/// A pushed single-platform image.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub manifest_digest: String,
    pub manifest_bytes: Vec<u8>,
    pub media_type: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    /// Every blob the manifest references: the config first, then the layers.
    pub blob_digests: Vec<String>,
    /// `(os, architecture)` written into the config.
    pub platform: (String, String),
}

/// A gzip'd tar holding one file `layer-<seed>.bin` of `size` pseudo-random bytes.
/// Same arguments, same bytes (tar and gzip headers carry no timestamps).
/// Random content does not compress: the blob is a little larger than `size`.
pub fn deterministic_layer(seed: u64, size: usize) -> Vec<u8> {
    let content = deterministic_bytes(seed, size);
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, format!("layer-{seed}.bin"), &content[..])
        .expect("tar append");
    let tar_bytes = builder.into_inner().expect("tar finish");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).expect("gzip");
    gz.finish().expect("gzip finish")
}

/// `size` pseudo-random bytes from `seed` (splitmix64; stable forever).
pub fn deterministic_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Talks to one registry (`host` = `127.0.0.1:PORT`, plain HTTP).
#[derive(Clone)]
pub struct Seeder {
    pub host: String,
    agent: ureq::Agent,
    authorization: Option<String>,
    scheme: &'static str,
}

/// Status, headers and body of one exchange.
struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Seeder {
    /// Anonymous access.
    pub fn new(host: &str) -> Seeder {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            )
            .build()
            .into();
        Seeder {
            host: host.to_string(),
            agent,
            authorization: None,
            scheme: "http",
        }
    }

    /// Connects with this client certificate and key (an mTLS registry).
    pub fn with_client_identity(mut self, identity: &(String, String)) -> Seeder {
        self.agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .tls_config(super::registry::setup_tls(Some(identity)))
            .build()
            .into();
        self
    }

    /// HTTPS (certificate not verified: test setup only).
    pub fn https(mut self) -> Seeder {
        self.scheme = "https";
        self
    }

    /// This `Authorization` value on every request (e.g. `Bearer <jwt>`).
    pub fn with_authorization(host: &str, value: &str) -> Seeder {
        let mut s = Seeder::new(host);
        s.authorization = Some(value.to_string());
        s
    }

    /// HTTP basic auth on every request (what an htpasswd registry wants).
    pub fn with_basic_auth(host: &str, user: &str, password: &str) -> Seeder {
        let mut s = Seeder::new(host);
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        s.authorization = Some(format!("Basic {token}"));
        s
    }

    /// For a [`super::registry::TestRegistry`], with its credentials if it has any.
    pub fn for_registry(reg: &super::registry::TestRegistry) -> Seeder {
        let seeder = match &reg.credentials {
            Some((u, p)) => Seeder::with_basic_auth(&reg.host, u, p),
            None => Seeder::new(&reg.host),
        };
        let seeder = match &reg.client_identity {
            Some(identity) => seeder.with_client_identity(identity),
            None => seeder,
        };
        if reg.tls { seeder.https() } else { seeder }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.host)
    }

    /// One request. `body: None` sends none; `Some` sends exactly those bytes.
    fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(auth) = &self.authorization {
            builder = builder.header("Authorization", auth.as_str());
        }
        let result = match body {
            Some(bytes) => self.agent.run(builder.body(bytes).expect("request")),
            None => self.agent.run(builder.body(()).expect("request")),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            resp.body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .unwrap_or_else(|e| panic!("{method} {url}: reading body: {e}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Upload a blob (POST to start, then a monolithic PUT with `?digest=`), unless the
    /// repository already has it. Returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        if self.blob_exists(repo, &digest) {
            return digest;
        }
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let r = self.exchange("POST", &start, &[], Some(&[]));
        assert_eq!(r.status, 202, "POST {start}: {} {}", r.status, r.text());
        let location = r
            .header("Location")
            .unwrap_or_else(|| panic!("POST {start}: 202 without Location"));
        let put = append_query(
            &self.resolve(location),
            "digest",
            &digest.replace(':', "%3A"),
        );
        let r = self.exchange(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            Some(bytes),
        );
        assert_eq!(r.status, 201, "PUT {put}: {} {}", r.status, r.text());
        if let Some(d) = r.header("Docker-Content-Digest") {
            assert_eq!(d, digest, "registry computed another blob digest");
        }
        digest
    }

    /// PUT a manifest (tag or digest reference) with its bytes unchanged.
    /// Returns sha256 of the bytes, checked against the registry's Docker-Content-Digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let r = self.exchange("PUT", &url, &[("Content-Type", media_type)], Some(bytes));
        assert_eq!(r.status, 201, "PUT {url}: {} {}", r.status, r.text());
        if let Some(d) = r.header("Docker-Content-Digest") {
            assert_eq!(d, digest, "registry computed another manifest digest");
        }
        digest
    }

    /// Build and push a single-platform image: layers, a real config (architecture, os,
    /// rootfs.diff_ids, history) and a schema2 or OCI manifest, tagged `tag`.
    pub fn push_image(&self, repo: &str, tag: &str, spec: &ImageSpec) -> Pushed {
        let (os, arch) = (&spec.platform.0, &spec.platform.1);
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        let mut layer_digests = Vec::new();
        for (i, layer) in spec.layers.iter().enumerate() {
            let digest = self.push_blob(repo, layer);
            let gzipped = layer.starts_with(&[0x1f, 0x8b]);
            let diff_id = if gzipped {
                let mut tar_bytes = Vec::new();
                flate2::read::GzDecoder::new(&layer[..])
                    .read_to_end(&mut tar_bytes)
                    .expect("layer starts like gzip but does not decompress");
                sha256_digest(&tar_bytes)
            } else {
                digest.clone()
            };
            layer_descs.push(serde_json::json!({
                "mediaType": spec.media.layer_type(gzipped),
                "size": layer.len(),
                "digest": digest,
            }));
            diff_ids.push(diff_id);
            history.push(serde_json::json!({
                "created": "1970-01-01T00:00:00Z",
                "created_by": format!("image-migrator test layer {i}"),
            }));
            layer_digests.push(digest);
        }
        let config = serde_json::json!({
            "architecture": arch,
            "os": os,
            "created": spec.created,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/true"],
                "Labels": { "org.example.seeded-by": "image-migrator tests" },
            },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        let config_digest = self.push_blob(repo, &config_bytes);
        let media_type = spec.media.manifest_type();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": spec.media.config_type(),
                "size": config_bytes.len(),
                "digest": config_digest,
            },
            "layers": layer_descs,
        });
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest json");
        let manifest_digest = self.push_manifest(repo, tag, media_type, &manifest_bytes);
        let mut blob_digests = vec![config_digest.clone()];
        blob_digests.extend(layer_digests.iter().cloned());
        Pushed {
            manifest_digest,
            manifest_bytes,
            media_type: media_type.to_string(),
            config_digest,
            layer_digests,
            blob_digests,
            platform: (os.clone(), arch.clone()),
        }
    }

    /// Push a Docker manifest list or OCI index over already pushed children
    /// (`(child, os, architecture)`; the children must be in `repo`), tagged `tag`.
    /// Returns the index digest.
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(&Pushed, &str, &str)],
        media: Media,
    ) -> String {
        let manifests: Vec<_> = children
            .iter()
            .map(|(child, os, arch)| {
                serde_json::json!({
                    "mediaType": child.media_type,
                    "size": child.manifest_bytes.len(),
                    "digest": child.manifest_digest,
                    "platform": { "architecture": arch, "os": os },
                })
            })
            .collect();
        let media_type = media.index_type();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec_pretty(&index).expect("index json");
        self.push_manifest(repo, tag, media_type, &bytes)
    }

    /// [`Seeder::push_index`] with each child's own platform.
    pub fn push_index_of(
        &self,
        repo: &str,
        tag: &str,
        children: &[&Pushed],
        media: Media,
    ) -> String {
        let with_platforms: Vec<(&Pushed, &str, &str)> = children
            .iter()
            .map(|c| (*c, c.platform.0.as_str(), c.platform.1.as_str()))
            .collect();
        self.push_index(repo, tag, &with_platforms, media)
    }

    /// The digest of a manifest (tag or digest), or None when the registry has none.
    /// HEAD with every manifest type accepted; Docker-Content-Digest, else sha256 of GET.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let accept = ALL_MANIFEST_TYPES.join(", ");
        let r = self.exchange("HEAD", &url, &[("Accept", &accept)], None);
        match r.status {
            404 => None,
            200 => match r.header("Docker-Content-Digest") {
                Some(d) => Some(d.to_string()),
                None => self
                    .get_manifest(repo, reference)
                    .map(|(_, bytes)| sha256_digest(&bytes)),
            },
            s => panic!("HEAD {url}: unexpected HTTP {s}"),
        }
    }

    /// `(Content-Type, bytes)` of a manifest, or None when the registry has none.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let accept = ALL_MANIFEST_TYPES.join(", ");
        let r = self.exchange("GET", &url, &[("Accept", &accept)], None);
        match r.status {
            404 => None,
            200 => Some((r.header("Content-Type").unwrap_or("").to_string(), r.body)),
            s => panic!("GET {url}: unexpected HTTP {s}: {}", r.text()),
        }
    }

    /// Every tag of `repo`, sorted (following `Link` pagination); empty when the
    /// repository does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let mut url = self.url(&format!("/v2/{repo}/tags/list?n=100"));
        let mut tags = Vec::new();
        loop {
            let r = self.exchange("GET", &url, &[], None);
            match r.status {
                404 => return Vec::new(),
                200 => {}
                s => panic!("GET {url}: unexpected HTTP {s}: {}", r.text()),
            }
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("tags json");
            if let Some(list) = v["tags"].as_array() {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(String::from)));
            }
            // Link: </v2/repo/tags/list?last=x&n=100>; rel="next"
            match r
                .header("Link")
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
            {
                Some((next, _)) => url = self.resolve(next),
                None => break,
            }
        }
        tags.sort();
        tags
    }

    /// Whether `repo` has the blob (HEAD 200 vs 404).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let r = self.exchange("HEAD", &url, &[], None);
        match r.status {
            200 => true,
            404 => false,
            s => panic!("HEAD {url}: unexpected HTTP {s}"),
        }
    }

    /// The blob's bytes, or None when `repo` does not have it.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Option<Vec<u8>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let r = self.exchange("GET", &url, &[], None);
        match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!("GET {url}: unexpected HTTP {s}: {}", r.text()),
        }
    }

    /// Deletes a manifest by digest (and, on distribution, every tag naming it); the
    /// registry must accept.
    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"));
        let r = self.exchange("DELETE", &url, &[], None);
        assert_eq!(r.status, 202, "DELETE {url}: {}", r.text());
    }

    /// Status of an arbitrary GET (path like `/v2/`), for auth assertions.
    pub fn get_status(&self, path: &str) -> u16 {
        self.exchange("GET", &self.url(path), &[], None).status
    }

    /// An absolute URL for a `Location`/`Link` value (absolute, or relative to the host).
    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            self.url(&format!("/{location}"))
        }
    }
}

/// The OCI 1.1 empty config (`{}`), what artifact manifests use as their config.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Artifact types of the referrers the tests seed.
pub const SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const SBOM_TYPE: &str = "application/spdx+json";

/// A pushed manifest that refers to another (a signature, an SBOM, …).
#[derive(Clone, Debug)]
pub struct SeededReferrer {
    pub digest: String,
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub artifact_type: String,
    /// Its blobs: the config, then the payload layer.
    pub blob_digests: Vec<String>,
}

impl SeededReferrer {
    /// Its descriptor as a referrers index lists it.
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
            "artifactType": self.artifact_type,
        })
    }
}

/// `sha256-<hex>`: the referrers tag schema's tag of a digest.
pub fn fallback_tag(subject: &str) -> String {
    subject.replacen(':', "-", 1)
}

impl Seeder {
    /// Push an OCI 1.1 artifact manifest (empty config, one `payload` layer) whose
    /// `subject` is the manifest `subject_digest` (`subject_bytes` long, of
    /// `subject_type`), by digest. The registry is not told anything else: a registry
    /// without the referrers API needs [`Seeder::push_fallback_index`] too.
    pub fn push_referrer(
        &self,
        repo: &str,
        subject: (&str, &str, usize),
        artifact_type: &str,
        payload: &[u8],
    ) -> SeededReferrer {
        let (subject_digest, subject_type, subject_size) = subject;
        let config = self.push_blob(repo, b"{}");
        let layer = self.push_blob(repo, payload);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": { "mediaType": OCI_EMPTY, "digest": config, "size": 2 },
            "layers": [{ "mediaType": artifact_type, "digest": layer, "size": payload.len() }],
            "subject": { "mediaType": subject_type, "digest": subject_digest, "size": subject_size },
            "annotations": { "org.opencontainers.image.created": "1970-01-01T00:00:00Z" },
        });
        let bytes = serde_json::to_vec_pretty(&manifest).expect("referrer json");
        let digest = sha256_digest(&bytes);
        self.push_manifest(repo, &digest, OCI_MANIFEST, &bytes);
        SeededReferrer {
            digest,
            bytes,
            media_type: OCI_MANIFEST.to_string(),
            artifact_type: artifact_type.to_string(),
            blob_digests: vec![config, layer],
        }
    }

    /// [`Seeder::push_referrer`] for a pushed image.
    pub fn push_referrer_of(
        &self,
        repo: &str,
        subject: &Pushed,
        artifact_type: &str,
        payload: &[u8],
    ) -> SeededReferrer {
        self.push_referrer(
            repo,
            (
                &subject.manifest_digest,
                &subject.media_type,
                subject.manifest_bytes.len(),
            ),
            artifact_type,
            payload,
        )
    }

    /// The referrers tag schema: an OCI index listing `referrers`, tagged
    /// `sha256-<hex>` of `subject`. Returns its digest.
    pub fn push_fallback_index(
        &self,
        repo: &str,
        subject: &str,
        referrers: &[&SeededReferrer],
    ) -> String {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": referrers.iter().map(|r| r.descriptor()).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec_pretty(&index).expect("index json");
        self.push_manifest(repo, &fallback_tag(subject), OCI_INDEX, &bytes)
    }

    /// The digests a fallback index of `subject` lists (empty when there is none).
    pub fn fallback_referrers(&self, repo: &str, subject: &str) -> Vec<String> {
        let Some((_, bytes)) = self.get_manifest(repo, &fallback_tag(subject)) else {
            return Vec::new();
        };
        let index: serde_json::Value = serde_json::from_slice(&bytes).expect("index json");
        index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| m["digest"].as_str().expect("digest").to_string())
            .collect()
    }

    /// A cosign-style signature of `subject`: an OCI image manifest whose one layer is a
    /// simple-signing payload with the signature in an annotation, tagged
    /// `sha256-<hex>.sig`, as cosign (without the referrers API) stores it.
    pub fn push_cosign_signature(&self, repo: &str, subject: &str, seed: u64) -> Pushed {
        let payload = serde_json::json!({
            "critical": {
                "identity": { "docker-reference": format!("{}/{repo}", self.host) },
                "image": { "docker-manifest-digest": subject },
                "type": "cosign container image signature",
            },
            "optional": { "seed": seed },
        });
        let payload = serde_json::to_vec(&payload).expect("payload");
        let layer = self.push_blob(repo, &payload);
        let config = serde_json::json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer] },
        });
        let config_bytes = serde_json::to_vec(&config).expect("config");
        let config_digest = self.push_blob(repo, &config_bytes);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(deterministic_bytes(seed, 64));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "size": config_bytes.len(), "digest": config_digest },
            "layers": [{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "size": payload.len(),
                "digest": layer,
                "annotations": { "dev.cosignproject.cosign/signature": signature },
            }],
        });
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest json");
        let tag = format!("{}.sig", fallback_tag(subject));
        let manifest_digest = self.push_manifest(repo, &tag, OCI_MANIFEST, &manifest_bytes);
        Pushed {
            manifest_digest,
            manifest_bytes,
            media_type: OCI_MANIFEST.to_string(),
            config_digest: config_digest.clone(),
            layer_digests: vec![layer.clone()],
            blob_digests: vec![config_digest, layer],
            platform: (String::new(), String::new()),
        }
    }
}

/// Add `key=value` to a URL, keeping any query it already has (e.g. `_state=…`).
pub fn append_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}
