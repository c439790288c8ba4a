//! The report lists its results in the plan's order however the images end (results are
//! spooled to a temporary file as each image ends and read back for the report), with a
//! summary that adds up; and a run whose results cannot be spooled copies all the same,
//! says why and exits 1.

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;

fn image(seed: u64, size: usize) -> ImageSpec {
    ImageSpec::new(
        Media::Oci,
        "linux",
        "amd64",
        vec![deterministic_layer(seed, size)],
    )
}

/// Six tags of `team/alpha` (the first two large, so that they end last), `team/beta:1`
/// and `team/gamma:g1`, `g2`.
fn seed(src: &TestRegistry) {
    let seeder = Seeder::for_registry(src);
    for n in 1..=6u64 {
        let size = if n <= 2 { 3_000_000 } else { 1_000 };
        seeder.push_image("team/alpha", &format!("a{n}"), &image(n, size));
    }
    seeder.push_image("team/beta", "1", &image(11, 1_000));
    for n in 1..=2u64 {
        seeder.push_image("team/gamma", &format!("g{n}"), &image(20 + n, 1_000));
    }
}

fn rules(src: &TestRegistry, dst: &TestRegistry) -> SyncRun {
    let rule = |run: SyncRun, from: &str, to: &str| {
        run.rule(
            &format!("{}/{from}", src.host),
            &format!("{}/{to}", dst.host),
        )
    };
    let run = SyncRun::new().insecure(&src.host).insecure(&dst.host);
    let run = rule(run, "team/alpha", "mirror/alpha");
    let run = rule(run, "team/missing-repo", "mirror/missing-repo");
    let run = rule(run, "team/beta:1", "mirror/beta:1");
    let run = rule(run, "team/beta:no-such-tag", "mirror/beta:no-such-tag");
    rule(run, "team/gamma", "mirror/gamma")
}

/// The targets in plan order: the rule that failed while planning first, then each job
/// in rule order, the tags of an all-tags rule as the source lists them.
fn planned_targets(dst: &TestRegistry) -> Vec<String> {
    let mut targets = vec![format!("{}/mirror/missing-repo", dst.host)];
    targets.extend((1..=6).map(|n| format!("{}/mirror/alpha:a{n}", dst.host)));
    targets.push(format!("{}/mirror/beta:1", dst.host));
    targets.push(format!("{}/mirror/beta:no-such-tag", dst.host));
    targets.extend((1..=2).map(|n| format!("{}/mirror/gamma:g{n}", dst.host)));
    targets
}

#[test]
fn results_are_in_plan_order_with_a_summary_that_adds_up() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    seed(&src);
    // Four workers, each starting on its own stretch of the plan: the small images at
    // its end are done before the large ones at its start.
    let setup = rules(&src, &dst)
        .arg("--proc")
        .arg("4")
        .junit_to("junit.xml");
    let step_summary = setup.dir().join("step-summary.md");
    let setup = setup
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", step_summary.to_str().unwrap());
    let run = setup.run();

    run.assert_code(1);
    let targets: Vec<&str> = run
        .results()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, planned_targets(&dst), "{}", run.pretty());
    let statuses: Vec<&str> = run
        .results()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    let mut expected = vec!["failed"];
    expected.extend(["copied"; 7]);
    expected.extend(["failed", "copied", "copied"]);
    assert_eq!(statuses, expected, "{}", run.pretty());
    // The summary (checked against the results by the harness) counts every image.
    assert_eq!(run.count("total"), 11);
    assert_eq!(run.count("copied"), 9);
    assert_eq!(run.count("failed"), 2);
    assert!(run.count("bytes_transferred") > 6_000_000);
    // The summary line sums the same.
    assert!(
        run.stderr
            .contains("summary: 11 image(s): 9 copied, 0 unchanged, 2 failed"),
        "{}",
        run.stderr
    );
    // The JUnit file reads the same results, in the same order.
    let junit = setup.junit_text();
    let cases: Vec<usize> = planned_targets(&dst)
        .iter()
        .map(|target| junit.find(&format!("-&gt; {target}\"")).expect(target))
        .collect();
    assert!(cases.is_sorted(), "{junit}");
    assert_eq!(junit.matches("<failure").count(), 2, "{junit}");
    // GitHub: the failures annotated in plan order; the step summary's table lists them
    // first, then the rest in plan order.
    let annotated: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error title="))
        .collect();
    assert_eq!(annotated.len(), 2, "{}", run.stdout);
    assert!(annotated[0].contains("missing-repo"), "{}", run.stdout);
    assert!(annotated[1].contains("no-such-tag"), "{}", run.stdout);
    let summary = std::fs::read_to_string(&step_summary).unwrap();
    let rows: Vec<&str> = summary
        .lines()
        .filter_map(|l| l.split('`').nth(3))
        .collect();
    let planned = planned_targets(&dst);
    let mut failures_first = vec![planned[0].as_str(), planned[8].as_str()];
    failures_first.extend(
        planned
            .iter()
            .map(String::as_str)
            .filter(|t| !t.ends_with("missing-repo") && !t.ends_with("no-such-tag")),
    );
    assert_eq!(rows, failures_first, "{summary}");
}

#[test]
fn a_run_whose_results_cannot_be_spooled_copies_all_the_same_and_exits_1() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    seed(&src);
    let run = rules(&src, &dst);
    let no_such_dir = run.dir().join("no-such-dir");
    let run = run.env("TMPDIR", no_such_dir.to_str().unwrap());
    let output = run.std_command().output().expect("run image-migrator");

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: the results of this run (spooled to a temporary file)")
            && stderr.contains("no-such-dir")
            && stderr.contains("11 result(s) could not be written"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The images were copied and the summary counts them, though the list is lost.
    assert_eq!(
        Seeder::for_registry(&dst).tags("mirror/gamma"),
        ["g1", "g2"]
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.report_path()).unwrap()).unwrap();
    assert_eq!(report["summary"]["total"], 11);
    assert_eq!(report["summary"]["copied"], 9);
    assert_eq!(report["results"], serde_json::json!([]));
}
