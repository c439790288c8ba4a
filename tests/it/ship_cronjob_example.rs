//! examples/kubernetes-cronjob.yaml does what it says: its images.json passes `validate`,
//! and the sync arguments of its CronJob, run twice by the binary against real registries
//! (the pod's /data volume a directory of the run), keep a mirror: the second night prunes
//! a tag the source dropped, keeps the protected one, and leaves the report, the log and
//! the metrics file where the example says.

use serde::Deserialize;
use serde_norway::Value;

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

fn example() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/kubernetes-cronjob.yaml"
    ))
    .unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

fn spec(seed: u64) -> ImageSpec {
    ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, 2_000)],
    )
}

#[test]
fn kubernetes_cronjob_example_keeps_a_mirror_night_after_night() {
    let docs = example();
    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["auth.json", "images.json"] {
        let text = config["data"][file].as_str().unwrap();
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    support::migrator()
        .current_dir(dir.path())
        .env("SWR_AK", "ak")
        .env("SWR_LOGIN_KEY", "key")
        .arg("validate")
        .assert()
        .success();

    let cron = docs.iter().find(|d| d["kind"] == "CronJob").unwrap();
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("/data/", "data/"))
        .collect();
    assert_eq!(args[0], "sync");

    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (source, target) = (Seeder::for_registry(&src), Seeder::for_registry(&dst));
    source.push_image("app/x", "1.2.3", &spec(1));
    let dropped = source.push_image("app/x", "nightly", &spec(2));
    let mut nightly = SyncRun::new().insecure(&src.host).insecure(&dst.host).rule(
        &format!("{}/app/x", src.host),
        &format!("{}/mirror/x", dst.host),
    );
    // The report goes where the example says; the harness reads it from there.
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        nightly = match arg.as_str() {
            "--report" => nightly.report_to(rest.next().unwrap()),
            _ => nightly.arg(arg),
        };
    }
    // The pod's /data volume.
    std::fs::create_dir_all(nightly.dir().join("data")).unwrap();
    nightly.run().assert_all("copied");
    target.push_image("mirror/x", "release-1", &spec(3));
    source.delete_manifest("app/x", &dropped.manifest_digest);

    let second = nightly.run();
    second.assert_code(0);
    let mut tags = target.tags("mirror/x");
    tags.sort();
    assert_eq!(tags, ["1.2.3", "release-1"]);
    assert_eq!(second.count("pruned"), 1);
    let data = nightly.dir().join("data");
    let metrics = std::fs::read_to_string(data.join("image-migrator.prom")).unwrap();
    assert!(
        metrics.contains("image_migrator_pruned_tags 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("image_migrator_last_run_success 1\n"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(data.join("image-migrator.log")).unwrap();
    assert!(log.contains("pruned "), "{log}");
}
