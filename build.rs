//! Puts the commit the binary was built from into `--version`, so a report or a bug
//! report names the exact source. The commit comes from `IMAGE_MIGRATOR_COMMIT` when set
//! (the Dockerfile passes its `REVISION` build argument: the image's build context has no
//! `.git`), else from `git rev-parse`, else it is "unknown". The script reruns only when
//! that variable, `HEAD` or the branch HEAD points to changes, not on every source edit.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Commit ids are shown with this many hex digits, however they were given.
const SHORT_COMMIT: usize = 12;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=IMAGE_MIGRATOR_COMMIT");
    let commit = match std::env::var("IMAGE_MIGRATOR_COMMIT") {
        Ok(given) if !given.trim().is_empty() => shorten(given.trim()),
        _ if is_own_checkout() => {
            watch_git_head();
            git(&["rev-parse", &format!("--short={SHORT_COMMIT}"), "HEAD"])
                .unwrap_or_else(|| "unknown".to_string())
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=IMAGE_MIGRATOR_BUILD_COMMIT={commit}");
}

/// A full hexadecimal commit id is cut to the short form; anything else is kept as given.
fn shorten(commit: &str) -> String {
    if commit.len() > SHORT_COMMIT && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        commit[..SHORT_COMMIT].to_string()
    } else {
        commit.to_string()
    }
}

/// True when this crate is the top of a git work tree, not sources unpacked inside some
/// other repository (a crate from a registry, a vendored copy), whose HEAD is not ours.
fn is_own_checkout() -> bool {
    let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    match (top.and_then(|t| t.canonicalize().ok()), here.canonicalize()) {
        (Some(top), Ok(here)) => top == here,
        _ => false,
    }
}

/// Asks cargo to rerun when HEAD moves: the HEAD file (a detached checkout or a branch
/// switch) and the file of the branch it names, or packed-refs when the branch is packed.
/// Only existing files are named: cargo reruns every build for a missing one.
fn watch_git_head() {
    let mut watched = vec![git_path("HEAD")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git_path(&branch));
        watched.push(git_path("packed-refs"));
    }
    for path in watched.into_iter().flatten() {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Where git keeps `name` (worktrees keep HEAD apart from the shared refs).
fn git_path(name: &str) -> Option<PathBuf> {
    let path = git(&["rev-parse", "--git-path", name])?;
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
