//! When something goes wrong the user learns what and why: a rule whose source does not
//! exist fails while the others are copied (exit 1), the report and the JUnit file say
//! why; a plain-HTTP registry not marked `insecure` fails with a clear TLS error; invalid
//! rules stop everything before any request (exit 2).

use crate::support;

use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::{SyncRun, access_log, assert_skopeo_digest};

fn seed_good(src: &TestRegistry) -> support::seed::Pushed {
    Seeder::for_registry(src).push_image(
        "team/good",
        "1",
        &ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(1, 2_000)],
        ),
    )
}

#[test]
fn a_missing_source_fails_its_rule_and_the_rest_is_copied() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let good = seed_good(&src);
    let target = Seeder::for_registry(&dst);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/missing-repo", src.host),
            &format!("{}/mirror/missing-repo", dst.host),
        )
        .rule(
            &format!("{}/team/good:1", src.host),
            &format!("{}/mirror/good:1", dst.host),
        )
        .rule(
            &format!("{}/team/good:no-such-tag", src.host),
            &format!("{}/mirror/good:no-such-tag", dst.host),
        )
        .arg("--junit")
        .arg("out/junit.xml")
        .run();

    run.assert_code(1);
    assert_eq!(run.count("total"), 3, "{}", run.pretty());
    assert_eq!(run.count("copied"), 1);
    assert_eq!(run.count("failed"), 2);

    // The good rule was copied all the same.
    assert_eq!(
        run.result_for(&format!("{}/mirror/good:1", dst.host))["status"],
        "copied"
    );
    assert_eq!(target.tags("mirror/good"), ["1"]);
    assert_skopeo_digest(
        &format!("{}/mirror/good:1", dst.host),
        &good.manifest_digest,
        None,
    );

    // A repository that does not exist: its tags cannot be listed.
    let repo = run.result_for(&format!("{}/mirror/missing-repo", dst.host));
    assert_eq!(repo["status"], "failed");
    assert_eq!(repo["rule"], format!("{}/team/missing-repo", src.host));
    assert_eq!(repo["rule_line"], 2);
    assert_eq!(repo["error"]["kind"], "not-found", "{}", run.pretty());
    assert_eq!(repo["error"]["http_status"], 404);
    let message = repo["error"]["message"].as_str().unwrap();
    assert!(message.contains("team/missing-repo"), "{message}");
    assert!(message.contains("NAME_UNKNOWN"), "{message}");

    // A tag that does not exist.
    let tag = run.result_for(&format!("{}/mirror/good:no-such-tag", dst.host));
    assert_eq!(tag["status"], "failed");
    assert_eq!(tag["error"]["kind"], "not-found", "{}", run.pretty());
    let tag_message = tag["error"]["message"].as_str().unwrap();
    assert!(
        tag_message.contains(&format!("{}/team/good:no-such-tag", src.host)),
        "{tag_message}"
    );
    assert!(
        !target
            .tags("mirror/good")
            .contains(&"no-such-tag".to_string())
    );
    assert!(target.tags("mirror/missing-repo").is_empty());

    // The human log names each failure.
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("failed") && l.contains("missing-repo")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("1 copied"), "{}", run.stderr);
    assert!(run.stderr.contains("2 failed"), "{}", run.stderr);

    // JUnit: one test case per image, the failures carry the error.
    let junit = run.file("out/junit.xml");
    assert_eq!(junit.matches("<testcase").count(), 3, "{junit}");
    assert_eq!(junit.matches("<failure").count(), 2, "{junit}");
    assert!(junit.contains("tests=\"3\""), "{junit}");
    assert!(junit.contains("failures=\"2\""), "{junit}");
    assert!(junit.contains("NAME_UNKNOWN"), "{junit}");
    assert!(junit.contains("no-such-tag"), "{junit}");
    assert!(
        junit.contains(&format!(
            "{}/team/good:1 -&gt; {}/mirror/good:1",
            src.host, dst.host
        )) || junit.contains(&format!(
            "{}/team/good:1 -> {}/mirror/good:1",
            src.host, dst.host
        )),
        "{junit}"
    );
}

#[test]
fn a_plain_http_registry_needs_insecure() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    seed_good(&src);

    // The source is not marked insecure: HTTPS is tried and fails.
    let run = SyncRun::new()
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/good:1", src.host),
            &format!("{}/mirror/good:1", dst.host),
        )
        .run();

    run.assert_code(1);
    let result = run.result_for(&format!("{}/mirror/good:1", dst.host));
    assert_eq!(result["status"], "failed");
    assert_eq!(result["attempts"], 1, "a TLS failure is not retried");
    assert_eq!(result["error"]["kind"], "network", "{}", run.pretty());
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("https://{}", src.host)),
        "{message}"
    );
    assert!(message.contains("TLS"), "{message}");
    assert!(
        message.contains("insecure"),
        "says how to fix it: {message}"
    );
    assert!(Seeder::for_registry(&dst).tags("mirror/good").is_empty());

    // Marked insecure, the same rule works.
    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/good:1", src.host),
            &format!("{}/mirror/good:1", dst.host),
        )
        .run();
    run.assert_all("copied");
}

#[test]
fn invalid_rules_stop_everything_with_exit_2() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    seed_good(&src);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        // Valid on its own: must not be copied either.
        .rule(
            &format!("{}/team/good:1", src.host),
            &format!("{}/mirror/good:1", dst.host),
        )
        // Every tag cannot go to one tag.
        .rule(
            &format!("{}/team/good", src.host),
            &format!("{}/mirror/good:latest", dst.host),
        )
        // Two tags cannot map to three.
        .rule(
            &format!("{}/team/good:1,2", src.host),
            &format!("{}/mirror/x:a,b,c", dst.host),
        )
        .arg("--junit")
        .arg("junit.xml")
        .run();

    run.assert_code(2);
    assert!(run.report.is_none(), "no report: nothing ran");
    assert!(!run.dir.join("junit.xml").exists());
    let stderr = &run.stderr;
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(stderr.contains("images.json"), "{stderr}");
    assert!(stderr.contains("images.json:3:"), "{stderr}");
    assert!(stderr.contains("images.json:4:"), "{stderr}");
    assert!(stderr.contains("nothing was copied"), "{stderr}");
    for reg in [&src, &dst] {
        assert!(
            !access_log(reg).iter().any(|a| a.by_migrator()),
            "no request when the configuration is invalid"
        );
    }
    assert!(Seeder::for_registry(&dst).tags("mirror/good").is_empty());
}

#[test]
fn an_unreachable_registry_fails_quickly_with_a_connection_error() {
    let dst = TestRegistry::start();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let run = SyncRun::new()
        .insecure(&gone)
        .insecure(&dst.host)
        .rule(
            &format!("{gone}/team/app:1"),
            &format!("{}/mirror/app:1", dst.host),
        )
        .arg("--retries")
        .arg("0")
        .run();
    let elapsed = started.elapsed();

    run.assert_code(1);
    let result = run.result_for(&format!("{}/mirror/app:1", dst.host));
    assert_eq!(result["error"]["kind"], "network", "{}", run.pretty());
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains(&gone), "{message}");
    assert!(message.contains("refused"), "{message}");
    // Nothing to wait for: the run ends as soon as the failure is known (the progress
    // ticker must not hold it for its 30 s interval).
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "took {elapsed:?}"
    );
    assert!(run.report()["duration_seconds"].as_f64().unwrap() < 10.0);
}
