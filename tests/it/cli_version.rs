//! `--version` names the version and the commit the binary was built from (build.rs), so a
//! log or bug report pins the exact source. Built in this checkout, the commit must be the
//! checkout's HEAD: a stale one would mean build.rs did not rerun when HEAD moved.

use std::process::Command;

/// The commit build.rs should have seen: the override, else this checkout's HEAD.
fn expected_commit() -> String {
    if let Some(given) = option_env!("IMAGE_MIGRATOR_COMMIT").filter(|c| !c.trim().is_empty()) {
        let given = given.trim();
        return if given.len() > 12 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
            given[..12].to_string()
        } else {
            given.to_string()
        };
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap().trim().into(),
        _ => "unknown".into(),
    }
}

fn version_output(flag: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_image-migrator"))
        .arg(flag)
        .output()
        .unwrap();
    assert!(out.status.success(), "{flag} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_crate_version_and_the_commit() {
    let expected = format!(
        "image-migrator {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        expected_commit()
    );
    assert_eq!(version_output("--version"), expected);
    assert_eq!(version_output("-V"), expected);
}
