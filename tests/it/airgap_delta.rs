//! The second trip across the gap carries only what is new: `export --base PREVIOUS`
//! leaves out the configs and layers the previous bundle carried and records which base
//! it needs; importing it where the base was imported works, and where it was not, the
//! images fail naming the base and the missing digest, with nothing of them pushed.

use crate::support;

use support::bundle::{assert_blobs_verified, names, sidecar};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

#[test]
fn a_delta_carries_only_what_is_new_and_needs_its_base() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let shared = deterministic_layer(50, 5_000);
    let spec = |own: u64| {
        ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![shared.clone(), deterministic_layer(own, 2_000)],
        )
    };
    let one = source.push_image("app/x", "1", &spec(51));
    let export = |to: &str| {
        SyncRun::new()
            .insecure(&src.host)
            .rule(
                &format!("{}/app/x", src.host),
                &format!("{}/mirror/x", dst.host),
            )
            .arg("export")
            .arg("--to")
            .arg(to)
    };
    let full = export("oci-archive:full.tar");
    full.run().assert_code(0).assert_all("copied");
    let full_tar = full.dir().join("full.tar");
    let import = |from: String| {
        SyncRun::new()
            .insecure(&dst.host)
            .arg("import")
            .arg("--from")
            .arg(&from)
            .run()
    };
    import(format!("oci-archive:{}", full_tar.display()))
        .assert_code(0)
        .assert_all("copied");

    // A month later: a new tag.
    let two = source.push_image("app/x", "2", &spec(52));
    let delta = export("oci:delta")
        .arg("--base")
        .arg(&format!("oci-archive:{}", full_tar.display()));
    let run = delta.run();
    run.assert_code(0).assert_all("copied");
    let bundle = delta.dir().join("delta");
    assert_eq!(names(&bundle).len(), 2, "both tags are named");
    let mut carried = vec![
        one.manifest_digest.clone(),
        two.manifest_digest.clone(),
        two.config_digest.clone(),
        two.layer_digests[1].clone(),
    ];
    carried.sort();
    assert_eq!(
        assert_blobs_verified(&bundle),
        carried,
        "the base's blobs are left out"
    );
    let recorded = sidecar(&bundle);
    let base = &recorded["base"];
    let full_sidecar: serde_json::Value = {
        let mut tar = tar::Archive::new(std::fs::File::open(&full_tar).unwrap());
        let entry = tar
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().to_str() == Some("image-migrator.json"))
            .unwrap();
        serde_json::from_reader(entry).unwrap()
    };
    assert_eq!(base["id"], full_sidecar["id"]);
    assert!(base["id"].as_str().unwrap().starts_with("sha256:"));

    // Where the base was imported, the delta completes the repository.
    let done = import(format!("oci:{}", bundle.display()));
    done.assert_code(0);
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        target.manifest_digest("mirror/x", "2"),
        Some(two.manifest_digest.clone())
    );
    assert_eq!(
        done.result_for(&format!("{}/mirror/x:1", dst.host))["status"],
        "unchanged"
    );

    // Where it was not, each image fails naming the base and a digest it lacks.
    let fresh = TestRegistry::start();
    let failed = SyncRun::new()
        .insecure(&fresh.host)
        .rule(
            &format!("{}/app/x", src.host),
            &format!("{}/mirror/x", fresh.host),
        )
        .arg("import")
        .arg("--from")
        .arg(&format!("oci:{}", bundle.display()))
        .arg("--images")
        .arg("images.json")
        .run();
    failed.assert_code(1);
    assert_eq!(failed.results().len(), 2);
    for result in failed.results() {
        assert_eq!(result["status"], "failed");
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains(base["id"].as_str().unwrap()), "{message}");
        assert!(message.contains("imported first"), "{message}");
        assert!(
            [&one.config_digest, &shared_digest(&one)]
                .iter()
                .any(|d| message.contains(d.as_str())),
            "{message}"
        );
    }
    let nothing = Seeder::for_registry(&fresh);
    assert!(nothing.tags("mirror/x").is_empty());
    assert!(!nothing.blob_exists("mirror/x", &two.layer_digests[1]));
}

fn shared_digest(image: &support::seed::Pushed) -> String {
    image.layer_digests[0].clone()
}

#[test]
fn a_base_that_is_not_a_bundle_is_refused() {
    let src = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let run = SyncRun::new()
        .insecure(&src.host)
        .rule(&format!("{}/app/x:1", src.host), "dst.example/x")
        .arg("export")
        .arg("--to")
        .arg("oci:delta")
        .arg("--base")
        .arg(&format!("oci:{}", dir.path().display()))
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("--base") && run.stderr.contains("no image-migrator.json"),
        "{}",
        run.stderr
    );
}
