//! Property tests of the parsers that read what users and registries write: image
//! references, `WWW-Authenticate`, `Link`, `Retry-After`, manifests, auth.json and
//! images.json. Whatever the input, they never panic; where a printer exists, parse →
//! print → parse gives the same value. (The `fuzz/` targets explore the same parsers
//! further, outside CI.)

use std::time::{Duration, SystemTime};

use image_migrator::digest::Digest;
use image_migrator::http::parse_retry_after;
use image_migrator::manifest::{self, Content, Manifest};
use image_migrator::reference::Reference;
use image_migrator::registry::auth::{Challenge, parse_challenge};
use image_migrator::registry::next_link;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Valid references: `host[:port]/path[:tag][@digest]`.
fn reference() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        "[a-z]([a-z0-9-]{0,8}[a-z0-9])?\\.[a-z]{2,5}",
        "localhost",
        "[a-z]{1,8}\\.[a-z]{2,3}:[1-9][0-9]{1,3}",
    ];
    let component = "[a-z0-9]{1,6}([._-][a-z0-9]{1,4}){0,2}";
    let path = prop::collection::vec(component, 1..4).prop_map(|parts| parts.join("/"));
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
    let digest = prop::option::of("[a-f0-9]{64}");
    (host, path, tag, digest).prop_map(|(host, path, tag, digest)| {
        let mut value = format!("{host}/{path}");
        if let Some(tag) = tag {
            value.push(':');
            value.push_str(&tag);
        }
        if let Some(hex) = digest {
            value.push_str("@sha256:");
            value.push_str(&hex);
        }
        value
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_never_panic_and_reprint_to_themselves(value in "\\PC{0,80}") {
        if let Ok(parsed) = Reference::parse(&value) {
            let printed = parsed.to_string();
            prop_assert_eq!(Reference::parse(&printed).unwrap(), parsed);
        }
        let _ = Reference::parse_normalized(&value);
    }

    #[test]
    fn valid_references_round_trip(value in reference()) {
        let parsed = Reference::parse(&value);
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let parsed = parsed.unwrap();
        let printed = parsed.to_string();
        let again = Reference::parse(&printed).unwrap();
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(again.to_string(), printed);
    }

    #[test]
    fn challenges_never_panic(header in "\\PC{0,120}") {
        let _ = parse_challenge(&header);
    }

    #[test]
    fn bearer_challenges_round_trip(
        realm in "https?://[a-z0-9.:-]{1,20}/[ -~]{0,30}",
        service in prop::option::of("[ -~]{0,20}"),
        scheme in prop_oneof!["Bearer", "bearer", "BEARER"],
    ) {
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut header = format!("{scheme} realm={}", quote(&realm));
        if let Some(service) = &service {
            header.push_str(&format!(",service={}", quote(service)));
        }
        header.push_str(",scope=\"repository:a/b:pull\"");
        prop_assert_eq!(
            parse_challenge(&header),
            Some(Challenge::Bearer { realm, service })
        );
    }

    #[test]
    fn links_never_panic(header in "\\PC{0,120}") {
        let _ = next_link(&header);
    }

    #[test]
    fn next_links_round_trip(
        target in "/v2/[a-z0-9/]{1,20}/tags/list\\?n=[0-9]{1,4}&last=[A-Za-z0-9_.-]{1,20}",
        other in prop::option::of("/[a-z]{1,10}"),
        spaced in any::<bool>(),
    ) {
        let rel = if spaced { "; rel = \"next\"" } else { "; rel=\"next\"" };
        let mut header = String::new();
        if let Some(other) = &other {
            header.push_str(&format!("<{other}>; rel=\"prev\", "));
        }
        header.push_str(&format!("<{target}>{rel}"));
        prop_assert_eq!(next_link(&header), Some(target.as_str()));
    }

    #[test]
    fn retry_after_never_panics_and_is_capped(value in "\\PC{0,40}") {
        if let Some(wait) = parse_retry_after(&value, SystemTime::now()) {
            prop_assert!(wait <= Duration::from_secs(120));
        }
    }

    #[test]
    fn retry_after_round_trips(seconds in 0u64..100_000, as_date in any::<bool>()) {
        let now = SystemTime::now();
        let printed = if as_date {
            httpdate::fmt_http_date(now + Duration::from_secs(seconds))
        } else {
            seconds.to_string()
        };
        let wait = parse_retry_after(&printed, now).unwrap();
        let expected = Duration::from_secs(seconds.min(120));
        // An HTTP date has whole seconds and the clock moves on.
        prop_assert!(wait <= expected && wait + Duration::from_secs(2) >= expected,
            "{printed}: {wait:?} vs {expected:?}");
    }

    #[test]
    fn manifests_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400),
                             header in prop::option::of("\\PC{0,40}")) {
        let _ = manifest::media_type_of(&bytes, header.as_deref());
        for media_type in [manifest::OCI_INDEX, manifest::OCI_MANIFEST, "x/y"] {
            let parsed = Manifest {
                digest: Digest::sha256_of(&bytes),
                bytes: bytes.clone(),
                media_type: manifest::MediaType::parse(media_type).unwrap(),
            };
            let _ = manifest::content(&parsed);
        }
    }

    #[test]
    fn manifest_json_shapes_never_panic(json in json_value()) {
        let bytes = serde_json::to_vec(&json).unwrap();
        let _ = manifest::media_type_of(&bytes, None);
        let parsed = Manifest {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: manifest::MediaType::OciIndex,
        };
        let _ = manifest::content(&parsed);
    }

    #[test]
    fn image_manifests_round_trip(blobs in prop::collection::vec(("[a-f0-9]{64}", 0u64..u64::MAX / 2), 1..20)) {
        let descriptor = |(hex, size): &(String, u64)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{hex}"), "size": size,
        });
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": descriptor(&blobs[0]),
            "layers": blobs[1..].iter().map(descriptor).collect::<Vec<_>>(),
        })).unwrap();
        let media_type = manifest::media_type_of(&bytes, None).unwrap();
        prop_assert_eq!(&media_type, &manifest::MediaType::OciManifest);
        let parsed = Manifest { digest: Digest::sha256_of(&bytes), bytes, media_type };
        let Content::Image { blobs: read } = manifest::content(&parsed).unwrap() else {
            panic!("not an image");
        };
        let read: Vec<(String, u64)> = read
            .iter()
            .map(|(digest, size)| (digest.as_str().trim_start_matches("sha256:").to_string(), *size))
            .collect();
        prop_assert_eq!(read, blobs);
    }

    #[test]
    fn config_files_never_panic(text in config_text()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        std::fs::write(&path, &text).unwrap();
        let _ = image_migrator::config::AuthConfig::load(&path, &|_| None);
        let _ = image_migrator::config::images::load(&path, &Default::default(), &|_| None);
    }
}

/// Arbitrary JSON, biased towards the keys a manifest has.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "sha256:[a-f0-9]{0,64}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("schemaVersion".to_string()),
            Just("mediaType".to_string()),
            Just("config".to_string()),
            Just("layers".to_string()),
            Just("manifests".to_string()),
            Just("digest".to_string()),
            Just("size".to_string()),
            Just("platform".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// auth.json / images.json-like text: JSON objects of strings, with the odd broken one.
fn config_text() -> impl Strategy<Value = String> {
    let string = "[ -~]{0,30}|\\$\\{[A-Z]{1,5}\\}|[a-z]{1,8}\\.[a-z]{2}(:[0-9]{2,4})?/[a-z/]{0,12}(:[a-z0-9]{1,5})?";
    let value = prop_oneof![string.prop_map(serde_json::Value::String), json_value(),];
    let object = prop::collection::vec((string, value), 0..6).prop_map(|pairs| {
        let body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}: {v}", serde_json::Value::String(k.clone())))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    });
    prop_oneof![object, "\\PC{0,60}"]
}
