//! A bundle as one file (`export --to oci-archive:FILE.tar`): the layout packed with its
//! small files first — `oci-layout`, `index.json`, the sidecar, every manifest — and the
//! layers after, so it reads as a stream; skopeo reads it, and `import` pushes from it.

use std::io::Read;

use crate::support;

use support::registry::TestRegistry;
use support::seed::{Seeder, sha256_digest};
use support::sync::{SyncRun, skopeo};

use crate::airgap_export::seed;

#[test]
fn an_archive_lists_the_images_before_the_layers_and_imports() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeded = seed(&Seeder::for_registry(&src));
    let export = SyncRun::new()
        .insecure(&src.host)
        .rule(
            &format!("{}/app/x:1", src.host),
            &format!("{}/mirror/x:1", dst.host),
        )
        .rule(
            &format!("{}/app/y:1", src.host),
            &format!("{}/mirror/y:1", dst.host),
        )
        .arg("export")
        .arg("--to")
        .arg("oci-archive:bundle.tar");
    let run = export.run();
    run.assert_code(0).assert_all("copied");
    let archive = export.dir().join("bundle.tar");
    assert!(
        !export.dir().join("bundle.tar.d").exists(),
        "the staging layout is removed"
    );

    // The order of the entries, each hashing to its name.
    let mut entries = Vec::new();
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(sha256_digest(&bytes), format!("sha256:{hex}"), "{path}");
        }
        entries.push(path);
    }
    assert_eq!(
        entries[..3],
        ["oci-layout", "index.json", "image-migrator.json"]
    );
    let blob = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let manifests = [
        blob(&seeded.index),
        blob(&seeded.amd64.manifest_digest),
        blob(&seeded.arm64.manifest_digest),
        blob(&seeded.y1.manifest_digest),
    ];
    let last_manifest = manifests
        .iter()
        .map(|m| entries.iter().position(|e| e == m).expect(m))
        .max()
        .unwrap();
    assert_eq!(last_manifest, 3 + manifests.len() - 1, "{entries:#?}");
    let mut layers = seeded.amd64.blob_digests.clone();
    layers.extend(seeded.arm64.blob_digests.iter().cloned());
    layers.extend(seeded.y1.blob_digests.iter().cloned());
    layers.sort();
    layers.dedup();
    assert_eq!(entries.len(), 3 + manifests.len() + layers.len());

    // skopeo reads it.
    let x1 = format!("{}/app/x:1", src.host);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:{x1}", archive.display()),
    ]);
    assert_eq!(sha256_digest(raw.as_bytes()), seeded.index);

    // And it imports, leaving no unpacked directory behind.
    let import = SyncRun::new()
        .insecure(&dst.host)
        .arg("import")
        .arg("--from")
        .arg(&format!("oci-archive:{}", archive.display()))
        .run();
    import.assert_code(0).assert_all("copied");
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        target.manifest_digest("mirror/x", "1"),
        Some(seeded.index.clone())
    );
    assert_eq!(
        target.manifest_digest("mirror/y", "1"),
        Some(seeded.y1.manifest_digest.clone())
    );
    let left: Vec<_> = std::fs::read_dir(export.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("bundle.tar."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_archive_holding_a_path_outside_a_layout_is_refused() {
    let dst = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    for (name, bytes) in [
        (
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
        ),
        ("blobs/sha256/../../../escaped", b"x".as_slice()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        // set_path refuses `..`; write the name raw, as a hostile archive would.
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, bytes).unwrap();
    }
    builder.finish().unwrap();
    let run = SyncRun::new()
        .insecure(&dst.host)
        .arg("import")
        .arg("--from")
        .arg(&format!("oci-archive:{}", archive.display()))
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("is not part of an OCI image layout"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().parent().unwrap().join("escaped").exists());
}

#[test]
fn an_archive_is_read_in_place_and_a_corrupt_layer_in_it_is_caught() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeded = seed(&Seeder::for_registry(&src));
    let export = SyncRun::new()
        .insecure(&src.host)
        .rule(
            &format!("{}/app/y:1", src.host),
            &format!("{}/mirror/y:1", dst.host),
        )
        .arg("export")
        .arg("--to")
        .arg("oci-archive:bundle.tar");
    export.run().assert_code(0);
    let archive = export.dir().join("bundle.tar");
    // Flip a byte of y's own layer where it lies in the archive.
    let layer = &seeded.y1.layer_digests[1];
    let offset = {
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
        let entry = tar
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| {
                e.path()
                    .unwrap()
                    .ends_with(layer.trim_start_matches("sha256:"))
            })
            .unwrap();
        entry.raw_file_position()
    };
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[offset as usize + 10] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let before: Vec<_> = std::fs::read_dir(export.dir()).unwrap().collect();

    let run = SyncRun::new()
        .insecure(&dst.host)
        .arg("import")
        .arg("--from")
        .arg(&format!("oci-archive:{}", archive.display()))
        .run();
    run.assert_code(1);
    let y = &run.results()[0];
    assert_eq!(y["error"]["kind"], "digest", "{y}");
    assert!(
        y["error"]["message"]
            .as_str()
            .unwrap()
            .contains(layer.as_str()),
        "{y}"
    );
    assert!(Seeder::for_registry(&dst).tags("mirror/y").is_empty());
    let after: Vec<_> = std::fs::read_dir(export.dir()).unwrap().collect();
    assert_eq!(
        before.len(),
        after.len(),
        "nothing unpacked beside the archive"
    );
}
