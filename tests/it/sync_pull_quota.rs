//! Docker Hub counts every manifest `GET` against a small pull quota (`HEAD` is free). A
//! mirror of tags that alias each other (`1.27` = `mainline` = `latest`, `1.25` = `1.25.4`)
//! and of a multi-arch index spends one pull per distinct manifest, and when the quota is
//! gone it stops asking: the images left fail fast with kind `rate-limit`, whole images are
//! copied rather than parts of many, and a run in the next window finishes the job.
//! The stand-in is the fault proxy playing Docker Hub's headers and 429 in front of a real
//! registry.

use crate::support;

use support::fault_proxy::FaultProxy;
use support::migrator::{Workdir, assert_tags_complete, insecure, result_for, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::access_log;

const TAGS: [&str; 6] = ["1.27", "mainline", "latest", "1.25", "1.25.4", "1.24"];
/// The index, its two children, the 1.25 image and the 1.24 image.
const DISTINCT_MANIFESTS: usize = 5;

struct Setup {
    hub: FaultProxy,
    _src: TestRegistry,
    dst: TestRegistry,
    target: Seeder,
}

fn setup() -> Setup {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let image = |seed: u64, arch: &str| {
        ImageSpec::new(
            Media::Oci,
            "linux",
            arch,
            vec![deterministic_layer(seed, 3_000)],
        )
    };
    let amd64 = source.push_image("library/nginx", "amd64", &image(81, "amd64"));
    let arm64 = source.push_image("library/nginx", "arm64", &image(82, "arm64"));
    let index = source.push_index_of("library/nginx", "1.27", &[&amd64, &arm64], Media::Oci);
    let (_, index_bytes) = source.get_manifest("library/nginx", &index).unwrap();
    for alias in ["mainline", "latest"] {
        source.push_manifest(
            "library/nginx",
            alias,
            Media::Oci.index_type(),
            &index_bytes,
        );
    }
    let old = source.push_image("library/nginx", "1.25", &image(83, "amd64"));
    source.push_manifest(
        "library/nginx",
        "1.25.4",
        &old.media_type,
        &old.manifest_bytes,
    );
    source.push_image("library/nginx", "1.24", &image(84, "amd64"));
    let hub = FaultProxy::start(&src.host);
    let target = Seeder::for_registry(&dst);
    Setup {
        hub,
        _src: src,
        dst,
        target,
    }
}

impl Setup {
    fn workdir(&self, dst_repo: &str) -> Workdir {
        Workdir::new(
            &insecure(&[&self.hub.host, &self.dst.host]),
            &tag_rules(
                &self.hub.host,
                "library/nginx",
                &self.dst.host,
                dst_repo,
                &TAGS,
            ),
        )
    }
}

#[test]
fn each_distinct_manifest_is_pulled_once_and_a_no_op_pulls_none() {
    let s = setup();
    s.hub.set_pull_quota(100);
    let work = s.workdir("mirror/nginx");
    let output = work.sync().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        s.hub.manifest_gets(),
        DISTINCT_MANIFESTS,
        "one GET per distinct manifest: {:#?}",
        s.hub.log()
    );
    let report = work.report();
    assert_eq!(
        report["summary"]["manifest_gets"][&s.hub.host], DISTINCT_MANIFESTS as u64,
        "{:#}",
        report["summary"]
    );
    assert_eq!(assert_tags_complete(&s.target, "mirror/nginx"), TAGS.len());
    // Three jobs reach the one index at once: each child is pushed once, by one of them.
    let child_puts = access_log(&s.dst)
        .into_iter()
        .filter(|a| a.method == "PUT" && a.uri.contains("/manifests/sha256:"))
        .count();
    assert_eq!(child_puts, 2, "one PUT per child manifest");

    // Nothing changed: HEADs only, no pull spent.
    let output = s.workdir("mirror/nginx").sync().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(s.hub.manifest_gets(), DISTINCT_MANIFESTS);
}

#[test]
fn an_exhausted_quota_fails_the_rest_fast_and_the_next_window_finishes() {
    let s = setup();
    s.hub.set_pull_quota(3);
    let work = s.workdir("mirror/small");
    let output = work.sync().output().unwrap();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let report = work.report();
    let results: Vec<&serde_json::Value> = TAGS
        .iter()
        .map(|tag| result_for(&report, &format!("{}/library/nginx:{tag}", s.hub.host)))
        .collect();
    let copied = results.iter().filter(|r| r["status"] == "copied").count();
    assert!(copied >= 1, "a whole image fits in 3 pulls: {report:#}");
    // What was copied is whole: every tag in the target points at complete content.
    assert_eq!(assert_tags_complete(&s.target, "mirror/small"), copied);
    let failed: Vec<_> = results.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(copied + failed.len(), TAGS.len(), "{report:#}");
    for result in &failed {
        assert_eq!(result["error"]["kind"], "rate-limit", "{result:#}");
        let message = result["error"]["message"].as_str().unwrap();
        for needle in ["pull quota exhausted", "3 pulls per 6 h", "Credentials"] {
            assert!(message.contains(needle), "{needle:?} missing: {message}");
        }
    }
    // The quota is not hammered: no retry of a 429, at most one per image (pulls already
    // on their way when the first 429 came), then the registry is not asked again.
    let refused = s.hub.refused_pulls();
    assert!(
        (1..=failed.len()).contains(&refused),
        "{refused} refusals for {} failed images: {:#?}",
        failed.len(),
        s.hub.log()
    );
    assert_eq!(
        s.hub.manifest_gets(),
        3 + refused,
        "3 pulls and the refused ones"
    );

    // The next window: the run finishes the job, pulling only what is still missing.
    s.hub.set_pull_quota(100);
    let before = s.hub.manifest_gets();
    let output = s.workdir("mirror/small").sync().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(assert_tags_complete(&s.target, "mirror/small"), TAGS.len());
    assert!(s.hub.manifest_gets() - before <= DISTINCT_MANIFESTS);
}
