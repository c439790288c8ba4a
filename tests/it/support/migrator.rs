//! Helpers for the values a run is given and what it left: auth.json marking hosts
//! insecure, images.json rules per tag, seeded images, a report's result, the output as
//! text, and tags that point at complete content. Runs start with [`super::sync::SyncRun`].

use std::process::Output;

use serde_json::Value;

/// auth.json marking each host `insecure` (plain HTTP test registries and proxies).
pub fn insecure(hosts: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for host in hosts {
        map.insert(host.to_string(), serde_json::json!({ "insecure": true }));
    }
    Value::Object(map)
}

/// The report's result whose source is `source` (`registry/repo:tag`).
pub fn result_for<'a>(report: &'a Value, source: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == source)
        .unwrap_or_else(|| panic!("no result for {source} in {report:#}"))
}

/// stdout + stderr as text, for messages and assertions.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Pushes one small two-layer image per tag into `repo` (layers differ per tag and per
/// `seed`, ~`layer_size` bytes each) and returns them in tag order.
pub fn seed_images(
    seeder: &super::seed::Seeder,
    repo: &str,
    tags: &[&str],
    seed: u64,
    layer_size: usize,
) -> Vec<super::seed::Pushed> {
    use super::seed::{ImageSpec, Media, deterministic_layer};
    tags.iter()
        .enumerate()
        .map(|(i, tag)| {
            let base = seed * 1000 + 10 * i as u64;
            let spec = ImageSpec::new(
                Media::Oci,
                "linux",
                "amd64",
                vec![
                    deterministic_layer(base, layer_size),
                    deterministic_layer(base + 1, layer_size / 4 + 1),
                ],
            );
            seeder.push_image(repo, tag, &spec)
        })
        .collect()
}

/// images.json mapping `src_host/src_repo:tag` → `dst_host/dst_repo:tag` for each tag.
pub fn tag_rules(src: &str, src_repo: &str, dst: &str, dst_repo: &str, tags: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for tag in tags {
        map.insert(
            format!("{src}/{src_repo}:{tag}"),
            Value::String(format!("{dst}/{dst_repo}:{tag}")),
        );
    }
    Value::Object(map)
}

/// Asserts that every tag of `repo` points at a manifest whose blobs (and, for an index,
/// child manifests and their blobs) all exist: no tag points at missing content.
pub fn assert_tags_complete(seeder: &super::seed::Seeder, repo: &str) -> usize {
    let tags = seeder.tags(repo);
    for tag in &tags {
        assert_manifest_complete(seeder, repo, tag);
    }
    tags.len()
}

fn assert_manifest_complete(seeder: &super::seed::Seeder, repo: &str, reference: &str) {
    let (_, bytes) = seeder
        .get_manifest(repo, reference)
        .unwrap_or_else(|| panic!("{repo}:{reference} is tagged but its manifest is missing"));
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    if let Some(children) = manifest["manifests"].as_array() {
        for child in children {
            assert_manifest_complete(seeder, repo, child["digest"].as_str().unwrap());
        }
        return;
    }
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().unwrap() {
        blobs.push(layer["digest"].as_str().unwrap().to_string());
    }
    for blob in blobs {
        assert!(
            seeder.blob_exists(repo, &blob),
            "{repo}:{reference} references blob {blob}, which is missing"
        );
    }
}
