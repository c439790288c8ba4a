//! Docker Hub counts every manifest `GET` against a small pull quota (`HEAD` is free). A
//! mirror of tags that alias each other (`1.27` = `mainline` = `latest`, `1.25` = `1.25.4`)
//! and of a multi-arch index spends one pull per distinct manifest, and when the quota is
//! gone it stops asking: the images left fail fast with kind `rate-limit`, whole images are
//! copied rather than parts of many, and a run in the next window finishes the job.
//! The stand-in is the fault proxy playing Docker Hub's headers and 429 in front of a real
//! registry.

use crate::support;

use support::fault_proxy::FaultProxy;
use support::migrator::{assert_tags_complete, insecure, result_for, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};
use support::sync::SyncRun;
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
    fn workdir(&self, dst_repo: &str) -> SyncRun {
        SyncRun::ci(
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
    let output = work.command().output().unwrap();
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
    let output = s.workdir("mirror/nginx").command().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(s.hub.manifest_gets(), DISTINCT_MANIFESTS);
}

#[test]
fn an_exhausted_quota_fails_the_rest_fast_and_the_next_window_finishes() {
    let s = setup();
    s.hub.set_pull_quota(3);
    let work = s.workdir("mirror/small");
    let output = work.command().output().unwrap();
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
    // The quota is not hammered: once an answer said none is left (the third pull's),
    // no pull is sent, so none is refused.
    assert_eq!(s.hub.refused_pulls(), 0, "{:#?}", s.hub.log());
    assert_eq!(
        s.hub.manifest_gets(),
        3,
        "the 3 pulls of the quota, no more"
    );

    // The next window: the run finishes the job, pulling only what is still missing.
    s.hub.set_pull_quota(100);
    let before = s.hub.manifest_gets();
    let output = s.workdir("mirror/small").command().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(assert_tags_complete(&s.target, "mirror/small"), TAGS.len());
    assert!(s.hub.manifest_gets() - before <= DISTINCT_MANIFESTS);
}

/// The scene: Docker Hub with 3 anonymous pulls left, two single images (`1.24`,
/// `redis:7`), a list of two (`1.25` = `1.25.4`) and an OCI index of four, two of them
/// BuildKit attestations (`1.27` = `latest` = `mainline`). The `HEAD`s (free) tell which
/// trees cost one pull: those go first, in every run, and the indexes wait for them.
#[test]
fn a_small_quota_copies_the_images_of_one_pull_first_in_every_run() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let image = |seed: u64, os: &str, arch: &str, media: Media| {
        ImageSpec::new(media, os, arch, vec![deterministic_layer(seed, 2_000)])
    };
    let nginx = "library/nginx";
    let children: Vec<_> = [
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("unknown", "unknown"),
        ("unknown", "unknown"),
    ]
    .iter()
    .enumerate()
    .map(|(n, (os, arch))| {
        let spec = image(90 + n as u64, os, arch, Media::Oci);
        source.push_image(nginx, &format!("c{n}"), &spec)
    })
    .collect();
    let index = source.push_index_of(
        nginx,
        "1.27",
        &children.iter().collect::<Vec<_>>(),
        Media::Oci,
    );
    let (_, index_bytes) = source.get_manifest(nginx, &index).unwrap();
    for alias in ["latest", "mainline"] {
        source.push_manifest(nginx, alias, Media::Oci.index_type(), &index_bytes);
    }
    let amd64 = source.push_image(nginx, "l0", &image(95, "linux", "amd64", Media::Docker));
    let arm64 = source.push_image(nginx, "l1", &image(96, "linux", "arm64", Media::Docker));
    let list = source.push_index_of(nginx, "1.25", &[&amd64, &arm64], Media::Docker);
    let (_, list_bytes) = source.get_manifest(nginx, &list).unwrap();
    source.push_manifest(nginx, "1.25.4", Media::Docker.index_type(), &list_bytes);
    source.push_image(nginx, "1.24", &image(97, "linux", "amd64", Media::Oci));
    source.push_image(
        "library/redis",
        "7",
        &image(98, "linux", "amd64", Media::Oci),
    );
    let hub = FaultProxy::start(&src.host);
    let target = Seeder::for_registry(&dst);

    let nginx_tags = ["1.27", "latest", "mainline", "1.25", "1.25.4", "1.24"];
    let mut copied_each_run = Vec::new();
    for run in 0..20 {
        hub.set_pull_quota(3);
        let gets_before = hub.manifest_gets();
        let refused_before = hub.refused_pulls();
        let mut rules = serde_json::Map::new();
        for tag in nginx_tags {
            rules.insert(
                format!("{}/{nginx}:{tag}", hub.host),
                format!("{}/run{run}/nginx:{tag}", dst.host).into(),
            );
        }
        rules.insert(
            format!("{}/library/redis:7", hub.host),
            format!("{}/run{run}/redis:7", dst.host).into(),
        );
        let work = SyncRun::ci(
            &insecure(&[&hub.host, &dst.host]),
            &serde_json::Value::Object(rules.clone()),
        );
        let output = work.command().output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "run {run}: {}",
            text(&output)
        );
        let report = work.report();
        let mut copied = Vec::new();
        for source_ref in rules.keys() {
            let result = result_for(&report, source_ref);
            match result["status"].as_str() {
                Some("copied") => copied.push(source_ref.clone()),
                _ => assert_eq!(
                    result["error"]["kind"], "rate-limit",
                    "run {run}: {result:#}"
                ),
            }
        }
        for single in ["library/nginx:1.24", "library/redis:7"] {
            let single = format!("{}/{single}", hub.host);
            assert!(
                copied.contains(&single),
                "run {run}: {single} costs one pull and goes first: {report:#}"
            );
        }
        // Whatever was copied is whole, and a tag the target holds was reported copied.
        let held = assert_tags_complete(&target, &format!("run{run}/nginx"))
            + assert_tags_complete(&target, &format!("run{run}/redis"));
        assert_eq!(held, copied.len(), "run {run}: {report:#}");
        // Three pulls and no refusal: once the registry said none is left (in its answer
        // to the third pull), it is not asked again.
        assert_eq!(
            hub.refused_pulls(),
            refused_before,
            "run {run}: {:#?}",
            hub.log()
        );
        assert_eq!(hub.manifest_gets() - gets_before, 3, "run {run}");
        copied_each_run.push(copied);
    }
    assert!(
        copied_each_run.windows(2).all(|w| w[0] == w[1]),
        "the same images in every run: {copied_each_run:#?}"
    );
}
