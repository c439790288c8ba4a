//! The subcommands, one module each: wiring from configuration to plan, copy and report.
//! The only place that chooses threads, prints the human log and writes files. Each command
//! returns an [`Outcome`]; `main` alone turns it into the process exit code.

mod discover;
mod export;
mod import;
mod merge;
mod prepare_targets;
mod sync;
mod validate;

use std::path::Path;

use crate::cli::FileArgs;
use crate::config::{Config, ConfigErrors, ConfigPaths, check_defaults};
use crate::github;
use crate::progress::human_bytes;
use crate::report::Report;

pub use discover::discover;
pub use export::export;
pub use import::import;
pub use merge::merge_reports;
pub use sync::sync;
pub use validate::validate;

/// How a command ended, as the contract's exit codes distinguish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done (exit 0).
    Success,
    /// Something failed at run time: an image, the cluster, writing a file (exit 1).
    Failed,
    /// The input (flags, files) is invalid; nothing was done (exit 2).
    InvalidInput,
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Which files a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// auth.json and the rules file.
    AuthAndRules,
    /// auth.json only (`import` of a bundle that records its rules).
    AuthOnly,
}

/// Loads and checks both files, or prints every problem and says why it stops.
pub(crate) fn load_config(files: &FileArgs) -> Result<Config, ConfigErrors> {
    load_files(files, Files::AuthAndRules)
}

/// Loads and checks the files `which` names.
pub(crate) fn load_files(files: &FileArgs, which: Files) -> Result<Config, ConfigErrors> {
    let defaults = files.defaults();
    if let Err(message) = check_defaults(&defaults) {
        return Err(ConfigErrors(vec![crate::config::ConfigError::file(
            Path::new("command line"),
            message,
        )]));
    }
    // A proxy variable sync could not use is a configuration error that validate shows too.
    if let Err(message) = crate::http::ProxyPolicy::from_env(&env_lookup) {
        return Err(ConfigErrors(vec![crate::config::ConfigError::file(
            Path::new("environment"),
            message,
        )]));
    }
    let paths = ConfigPaths {
        auth: files.auth.clone(),
        images: files.images.clone(),
        combined: files.config.clone(),
        machine_credentials: !files.no_docker_config,
    };
    match which {
        Files::AuthAndRules => Config::load(&paths, &defaults, &env_lookup),
        Files::AuthOnly => Config::load_credentials(&paths, &env_lookup),
    }
}

pub(crate) fn print_config_errors(errors: &ConfigErrors) {
    if github::active() {
        github::annotate_config_errors(errors);
    }
    crate::progress::log(&format!(
        "error: configuration is invalid ({} problem{}); nothing was copied:",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    ));
    for error in &errors.0 {
        crate::progress::log(&format!("  {error}"));
    }
}

/// Writes `content` to a file beside `path`, then renames it over `path`: a reader (a
/// textfile collector scraping `--metrics`) never sees half a file.
pub(crate) fn write_file_whole(path: &Path, content: &str) -> std::io::Result<()> {
    create_parent(path)?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    std::fs::write(&partial, content)?;
    std::fs::rename(&partial, path)
}

/// Writes `value` as pretty JSON and a newline, streamed to the file: a 100,000-tag report
/// never exists as one string in memory.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    use std::io::Write as _;
    write_streamed(path, |out| {
        serde_json::to_writer_pretty(&mut *out, value)?;
        out.write_all(b"\n")
    })
}

/// Writes the file as `write` renders it, through a buffer.
pub(crate) fn write_streamed(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write as _;
    create_parent(path)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    write(&mut out)?;
    out.flush()
}

fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// `; 2 drifted, 1 immutable; 3 tag(s) pruned` — what keeping a mirror did, when it did
/// anything.
fn mirror_summary<R>(report: &Report<R>) -> String {
    let s = &report.summary;
    let mut out = String::new();
    if s.drifted + s.immutable > 0 {
        out.push_str(&format!(
            "; {} drifted, {} immutable",
            s.drifted, s.immutable
        ));
    }
    if report.settings.prune {
        let verb = if report.settings.dry_run {
            "to prune"
        } else {
            "pruned"
        };
        out.push_str(&format!("; {} tag(s) {verb}", s.pruned));
        if s.prune_failed > 0 {
            out.push_str(&format!(", {} prune(s) failed", s.prune_failed));
        }
    }
    out
}

pub(crate) fn print_summary<R>(report: &Report<R>, report_path: &Path) {
    let s = &report.summary;
    let referrers = if report.settings.referrers {
        let verb = if report.settings.dry_run {
            "to copy"
        } else {
            "copied"
        };
        format!(
            "; {} referrer(s) {verb}, {} present",
            s.referrers_copied, s.referrers_unchanged
        )
    } else {
        String::new()
    };
    let t = &s.targets;
    let targets = if report.targets.is_empty() {
        String::new()
    } else {
        format!(
            "; {} target(s): {} existed, {} created, {} would create, {} failed",
            report.targets.len(),
            t.existed,
            t.created,
            t.would_create,
            t.failed
        )
    };
    let mirror = mirror_summary(report);
    crate::progress::log(&format!(
        "summary: {} image(s): {} copied, {} unchanged, {} failed, {} would copy, {} cancelled; \
         {} in {} blob(s), {} mounted, {} already present{referrers}{targets}{mirror}; {:.1}s; \
         report: {}",
        s.total,
        s.copied,
        s.unchanged,
        s.failed,
        s.would_copy,
        s.cancelled,
        human_bytes(s.bytes_transferred),
        s.blobs_transferred,
        s.blobs_mounted,
        s.blobs_skipped,
        report.duration_seconds,
        report_path.display()
    ));
}
