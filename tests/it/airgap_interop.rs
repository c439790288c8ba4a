//! Bundles are plain OCI image layouts, checked with other tools: skopeo and umoci read
//! what `export` writes, a layout skopeo wrote imports, and `sync` and `export` + `import`
//! put the same digests in the target (a platform filter included).

use std::process::Command;

use crate::support;

use support::bundle::names;
use support::registry::TestRegistry;
use support::seed::{Seeder, sha256_digest};
use support::sync::{SyncRun, skopeo};

use crate::airgap_export::{export_run, seed};

/// Runs a tool the machine must have (ci/lib.sh installs it); its standard output.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install it"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_and_umoci_read_our_bundle() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeded = seed(&Seeder::for_registry(&src));
    let export = export_run(&src, &dst.host);
    export.run().assert_code(0);
    let bundle = export.dir().join("bundle");
    let dir = bundle.display().to_string();
    let x1 = format!("{}/app/x:1", src.host);
    let x2 = format!("{}/app/x:2", src.host);

    // skopeo: the raw manifest under each name is the source's, byte for byte, and a
    // whole index copies out to a registry with its digest.
    for (name, digest) in names(&bundle) {
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{dir}:{name}")]);
        assert_eq!(sha256_digest(raw.as_bytes()), digest, "{name}");
    }
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{dir}:{x1}"),
        &format!("docker://{}/by-skopeo/x:1", dst.host),
    ]);
    assert_eq!(
        Seeder::for_registry(&dst).manifest_digest("by-skopeo/x", "1"),
        Some(seeded.index.clone())
    );

    // umoci: lists the names, reads an image's manifest and config, and unpacks it
    // (every layer checked against its digest on the way).
    let listed = tool("umoci", &["ls", "--layout", &dir]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(
        listed,
        names(&bundle)
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let stat = tool(
        "umoci",
        &["stat", "--json", "--image", &format!("{dir}:{x2}")],
    );
    assert!(stat.contains("history"), "{stat}");
    let unpacked = tempfile::tempdir().unwrap();
    let rootfs = unpacked.path().join("x2");
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{dir}:{x2}"),
            &rootfs.display().to_string(),
        ],
    );
    assert!(rootfs.join("rootfs").is_dir());
}

#[test]
fn a_layout_written_by_skopeo_imports() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeded = seed(&Seeder::for_registry(&src));
    let layout = tempfile::tempdir().unwrap();
    let x1 = format!("{}/app/x:1", src.host);
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{x1}"),
        &format!("oci:{}:{x1}", layout.path().display()),
    ]);
    let run = SyncRun::new()
        .insecure(&dst.host)
        .rule(&x1, &format!("{}/from-skopeo/x:1", dst.host))
        .arg("import")
        .arg("--from")
        .arg(&format!("oci:{}", layout.path().display()))
        .arg("--images")
        .arg("images.json")
        .run();
    run.assert_code(0).assert_all("copied");
    assert_eq!(
        Seeder::for_registry(&dst).manifest_digest("from-skopeo/x", "1"),
        Some(seeded.index.clone())
    );
}

#[test]
fn sync_and_export_import_give_the_same_target_digests() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let seeded = seed(&Seeder::for_registry(&src));
    let x = format!("{}/app/x", src.host);
    let platform = ["--platform", "linux/arm64"];
    let synced = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(&x, &format!("{}/synced/x", dst.host))
        .arg(platform[0])
        .arg(platform[1])
        .run();
    synced.assert_code(0).assert_all("copied");

    let export = SyncRun::new()
        .insecure(&src.host)
        .rule(&x, &format!("{}/airgapped/x", dst.host))
        .arg("export")
        .arg("--to")
        .arg("oci:bundle")
        .arg(platform[0])
        .arg(platform[1]);
    export.run().assert_code(0).assert_all("copied");
    let import = SyncRun::new()
        .insecure(&dst.host)
        .arg("import")
        .arg("--from")
        .arg(&format!("oci:{}", export.dir().join("bundle").display()))
        .run();
    import.assert_code(0).assert_all("copied");

    let target = Seeder::for_registry(&dst);
    let mut tags = target.tags("synced/x");
    tags.sort();
    assert_eq!(tags, ["1", "2", "amd64-only", "arm64-only"]);
    for tag in &tags {
        let synced = target.manifest_digest("synced/x", tag);
        assert!(synced.is_some());
        assert_eq!(synced, target.manifest_digest("airgapped/x", tag), "{tag}");
    }
    let filtered = target.manifest_digest("airgapped/x", "1").unwrap();
    assert_ne!(
        filtered, seeded.index,
        "the platform filter rewrote the index"
    );
    assert_eq!(
        import.result_for(&format!("{}/airgapped/x:1", dst.host))["source_digest"],
        filtered.as_str()
    );
}
