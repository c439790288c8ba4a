//! `ci/lint` is the gate that keeps what users copy (action.yml, the workflows, the
//! examples) and the scripts clean: it must pass on this repository and fail, naming the
//! check, on each kind of problem it exists for. The real script runs on copies of the
//! linted files, one clean and one with a problem of each kind put in (the tools' venv
//! is the one ci/lint keeps, made on first use).

use std::path::Path;
use std::process::{Command, Output};

const LINTED: [&str; 9] = [
    "ci",
    "action",
    ".ci",
    ".github",
    "examples",
    "action.yml",
    "Cargo.toml",
    "Cargo.lock",
    "tests/it/support/cloud_venv.sh",
];

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// A copy of the linted files, with each `(file, from, to)` text replacement applied.
fn checkout_with(edits: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in LINTED {
        copy_tree(&root.join(name), &dir.path().join(name));
    }
    for (file, from, to) in edits {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
    dir
}

fn lint(dir: &Path) -> Output {
    Command::new("bash")
        .arg(dir.join("ci/lint"))
        .output()
        .expect("run ci/lint")
}

fn assert_fails_in(out: &Output, step: &str, finding: &str) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "lint passed:\n{stdout}\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("[ci] lint: {step}")) && l.ends_with(" FAILED")),
        "{step} should fail:\n{stderr}"
    );
    assert!(
        stdout.contains(finding) || stderr.contains(finding),
        "{finding} expected:\n{stdout}\n{stderr}"
    );
}

#[test]
fn lint_passes_on_this_repository() {
    let dir = checkout_with(&[]);
    let out = lint(dir.path());
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One copy with one problem of each kind (one lint run keeps the test quick); every
/// check must fail and name its finding.
#[test]
fn lint_fails_on_each_kind_of_problem_and_names_it() {
    let dir = checkout_with(&[
        // Template expansion inside run: (code injection).
        (
            "examples/github-workflow.yml",
            "echo \"copied:    $COPIED\"",
            "echo \"copied:    ${{ steps.migrate.outputs.copied }}\"",
        ),
        // An action pinned to a tag, not a commit.
        (
            ".github/workflows/ci.yml",
            "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",
            "actions/checkout@v7",
        ),
        // Checkout credentials persisted.
        (
            "examples/github-sharded.yml",
            "\n        with:\n          persist-credentials: false",
            "",
        ),
        // action.yml with a misspelt key.
        (
            "action.yml",
            "runs:\n  using: docker",
            "runs:\n  usign: docker",
        ),
        // A GitLab keyword with a value GitLab rejects.
        (
            "examples/gitlab-ci-parallel.yml",
            "when: always\n    expire_in",
            "when: sometimes\n    expire_in",
        ),
        // A shell mistake (unquoted a-b read as arithmetic).
        (
            "ci/image",
            "LOCAL_BUILDER=\"image-migrator/builder-base:bookworm\"",
            "LOCAL_BUILDER=image-migrator/builder-base:bookworm",
        ),
    ]);
    let out = lint(dir.path());
    for (step, finding) in [
        ("zizmor", "template-injection"),
        ("zizmor", "unpinned-uses"),
        ("zizmor", "artipacked"),
        ("action.yml", "using"),
        ("GitLab CI", "sometimes"),
        ("shellcheck", "SC2100"),
    ] {
        assert_fails_in(&out, step, finding);
    }
}
