//! A scratch project directory holding auth.json / images.json, and a `validate` command
//! that runs in it with an environment that does not depend on the caller's.

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// Variables the tests set themselves; removed (besides [`super::CLEARED_ENV`]) so the
/// caller's values never leak in.
const CONTROLLED_VARS: [&str; 7] = [
    "SWR_AK",
    "SWR_LOGIN_KEY",
    "REG_USER",
    "REG_PASS",
    "TOKEN",
    "USER_NAME",
    "NOT_SET_ANYWHERE",
];

pub struct Project {
    pub dir: TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A project with only an images.json (no auth.json: anonymous access).
    pub fn with_images(images: &str) -> Self {
        let project = Project::new();
        project.write("images.json", images);
        project
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> &Self {
        std::fs::write(self.dir.path().join(name), content).expect("write file");
        self
    }

    /// `image-migrator validate <args>` in the project directory.
    pub fn validate(&self, args: &[&str]) -> Command {
        let mut cmd = super::migrator();
        cmd.current_dir(self.dir.path()).arg("validate").args(args);
        for var in CONTROLLED_VARS {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Runs `validate --format json <args>`, expects success, returns the rules.
    pub fn rules(&self, args: &[&str]) -> Vec<Value> {
        let mut cmd = self.validate(&["--format", "json"]);
        cmd.args(args);
        rules_of(&mut cmd)
    }
}

/// Runs a prepared `validate --format json` command, expects exit 0, returns the rules.
pub fn rules_of(cmd: &mut Command) -> Vec<Value> {
    let output = cmd.output().expect("run image-migrator");
    assert_eq!(
        output.status.code(),
        Some(0),
        "validate failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value =
        serde_json::from_slice(&output.stdout).expect("validate --format json prints JSON");
    doc["rules"].as_array().expect("a \"rules\" array").clone()
}

/// Runs a command that must fail with the configuration exit code 2 and print nothing on
/// stdout; returns its stderr.
pub fn config_error(cmd: &mut Command) -> String {
    let output = cmd.output().expect("run image-migrator");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit 2, stderr:\n{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when invalid, got {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// The `(source, target, tags)` triple of a rule, for compact assertions.
pub fn triple(rule: &Value) -> (String, String, String) {
    let s = |k: &str| {
        rule[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} is a string in {rule}"))
            .to_string()
    };
    (s("source"), s("target"), s("tags"))
}
