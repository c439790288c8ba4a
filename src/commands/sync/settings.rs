//! `sync`'s flags turned into what the run does, checked before any request (as
//! ripgrep's low-level args become high-level ones): `--log` opened, both files read and
//! checked, `--ca-file` present, the transport's and the copy's options, and what the
//! report shows of them. A problem is said here and ends the run before anything moves.

use std::path::{Path, PathBuf};

use crate::cli::{FileArgs, SyncArgs};
use crate::commands::{Files, Outcome, load_files, print_config_errors};
use crate::config::{AuthConfig, MachineCredentials, Rule};
use crate::copy::{CopyOptions, Mode, Push};
use crate::github;
use crate::http::TransportOptions;
use crate::plan::Shard;
use crate::progress::log;
use crate::report::Settings;

/// What a sync run does, validated.
pub struct SyncSettings {
    pub auth: AuthConfig,
    pub machine: MachineCredentials,
    pub rules: Vec<Rule>,
    pub transport: TransportOptions,
    pub copy: CopyOptions,
    /// Requests in flight per registry at most.
    pub registry_concurrency: usize,
    pub shard: Option<Shard>,
    /// `--create-targets`: target containers (Harbor projects, …) made before any copy.
    pub create_targets: bool,
    /// Running as a GitHub Actions step (secrets masked, outputs and summary written).
    pub in_github: bool,
    pub report: PathBuf,
    pub junit: Option<PathBuf>,
    /// What the report shows of these settings.
    pub shown: Settings,
}

impl SyncSettings {
    /// The settings, or the outcome of a run that must not start (said on the log).
    pub fn from_args(args: &SyncArgs) -> Result<SyncSettings, Outcome> {
        Self::reading(args, Files::AuthAndRules)
    }

    /// The settings, reading the files `which` names.
    pub fn reading(args: &SyncArgs, which: Files) -> Result<SyncSettings, Outcome> {
        if let Some(path) = &args.log {
            match std::fs::File::create(path) {
                Ok(file) => crate::progress::tee_to(file),
                Err(e) => {
                    log(&format!(
                        "error: --log {}: {e}; nothing was copied",
                        path.display()
                    ));
                    return Err(Outcome::InvalidInput);
                }
            }
        }
        let config = load_files(&args.files, which).map_err(|errors| {
            print_config_errors(&errors);
            Outcome::InvalidInput
        })?;
        let in_github = github::active();
        if in_github {
            github::mask_secrets(&config.auth.secret_values());
            github::mask_secrets(&config.machine.secret_values());
        }
        if let Some(ca_file) = &args.ca_file
            && !ca_file.is_file()
        {
            log(&format!(
                "error: --ca-file (or SSL_CERT_FILE) {}: no such file; nothing was copied",
                ca_file.display()
            ));
            return Err(Outcome::InvalidInput);
        }
        Ok(SyncSettings {
            auth: config.auth,
            machine: config.machine,
            rules: config.rules,
            transport: TransportOptions {
                retries: args.retries,
                ca_file: args.ca_file.clone(),
                max_idle_per_host: usize::from(args.proc) * 2,
                certs_d: Some(crate::http::DOCKER_CERTS_D.into()),
                time: args.time_bounds(),
            },
            copy: copy_options(args),
            registry_concurrency: usize::from(args.registry_concurrency),
            shard: args.shard,
            create_targets: args.create_targets,
            in_github,
            report: args.report.clone(),
            junit: args.junit.clone(),
            shown: shown(args),
        })
    }
}

fn copy_options(args: &SyncArgs) -> CopyOptions {
    CopyOptions {
        mode: if args.dry_run {
            Mode::DryRun
        } else {
            Mode::Copy
        },
        push: if args.force {
            Push::Always
        } else {
            Push::Changed
        },
        platforms: args.platforms(),
        referrers: args.referrers,
        threads: usize::from(args.proc),
    }
}

/// The settings as the report shows them.
fn shown(args: &SyncArgs) -> Settings {
    Settings {
        auth_file: effective_auth_file(&args.files),
        images_file: args.files.images_file().display().to_string(),
        default_registry: args.files.defaults().registry,
        default_namespace: args.files.defaults().namespace,
        proc: usize::from(args.proc),
        retries: args.retries,
        dry_run: args.dry_run,
        force: args.force,
        ca_file: args.ca_file.as_ref().map(|p| p.display().to_string()),
        platforms: args.platforms().iter().map(ToString::to_string).collect(),
        shard: args.shard.map(|s| s.to_string()),
        referrers: args.referrers,
        request_timeout_seconds: args.request_timeout.as_secs_f64(),
        min_speed_bytes_per_second: args.min_speed,
        min_speed_window_seconds: args.min_speed_window.as_secs_f64(),
    }
}

/// The auth file actually read, if any (the default one only when it exists).
fn effective_auth_file(files: &FileArgs) -> Option<String> {
    if let Some(config) = &files.config {
        return Some(config.display().to_string());
    }
    match &files.auth {
        Some(path) => Some(path.display().to_string()),
        None => Path::new(crate::config::auth::DEFAULT_PATH)
            .exists()
            .then(|| crate::config::auth::DEFAULT_PATH.to_string()),
    }
}
