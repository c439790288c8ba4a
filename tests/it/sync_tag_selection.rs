//! A user copies only some tags: a tag list mapped to new names, a `/regex/` key, and a
//! rule object whose filters (include, exclude, semver, latest, created_within, newest)
//! pick tags from a real registry's list. The dry run shows the same selection, the report
//! counts listed and selected tags per rule, and no manifest or config is fetched twice.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::json;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, migrator_requests_since};

/// RFC 3339 time `days` ago.
fn days_ago(days: u64) -> String {
    let time = SystemTime::now() - Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Tags of the seeded `team/etcd` and the age in days of their config; `v3.6.0` is an
/// index whose children are 50 and 1 days old (it counts as 1 day old).
fn seed(source: &Seeder) {
    let image = |seed: u64, created: String| {
        ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(seed, 2_000)],
        )
        .created_at(&created)
    };
    for (seed, tag, created) in [
        (1, "v3.4.0", "2020-01-01T00:00:00Z".to_string()),
        (2, "v3.5.0", days_ago(10)),
        (3, "v3.5.1-rc.1", days_ago(5)),
        (4, "v3.5.2", days_ago(20)),
        (5, "latest", days_ago(40)),
    ] {
        source.push_image("team/etcd", tag, &image(seed, created));
    }
    let old = source.push_image("team/etcd", "child-old", &image(6, days_ago(50)));
    let mut arm = image(7, days_ago(1));
    arm.platform = ("linux".into(), "arm64".into());
    let new = source.push_image("team/etcd", "child-new", &arm);
    source.push_index_of("team/etcd", "v3.6.0", &[&old, &new], Media::Oci);
}

fn copied_tags(target: &Seeder, repo: &str) -> Vec<String> {
    let mut tags = target.tags(repo);
    tags.sort();
    tags
}

#[test]
fn tag_lists_regexes_and_filters_select_from_a_real_registry() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    seed(&source);
    let (s, d) = (&src.host, &dst.host);
    let sync = SyncRun::new()
        .insecure(s)
        .insecure(d)
        .rule(
            &format!("{s}/team/etcd:v3.4.0,v3.5.2"),
            &format!("{d}/list/etcd:old,new"),
        )
        .rule(&format!("{s}/team/etcd:/^v3\\.5\\./"), &format!("{d}/regex/etcd"))
        .rule_value(
            &format!("{s}/team/etcd"),
            json!({
                "target": format!("{d}/semver/etcd"),
                "tags": {"include": ["^v"], "exclude": ["-rc"], "semver": ">=3.4.0, <4", "latest": 2}
            }),
        )
        .rule_value(
            &format!("{s}/team/etcd"),
            json!({
                "target": format!("{d}/recent/etcd"),
                "tags": {"include": "^v", "created_within": "30d", "newest": 2}
            }),
        );
    let expected: [(&str, Vec<&str>); 4] = [
        ("list/etcd", vec!["new", "old"]),
        ("regex/etcd", vec!["v3.5.0", "v3.5.1-rc.1", "v3.5.2"]),
        ("semver/etcd", vec!["v3.5.2", "v3.6.0"]),
        ("recent/etcd", vec!["v3.5.1-rc.1", "v3.6.0"]),
    ];

    // The dry run resolves the same selection and writes nothing.
    let dst_before = access_log(&dst).len();
    let dry = sync.arg_clone("--dry-run").run();
    dry.assert_all("would-copy");
    let mut would: Vec<String> = dry
        .results()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    would.sort();
    let mut wanted: Vec<String> = expected
        .iter()
        .flat_map(|(repo, tags)| tags.iter().map(move |t| format!("{d}/{repo}:{t}")))
        .collect();
    wanted.sort();
    assert_eq!(would, wanted, "{}", dry.pretty());
    assert!(
        dry.stderr.contains(&format!(
            "tags       {s}/team/etcd (line 4): 2 selected of 8 listed"
        )),
        "{}",
        dry.stderr
    );
    assert!(
        migrator_requests_since(&dst, dst_before)
            .iter()
            .all(|a| !a.is_write()),
        "the dry run wrote to the target"
    );

    let src_before = access_log(&src).len();
    let run = sync.run();
    run.assert_all("copied");
    for (repo, tags) in &expected {
        assert_eq!(copied_tags(&target, repo), *tags, "{repo}");
    }
    // Mapped in order: old = v3.4.0, new = v3.5.2.
    assert_eq!(
        target.manifest_digest("list/etcd", "old"),
        source.manifest_digest("team/etcd", "v3.4.0")
    );
    assert_eq!(
        target.manifest_digest("list/etcd", "new"),
        source.manifest_digest("team/etcd", "v3.5.2")
    );

    // Per all-tags rule: 8 tags listed (child-old and child-new included), and kept.
    let counts: Vec<(u64, u64, u64)> = run.report()["rules"]
        .as_array()
        .expect("rules in the report")
        .iter()
        .map(|r| {
            (
                r["rule_line"].as_u64().unwrap(),
                r["tags_listed"].as_u64().unwrap(),
                r["tags_selected"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [(3, 8, 3), (4, 8, 2), (5, 8, 2)],
        "{}",
        run.pretty()
    );

    // Reading creation times did not make the copy fetch anything twice.
    let mut gets: HashMap<String, usize> = HashMap::new();
    for access in migrator_requests_since(&src, src_before) {
        if access.method == "GET" && (access.is_manifest() || access.is_blob_get()) {
            *gets.entry(access.uri.clone()).or_default() += 1;
        }
    }
    let twice: Vec<_> = gets.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fetched more than once: {twice:#?}");
}

#[test]
fn a_yaml_config_file_holds_auth_and_images() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    seed(&source);
    let (s, d) = (&src.host, &dst.host);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "auth:\n  {s}/:\n    insecure: true\n  {d}:\n    insecure: true\nimages:\n  \
             ${{SRC}}/team/etcd:v3.5.0: {d}/yaml/etcd\n  {s}/team/etcd:\n    target: {d}/yaml/etcd\n    \
             tags:\n      semver: '>=3.5.1'\n      exclude: [rc]\n"
        ),
    )
    .unwrap();
    let output = support::migrator_std()
        .current_dir(dir.path())
        .env("SRC", s)
        .args(["--config", "config.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        copied_tags(&target, "yaml/etcd"),
        ["v3.5.0", "v3.5.2", "v3.6.0"]
    );
}
