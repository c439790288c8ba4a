//! The test support itself works: registries start, the seeder pushes images an
//! independent client (skopeo) accepts, and what is read back is what was pushed.

use crate::support;

use std::process::Command;

use support::registry::TestRegistry;
use support::seed::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ImageSpec, Media, OCI_INDEX, OCI_MANIFEST, Seeder,
    deterministic_layer, sha256_digest,
};

/// Run skopeo; it is a hard requirement (ci/lib.sh installs it), never a silent skip.
fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run skopeo ({e}): install it (apt-get install skopeo; ci/test does)")
        })
}

fn skopeo_ok(args: &[&str]) -> String {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn seeded_images_and_indexes_read_back_identically() {
    let reg = TestRegistry::start();
    let seeder = Seeder::for_registry(&reg);

    assert_eq!(deterministic_layer(7, 1000), deterministic_layer(7, 1000));
    assert_ne!(deterministic_layer(7, 1000), deterministic_layer(8, 1000));

    // A single-platform Docker schema2 image with two layers.
    let docker = seeder.push_image(
        "smoke/docker",
        "v1",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![
                deterministic_layer(1, 4096),
                deterministic_layer(2, 100_000),
            ],
        ),
    );
    assert_eq!(
        docker.manifest_digest,
        sha256_digest(&docker.manifest_bytes)
    );
    assert_eq!(docker.blob_digests.len(), 3);
    assert_eq!(
        seeder.manifest_digest("smoke/docker", "v1").as_deref(),
        Some(docker.manifest_digest.as_str())
    );
    let (ct, bytes) = seeder.get_manifest("smoke/docker", "v1").unwrap();
    assert_eq!(ct, DOCKER_MANIFEST);
    assert_eq!(bytes, docker.manifest_bytes);
    for d in &docker.blob_digests {
        assert!(seeder.blob_exists("smoke/docker", d), "{d} missing");
    }
    assert_eq!(
        seeder.get_blob("smoke/docker", &docker.layer_digests[0]),
        Some(deterministic_layer(1, 4096))
    );

    // An OCI image with one layer, two tags.
    let spec = ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(3, 2048)],
    );
    let oci = seeder.push_image("smoke/oci", "v1", &spec);
    let oci_again = seeder.push_image("smoke/oci", "v2", &spec);
    assert_eq!(
        oci.manifest_digest, oci_again.manifest_digest,
        "deterministic"
    );
    assert_eq!(seeder.tags("smoke/oci"), vec!["v1", "v2"]);
    let (ct, bytes) = seeder.get_manifest("smoke/oci", "v1").unwrap();
    assert_eq!(ct, OCI_MANIFEST);
    assert_eq!(bytes, oci.manifest_bytes);

    // Multi-arch: two platforms sharing their first layer, as a Docker manifest list
    // and as an OCI index in the same repository.
    let shared = deterministic_layer(10, 8192);
    let amd64 = seeder.push_image(
        "smoke/multi",
        "amd64",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "amd64",
            vec![shared.clone(), deterministic_layer(11, 512)],
        ),
    );
    let arm64 = seeder.push_image(
        "smoke/multi",
        "arm64",
        &ImageSpec::new(
            Media::Docker,
            "linux",
            "arm64",
            vec![shared.clone(), deterministic_layer(12, 512)],
        ),
    );
    assert_eq!(amd64.layer_digests[0], arm64.layer_digests[0]);
    assert_ne!(amd64.manifest_digest, arm64.manifest_digest);
    let list = seeder.push_index(
        "smoke/multi",
        "list",
        &[(&amd64, "linux", "amd64"), (&arm64, "linux", "arm64")],
        Media::Docker,
    );
    let oci_amd64 = seeder.push_image(
        "smoke/multi",
        "oci-amd64",
        &ImageSpec::new(Media::Oci, "linux", "amd64", vec![shared.clone()]),
    );
    let oci_arm64 = seeder.push_image(
        "smoke/multi",
        "oci-arm64",
        &ImageSpec::new(Media::Oci, "linux", "arm64", vec![shared]),
    );
    let index = seeder.push_index_of(
        "smoke/multi",
        "index",
        &[&oci_amd64, &oci_arm64],
        Media::Oci,
    );
    assert_eq!(
        seeder.manifest_digest("smoke/multi", "list"),
        Some(list.clone())
    );
    assert_eq!(
        seeder.manifest_digest("smoke/multi", "index"),
        Some(index.clone())
    );
    let (ct, bytes) = seeder.get_manifest("smoke/multi", &list).unwrap();
    assert_eq!(ct, DOCKER_MANIFEST_LIST);
    assert_eq!(sha256_digest(&bytes), list);
    let (ct, bytes) = seeder.get_manifest("smoke/multi", &index).unwrap();
    assert_eq!(ct, OCI_INDEX);
    assert_eq!(sha256_digest(&bytes), index);
    let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed["manifests"][1]["platform"]["architecture"], "arm64");
    assert_eq!(
        seeder.manifest_digest("smoke/multi", &arm64.manifest_digest),
        Some(arm64.manifest_digest.clone())
    );
    assert_eq!(
        seeder.tags("smoke/multi"),
        vec!["amd64", "arm64", "index", "list", "oci-amd64", "oci-arm64"]
    );

    // Absent things read as absent.
    assert_eq!(seeder.manifest_digest("smoke/docker", "nope"), None);
    assert_eq!(seeder.get_manifest("smoke/docker", "nope"), None);
    assert!(seeder.tags("smoke/nothing-here").is_empty());
    assert!(!seeder.blob_exists("smoke/oci", &docker.layer_digests[1]));

    // An independent client accepts what was seeded.
    for image in [
        "smoke/docker:v1",
        "smoke/oci:v1",
        "smoke/multi:list",
        "smoke/multi:index",
    ] {
        let reference = format!("docker://{}/{image}", reg.host);
        let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &reference]);
        let expected = seeder.get_manifest(
            image.split(':').next().unwrap(),
            image.split(':').nth(1).unwrap(),
        );
        assert_eq!(raw.as_bytes(), expected.unwrap().1, "{image}");
        let info: serde_json::Value =
            serde_json::from_str(&skopeo_ok(&["inspect", "--tls-verify=false", &reference]))
                .unwrap();
        assert_eq!(info["Os"], "linux", "{image}: {info}");
    }
    let info: serde_json::Value = serde_json::from_str(&skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/smoke/docker:v1", reg.host),
    ]))
    .unwrap();
    assert_eq!(info["Digest"], docker.manifest_digest.as_str());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Layers"][1], docker.layer_digests[1].as_str());

    // skopeo copy downloads and verifies every blob of the index.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    skopeo_ok(&[
        "--policy",
        policy.to_str().unwrap(),
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/smoke/multi:list", reg.host),
        &format!("dir:{}", dir.path().join("out").display()),
    ]);
}

#[test]
fn htpasswd_registry_refuses_anonymous_and_accepts_credentials() {
    let reg = TestRegistry::start_with_htpasswd("alice", "s3cret-p4ss");

    let anonymous = Seeder::new(&reg.host);
    assert_eq!(anonymous.get_status("/v2/"), 401);
    let wrong = Seeder::with_basic_auth(&reg.host, "alice", "wrong");
    assert_eq!(wrong.get_status("/v2/"), 401);

    let seeder = Seeder::for_registry(&reg);
    assert_eq!(seeder.get_status("/v2/"), 200);
    let pushed = seeder.push_image(
        "private/app",
        "1.0",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(5, 1024)],
        ),
    );
    assert_eq!(
        seeder.manifest_digest("private/app", "1.0"),
        Some(pushed.manifest_digest.clone())
    );
    assert_eq!(anonymous.get_status("/v2/private/app/tags/list"), 401);

    let reference = format!("docker://{}/private/app:1.0", reg.host);
    let out = skopeo(&["inspect", "--tls-verify=false", "--no-creds", &reference]);
    assert!(!out.status.success(), "anonymous skopeo inspect must fail");
    let info: serde_json::Value = serde_json::from_str(&skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret-p4ss",
        &reference,
    ]))
    .unwrap();
    assert_eq!(info["Digest"], pushed.manifest_digest.as_str());
}

#[test]
fn upload_location_keeps_its_query() {
    use support::seed::append_query;
    assert_eq!(
        append_query(
            "/v2/r/blobs/uploads/u?_state=a%3Db",
            "digest",
            "sha256%3Aab"
        ),
        "/v2/r/blobs/uploads/u?_state=a%3Db&digest=sha256%3Aab"
    );
    assert_eq!(
        append_query("http://h/v2/r/blobs/uploads/u", "digest", "sha256%3Aab"),
        "http://h/v2/r/blobs/uploads/u?digest=sha256%3Aab"
    );
}
