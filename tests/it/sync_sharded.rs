//! A migration too large for one machine: `--shard K/N` runs disjoint slices (a source
//! repository stays in one slice) and `report merge` combines their reports.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};

fn report(dir: &std::path::Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn shards_cover_every_repository_once_and_reports_merge() {
    let source = TestRegistry::start();
    let target = TestRegistry::start();
    let seeder = Seeder::for_registry(&source);
    let repos: Vec<String> = (0..8).map(|i| format!("team/app{i}")).collect();
    for (i, repo) in repos.iter().enumerate() {
        let layer = deterministic_layer(100 + i as u64, 2_000);
        seeder.push_image(
            repo,
            "1.0",
            &ImageSpec::new(Media::Oci, "linux", "amd64", vec![layer]),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("auth.json"),
        format!(
            r#"{{"{}": {{"insecure": true}}, "{}": {{"insecure": true}}}}"#,
            source.host, target.host
        ),
    )
    .unwrap();
    let rules: Vec<String> = repos
        .iter()
        .map(|r| format!(r#""{}/{r}": "{}/{r}""#, source.host, target.host))
        .collect();
    std::fs::write(
        dir.path().join("images.json"),
        format!("{{{}}}", rules.join(",\n")),
    )
    .unwrap();

    let mut slices = Vec::new();
    for k in 1..=3 {
        let name = format!("report-{k}.json");
        support::migrator()
            .current_dir(dir.path())
            .args(["--shard", &format!("{k}/3"), "--report", &name])
            .assert()
            .success();
        let report = report(dir.path(), &name);
        assert_eq!(report["settings"]["shard"], format!("{k}/3"));
        let sources: Vec<String> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["source"].as_str().unwrap().to_string())
            .collect();
        slices.push(sources);
    }
    // Disjoint slices whose union is every repository.
    let mut all: Vec<String> = slices.concat();
    all.sort();
    let mut expected: Vec<String> = repos
        .iter()
        .map(|r| format!("{}/{r}:1.0", source.host))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    assert!(
        slices.iter().filter(|s| !s.is_empty()).count() >= 2,
        "{slices:?}"
    );
    let target_seeder = Seeder::for_registry(&target);
    for repo in &repos {
        assert_eq!(target_seeder.tags(repo), vec!["1.0".to_string()], "{repo}");
    }

    support::migrator()
        .current_dir(dir.path())
        .args(["report", "merge", "-o", "merged.json"])
        .args(["report-1.json", "report-2.json", "report-3.json"])
        .assert()
        .success();
    let merged = report(dir.path(), "merged.json");
    assert_eq!(merged["summary"]["total"], 8);
    assert_eq!(merged["summary"]["copied"], 8);
    assert_eq!(merged["results"].as_array().unwrap().len(), 8);
    assert!(merged["settings"]["shard"].is_null());

    // A file that is not a report is refused with exit 2.
    std::fs::write(dir.path().join("junk.json"), "{}").unwrap();
    support::migrator()
        .current_dir(dir.path())
        .args([
            "report",
            "merge",
            "-o",
            "x.json",
            "report-1.json",
            "junk.json",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("junk.json"));
}

#[test]
fn a_bad_shard_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    support::migrator()
        .current_dir(dir.path())
        .args(["--shard", "4/3"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("K/N"));
}
