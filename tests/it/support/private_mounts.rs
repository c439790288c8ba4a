//! Running the binary in a private mount namespace (`unshare -m`) where some system paths
//! (the trust store, /etc/docker) are replaced by bind mounts of test files. The mounts
//! vanish with the process: the machine's own files are never changed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `command` (program, arguments, environment, directory kept) run under `unshare -m`
/// after bind-mounting each `(source, target)` pair; targets must exist.
pub fn with_bind_mounts(command: &Command, mounts: &[(PathBuf, &Path)]) -> Command {
    let mut script = String::from("set -e; mount --make-rprivate /; ");
    let mut wrapped = Command::new("unshare");
    wrapped.args(["-m", "sh", "-c"]);
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for (i, (source, target)) in mounts.iter().enumerate() {
        assert!(
            target.exists(),
            "{} must exist to be mounted over",
            target.display()
        );
        script.push_str(&format!(
            "mount --bind \"${}\" \"${}\"; ",
            2 * i + 1,
            2 * i + 2
        ));
        args.push(source.into());
        args.push(target.into());
    }
    let n = 2 * mounts.len();
    script.push_str(&format!("shift {n}; exec \"$@\""));
    wrapped.arg(script).arg("sh");
    wrapped.args(args);
    wrapped.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}
