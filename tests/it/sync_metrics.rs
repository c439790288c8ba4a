//! `sync --metrics FILE`: the run in the Prometheus text format, read back by the
//! Prometheus Python client's own parser (`prometheus_client.parser`, in the pinned test
//! venv) — images by status, bytes, blobs, pruned and drifted tags, duration, end time,
//! success — for a run that copied, left a drifted tag and pruned one.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support;

use support::spec_registry::{SpecRegistry, Switches};
use support::sync::SyncRun;

/// Every sample of the file, as `name{label="value",…}` → value, by the client's parser.
fn parsed(path: &std::path::Path) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert family.type == "gauge", family
    for s in family.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        samples[s.name + ("{%s}" % labels if labels else "")] = s.value
print(json.dumps(samples))
"#;
    let out = Command::new(support::cloud::python())
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "prometheus_client could not parse the metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_metrics_file_is_read_by_the_prometheus_parser() {
    let source = SpecRegistry::start(Switches::default());
    let target = SpecRegistry::start(Switches {
        deletes: true,
        ..Switches::default()
    });
    source.push_image("src/app", "1", &[b"one".to_vec()]);
    source.push_image("src/app", "2", &[b"two".to_vec()]);
    target.push_image("dst/app", "2", &[b"the target's own two".to_vec()]);
    target.push_image("dst/app", "stale", &[b"stale".to_vec()]);
    let sync = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/app", source.host),
            &format!("{}/dst/app", target.host),
        )
        .arg("--prune")
        .arg("--overwrite")
        .arg("never")
        .arg("--metrics")
        .arg("out/mirror.prom");
    let run = sync.run();
    run.assert_code(0);
    let metrics = parsed(&sync.dir().join("out/mirror.prom"));
    let value = |key: &str| {
        *metrics
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing: {metrics:#?}"))
    };
    assert_eq!(value(r#"image_migrator_images{status="copied"}"#), 1.0);
    assert_eq!(value(r#"image_migrator_images{status="drifted"}"#), 1.0);
    assert_eq!(value(r#"image_migrator_images{status="failed"}"#), 0.0);
    assert_eq!(value("image_migrator_pruned_tags"), 1.0);
    assert_eq!(value("image_migrator_drifted_tags"), 1.0);
    assert_eq!(
        value("image_migrator_bytes_transferred"),
        run.count("bytes_transferred") as f64
    );
    assert_eq!(
        value(r#"image_migrator_blobs{outcome="transferred"}"#),
        run.count("blobs_transferred") as f64
    );
    assert_eq!(value("image_migrator_last_run_success"), 1.0);
    let ended = humantime::parse_rfc3339(run.report()["finished_at"].as_str().unwrap()).unwrap();
    let ended = ended
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert_eq!(value("image_migrator_last_run_timestamp_seconds"), ended);
    assert!(value("image_migrator_duration_seconds") > 0.0);
}
