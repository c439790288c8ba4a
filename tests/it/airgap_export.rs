//! A user on the connected side exports what images.json selects into one OCI image
//! layout (`export --to oci:DIR`): every image under its full source reference, blobs
//! stored once and byte for byte, the targets recorded in the sidecar; a second export
//! moves nothing, an interrupted one run again finishes, parallel exports into one layout
//! lose no entry, and a bad `--to` is refused before anything moves.

use crate::support;

use support::bundle::{assert_blobs_verified, blob_path, names, sidecar};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Pushed, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, migrator_requests_since};

/// Seeded: `app/x:1` an index of two images sharing a layer, `app/x:2` and `app/y:1`
/// single images sharing it too.
pub struct Seeded {
    pub amd64: Pushed,
    pub arm64: Pushed,
    pub index: String,
    pub x2: Pushed,
    pub y1: Pushed,
}

pub fn seed(source: &Seeder) -> Seeded {
    let shared = deterministic_layer(100, 6_000);
    let spec = |arch: &str, own: u64| {
        ImageSpec::new(
            Media::Oci,
            "linux",
            arch,
            vec![shared.clone(), deterministic_layer(own, 3_000)],
        )
    };
    let amd64 = source.push_image("app/x", "amd64-only", &spec("amd64", 1));
    let arm64 = source.push_image("app/x", "arm64-only", &spec("arm64", 2));
    let index = source.push_index_of("app/x", "1", &[&amd64, &arm64], Media::Oci);
    let x2 = source.push_image("app/x", "2", &spec("amd64", 3));
    let y1 = source.push_image("app/y", "1", &spec("amd64", 4));
    Seeded {
        amd64,
        arm64,
        index,
        x2,
        y1,
    }
}

/// An export of `app/x:1`, `app/x:2` and `app/y:1` from `src`, with targets in `dst`.
pub fn export_run(src: &TestRegistry, dst: &str) -> SyncRun {
    SyncRun::new()
        .insecure(&src.host)
        .rule(
            &format!("{}/app/x:1", src.host),
            &format!("{dst}/mirror/x:1"),
        )
        .rule(
            &format!("{}/app/x:2", src.host),
            &format!("{dst}/mirror/x:two"),
        )
        .rule(&format!("{}/app/y:1", src.host), &format!("{dst}/mirror/y"))
        .arg("export")
        .arg("--to")
        .arg("oci:bundle")
}

#[test]
fn one_layout_holds_every_image_under_its_source_name_blobs_once() {
    let src = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let seeded = seed(&source);
    let export = export_run(&src, "dst.example");

    let run = export.run();
    run.assert_code(0).assert_all("copied");
    assert_eq!(run.count("total"), 3);
    let bundle = run.dir.join("bundle");
    assert_eq!(
        std::fs::read_to_string(bundle.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let host = &src.host;
    let expected: std::collections::BTreeMap<String, String> = [
        (format!("{host}/app/x:1"), seeded.index.clone()),
        (format!("{host}/app/x:2"), seeded.x2.manifest_digest.clone()),
        (format!("{host}/app/y:1"), seeded.y1.manifest_digest.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(names(&bundle), expected);
    // Byte for byte: every manifest and blob of the source, each file once, each hashing
    // to its name; the shared layer is one file.
    let mut wanted = vec![seeded.index.clone()];
    for image in [&seeded.amd64, &seeded.arm64, &seeded.x2, &seeded.y1] {
        wanted.push(image.manifest_digest.clone());
        wanted.extend(image.blob_digests.iter().cloned());
    }
    wanted.sort();
    wanted.dedup();
    assert_eq!(assert_blobs_verified(&bundle), wanted);
    let (_, index_bytes) = source.get_manifest("app/x", "1").unwrap();
    assert_eq!(
        std::fs::read(blob_path(&bundle, &seeded.index)).unwrap(),
        index_bytes
    );
    assert_eq!(
        run.result_for(&format!("oci:bundle:{host}/app/x:2"))["source_digest"],
        seeded.x2.manifest_digest.as_str()
    );
    // The shared layer crossed once.
    assert_eq!(run.count("blobs_transferred"), wanted.len() as u64 - 5);

    let images = sidecar(&bundle)["images"].clone();
    let pairs: Vec<(String, String)> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["source"].as_str().unwrap().to_string(),
                i["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (
                format!("{host}/app/x:1"),
                "dst.example/mirror/x:1".to_string()
            ),
            (
                format!("{host}/app/x:2"),
                "dst.example/mirror/x:two".to_string()
            ),
            (
                format!("{host}/app/y:1"),
                "dst.example/mirror/y:1".to_string()
            ),
        ]
    );

    // Again: nothing moves, the source is asked only for manifests' digests.
    let before = access_log(&src).len();
    let again = export.run();
    again.assert_code(0).assert_all("unchanged");
    assert_eq!(again.count("bytes_transferred"), 0);
    let requests = migrator_requests_since(&src, before);
    assert!(
        requests
            .iter()
            .all(|a| a.method == "HEAD" || a.uri == "/v2/"),
        "{requests:#?}"
    );
}

#[test]
fn an_interrupted_export_run_again_finishes_and_keeps_what_it_verified() {
    let src = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let seeded = seed(&source);
    let export = export_run(&src, "dst.example");
    export.run().assert_code(0);
    let bundle = export.dir().join("bundle");
    // As a run killed half-way leaves it: one layer never renamed into place (its
    // temporary file left), and its image not yet named in index.json.
    let layer = &seeded.y1.layer_digests[1];
    let path = blob_path(&bundle, layer);
    std::fs::rename(&path, path.with_file_name(".partial-of-a-killed-run")).unwrap();
    let index_path = bundle.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let y_name = format!("{}/app/y:1", src.host);
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != y_name.as_str());
    std::fs::write(&index_path, index.to_string()).unwrap();

    let before = access_log(&src).len();
    let run = export.run();
    run.assert_code(0);
    let y = run.result_for(&format!("oci:bundle:{}/app/y:1", src.host));
    assert_eq!(y["status"], "copied");
    assert_eq!(y["blobs_transferred"], 1, "only the missing layer: {y}");
    assert_eq!(y["blobs_skipped"], 2);
    let blob_gets: Vec<_> = migrator_requests_since(&src, before)
        .into_iter()
        .filter(|a| a.is_blob_get())
        .collect();
    assert_eq!(blob_gets.len(), 1, "{blob_gets:#?}");
    assert!(blob_gets[0].uri.ends_with(layer.as_str()));
    assert_eq!(names(&bundle).len(), 3);
    std::fs::remove_file(path.with_file_name(".partial-of-a-killed-run")).unwrap();
    assert_blobs_verified(&bundle);
}

#[test]
fn parallel_exports_into_one_layout_lose_no_entry() {
    let src = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let shared = deterministic_layer(7, 4_000);
    let tags: Vec<String> = (0..6).map(|n| format!("t{n}")).collect();
    for (n, tag) in tags.iter().enumerate() {
        let spec = ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![shared.clone(), deterministic_layer(20 + n as u64, 2_000)],
        );
        source.push_image("app/p", tag, &spec);
    }
    let bundle = tempfile::tempdir().unwrap();
    let to = format!("oci:{}", bundle.path().display());
    let mut children = Vec::new();
    for tag in &tags {
        let run = SyncRun::new()
            .insecure(&src.host)
            .rule(&format!("{}/app/p:{tag}", src.host), "dst.example/p")
            .arg("export")
            .arg("--to")
            .arg(&to);
        let child = run.std_command().spawn().unwrap();
        children.push((run, child));
    }
    for (_run, mut child) in children {
        assert!(child.wait().unwrap().success());
    }
    let named = names(bundle.path());
    assert_eq!(named.len(), tags.len(), "{named:#?}");
    let recorded = sidecar(bundle.path())["images"].as_array().unwrap().len();
    assert_eq!(recorded, tags.len());
    assert_blobs_verified(bundle.path());
}

#[test]
fn a_bad_to_is_refused_before_anything_moves() {
    let src = TestRegistry::start();
    let base = SyncRun::new()
        .insecure(&src.host)
        .rule(&format!("{}/app/x:1", src.host), "dst.example/x");
    for (to, says) in [("bundle", "expected oci:DIR"), ("oci:", "needs a path")] {
        let run = base.arg_clone("export").arg("--to").arg(to).run();
        run.assert_code(2);
        assert!(
            run.stderr.contains("--to") && run.stderr.contains(says),
            "{}",
            run.stderr
        );
        assert!(run.report.is_none());
        assert!(access_log(&src).iter().all(|a| !a.by_migrator()));
    }
    // A bundle is not a mirror: --prune belongs to sync.
    let dir = tempfile::tempdir().unwrap();
    let to = format!("oci:{}", dir.path().join("b").display());
    let run = base
        .arg_clone("export")
        .arg("--to")
        .arg(&to)
        .arg("--prune")
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("--prune"), "{}", run.stderr);
    assert!(!dir.path().join("b").exists());
    assert!(access_log(&src).iter().all(|a| !a.by_migrator()));
}

#[test]
fn kill_9_in_the_middle_of_an_export_leaves_only_verified_blobs_and_a_rerun_finishes() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    use support::bundle::blobs_verified;
    use support::fault_proxy::FaultProxy;
    use support::migrator::seed_images;

    const TAGS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];
    let registry = TestRegistry::start();
    let pushed = seed_images(
        &Seeder::for_registry(&registry),
        "src/app",
        &TAGS,
        31,
        40_000,
    );
    let source = FaultProxy::start(&registry.host);
    source.set_delay(Duration::from_millis(150));
    let export = SyncRun::new()
        .insecure(&source.host)
        .rule(&format!("{}/src/app", source.host), "dst.example/app")
        .arg("export")
        .arg("--to")
        .arg("oci:bundle")
        .arg("--proc")
        .arg("2");
    let bundle = export.dir().join("bundle");
    let mut child = export
        .std_command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until the first image is named in index.json (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bundle.join("index.json").exists() || names(&bundle).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before the first image"
        );
        assert!(Instant::now() < deadline, "no image named within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no handler, no cleanup
    assert_eq!(child.wait().unwrap().code(), None);

    let named = names(&bundle).len();
    assert!(
        (1..TAGS.len()).contains(&named),
        "killed in the middle: {named} named"
    );
    let kept = blobs_verified(&bundle, true);
    source.set_delay(Duration::ZERO);
    let before = source.log().len();
    let run = export.run();
    run.assert_code(0);
    assert_eq!(names(&bundle).len(), TAGS.len());
    let mut wanted: Vec<String> = pushed
        .iter()
        .flat_map(|p| p.blob_digests.iter().chain([&p.manifest_digest]).cloned())
        .collect();
    wanted.sort();
    wanted.dedup();
    assert_eq!(blobs_verified(&bundle, true), wanted);
    // What the killed run had verified was not fetched again.
    let fetched: Vec<String> = source.log()[before..]
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    for blob in &kept {
        assert!(
            !fetched.contains(blob),
            "{blob} was kept, yet fetched again"
        );
    }
    assert!(!fetched.is_empty());
}

#[test]
fn a_dry_run_export_writes_nothing() {
    let src = TestRegistry::start();
    seed(&Seeder::for_registry(&src));
    let run = export_run(&src, "dst.example").arg_clone("--dry-run").run();
    run.assert_code(0).assert_all("would-copy");
    assert_eq!(run.count("total"), 3);
    assert!(!run.dir.join("bundle").exists());
}
