//! Manifests and indexes as a registry may send them: media type detection, what they
//! reference, and the platform filter never panic.
#![no_main]

use image_migrator::digest::Digest;
use image_migrator::manifest::{self, Manifest, PlatformSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = manifest::media_type_of(bytes, Some(manifest::DOCKER_MANIFEST));
    let detected = manifest::media_type_of(bytes, None);
    for media_type in [manifest::OCI_INDEX, manifest::OCI_MANIFEST] {
        let parsed = Manifest {
            digest: Digest::sha256_of(bytes),
            bytes: bytes.to_vec(),
            media_type: manifest::MediaType::parse(media_type).unwrap(),
        };
        let _ = manifest::content(&parsed);
        let wanted: PlatformSpec = "linux/amd64".parse().unwrap();
        let _ = manifest::filter_index(&parsed, &[wanted]);
    }
    if let Ok(media_type) = detected {
        assert!(manifest::is_valid_media_type(media_type.as_str()), "{media_type:?}");
    }
});
