//! The sharded examples users copy do what they say: the Kubernetes Indexed Job's shard
//! command and merge Job, and the GitLab `parallel:` job's script and merge job, are read
//! from examples/ and run in the image built from this checkout (as the pod or the GitLab
//! job would: the pod as user 65532 on a read-only root filesystem) against real registries.
//! Every shard succeeds even when an image fails; the merge counts every image once and
//! fails when one failed. The shard counts in each example agree with each other.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde::Deserialize;
use serde_norway::Value;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};

const REPOSITORIES: [&str; 5] = ["apps/a", "apps/b", "apps/c", "apps/d", "apps/e"];

fn image() -> &'static str {
    support::image_under_test()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .unwrap()
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Scene {
    source: TestRegistry,
    target: TestRegistry,
    config: tempfile::TempDir,
    digests: Vec<String>,
}

/// Five images in five repositories (spread over the shards) and one missing source, in
/// a directory anyone can read (the pod does not run as root).
fn scene() -> Scene {
    let source = TestRegistry::start();
    let target = TestRegistry::start();
    let seeder = Seeder::for_registry(&source);
    let digests = REPOSITORIES
        .iter()
        .enumerate()
        .map(|(i, repo)| {
            let spec = ImageSpec::new(
                Media::Oci,
                "linux",
                "amd64",
                vec![deterministic_layer(60 + i as u64, 4_000)],
            );
            seeder.push_image(repo, "1.0", &spec).manifest_digest
        })
        .collect();
    let config = tempfile::tempdir().unwrap();
    let auth = format!(
        "{{ \"{}\": {{ \"insecure\": true }}, \"{}\": {{ \"insecure\": true }} }}\n",
        source.host, target.host
    );
    let mut rules: Vec<String> = REPOSITORIES
        .iter()
        .map(|repo| {
            format!(
                "  \"{}/{repo}:1.0\": \"{}/mirror/{repo}\"",
                source.host, target.host
            )
        })
        .collect();
    rules.push(format!(
        "  \"{}/apps/missing:1.0\": \"{}/mirror/missing\"",
        source.host, target.host
    ));
    std::fs::write(config.path().join("auth.json"), auth).unwrap();
    std::fs::write(
        config.path().join("images.json"),
        format!("{{\n{}\n}}\n", rules.join(",\n")),
    )
    .unwrap();
    open_to_all(config.path(), 0o777);
    Scene {
        source,
        target,
        config,
        digests,
    }
}

fn open_to_all(dir: &Path, mode: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn docker_run(args: &[&str]) -> Output {
    Command::new("docker")
        .args(["run", "--rm", "--network", "host"])
        .args(args)
        .output()
        .expect("docker run")
}

/// The merged report: every image counted once, the missing one failed, and the target
/// holds every copy with the source's digest.
fn assert_merged(scene: &Scene, merge: &Output, report: &Path) {
    assert_eq!(
        merge.status.code(),
        Some(1),
        "the merge fails when an image failed: {}",
        text(&merge.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["summary"]["total"], 6, "{report}");
    assert_eq!(report["summary"]["copied"], 5, "{report}");
    assert_eq!(report["summary"]["failed"], 1, "{report}");
    let target = Seeder::for_registry(&scene.target);
    for (repo, digest) in REPOSITORIES.iter().zip(&scene.digests) {
        let copied = target.manifest_digest(&format!("mirror/{repo}"), "1.0");
        assert_eq!(copied.as_deref(), Some(digest.as_str()), "{repo}");
    }
    let _ = &scene.source;
}

/// The number after the slash in `--shard "...K/N"`.
fn shard_total(command: &str) -> u64 {
    let after = command
        .split("--shard ")
        .nth(1)
        .expect("--shard in the command");
    let slash = after.find('/').unwrap();
    after[slash + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn kubernetes_indexed_job_shards_and_merge_job_combine_the_reports() {
    let docs = documents(&example("kubernetes-indexed-job.yaml"));
    let job = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Job" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("Job {name} in the example"))
            .clone()
    };
    let shards = job("image-migrator");
    let merge_job = job("image-migrator-merge");
    assert_eq!(shards["spec"]["completionMode"], "Indexed");
    let completions = shards["spec"]["completions"].as_u64().unwrap();
    let pod = &shards["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    let user = pod["securityContext"]["runAsUser"]
        .as_u64()
        .unwrap()
        .to_string();
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["command"][0], "/bin/sh");
    let script = container["args"][0].as_str().unwrap();
    assert_eq!(shard_total(script), completions, "{script}");
    let workdir = container["workingDir"].as_str().unwrap();

    let scene = scene();
    let reports = tempfile::tempdir().unwrap();
    open_to_all(reports.path(), 0o777);
    let config_mount = format!("{}:{workdir}:ro", scene.config.path().display());
    let reports_mount = format!("{}:/reports", reports.path().display());
    let user = format!("{user}:{user}");
    for index in 0..completions {
        let index_env = format!("JOB_COMPLETION_INDEX={index}");
        let out = docker_run(&[
            "--user",
            &user,
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-v",
            &config_mount,
            "-v",
            &reports_mount,
            "-w",
            workdir,
            "-e",
            &index_env,
            "--entrypoint",
            "/bin/sh",
            image(),
            "-c",
            script,
        ]);
        assert!(
            out.status.success(),
            "shard {index} must succeed even with a failed image: {}",
            text(&out.stderr)
        );
    }
    for k in 1..=completions {
        assert!(reports.path().join(format!("report-{k}.json")).exists());
    }

    let merge_pod = &merge_job["spec"]["template"]["spec"];
    let merge_args: Vec<&str> = merge_pod["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        merge_args
            .iter()
            .filter(|a| a.starts_with("/reports/report-"))
            .count() as u64,
        completions
    );
    let wait = merge_pod["initContainers"][0]["args"][0].as_str().unwrap();
    assert!(wait.contains(&format!("-ge {completions}")), "{wait}");
    let out = docker_run(&[
        "-v",
        &format!("{}:/reports:ro", reports.path().display()),
        "--entrypoint",
        "/bin/sh",
        image(),
        "-c",
        wait,
    ]);
    assert!(
        out.status.success(),
        "the wait ends once the reports are there"
    );
    let mut args = vec![
        "--user",
        &user,
        "--read-only",
        "-v",
        &reports_mount,
        image(),
    ];
    args.extend(merge_args);
    let merge = docker_run(&args);
    assert_merged(
        &scene,
        &merge,
        &reports.path().join("image-migrator-report.json"),
    );
}

#[test]
fn gitlab_parallel_jobs_and_merge_job_combine_the_reports() {
    let pipeline: Value = serde_norway::from_str(&example("gitlab-ci-parallel.yml")).unwrap();
    let migrate = &pipeline["migrate-images"];
    let total = migrate["parallel"].as_u64().unwrap();
    let script = migrate["script"][0].as_str().unwrap();
    let merge_script = pipeline["merge-reports"]["script"][0].as_str().unwrap();
    assert_eq!(
        pipeline["merge-reports"]["needs"][0]["job"],
        "migrate-images"
    );

    let scene = scene();
    let workspace = scene.config.path();
    let mount = format!("{}:/builds/group/project", workspace.display());
    let total_env = format!("CI_NODE_TOTAL={total}");
    for index in 1..=total {
        let index_env = format!("CI_NODE_INDEX={index}");
        let out = docker_run(&[
            "-v",
            &mount,
            "-w",
            "/builds/group/project",
            "-e",
            "GITLAB_CI=true",
            "-e",
            &index_env,
            "-e",
            &total_env,
            "--entrypoint",
            "",
            image(),
            "sh",
            "-c",
            script,
        ]);
        assert!(
            out.status.success(),
            "job {index}/{total} must succeed even with a failed image: {}",
            text(&out.stderr)
        );
        assert!(workspace.join(format!("report-{index}.json")).exists());
        assert!(workspace.join("junit.xml").exists());
    }
    let merge = docker_run(&[
        "-v",
        &mount,
        "-w",
        "/builds/group/project",
        "--entrypoint",
        "",
        image(),
        "sh",
        "-c",
        merge_script,
    ]);
    assert_merged(
        &scene,
        &merge,
        &workspace.join("image-migrator-report.json"),
    );
}

#[test]
fn github_sharded_example_matrix_matches_its_shard_count() {
    let workflow: Value = serde_norway::from_str(&example("github-sharded.yml")).unwrap();
    let job = &workflow["jobs"]["migrate"];
    let shards = job["strategy"]["matrix"]["shard"].as_sequence().unwrap();
    let step = job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["with"]["shard"].is_string())
        .expect("a step with a shard input");
    let shard = step["with"]["shard"].as_str().unwrap();
    assert_eq!(shard, format!("${{{{ matrix.shard }}}}/{}", shards.len()));
    let expected: Vec<u64> = (1..=shards.len() as u64).collect();
    let listed: Vec<u64> = shards.iter().map(|s| s.as_u64().unwrap()).collect();
    assert_eq!(listed, expected);
    assert_eq!(workflow["jobs"]["merge"]["needs"], "migrate");
    assert_eq!(workflow["jobs"]["merge"]["if"], "always()");
}
