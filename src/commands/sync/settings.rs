//! `sync`'s flags turned into what the run does, checked before any request (as
//! ripgrep's low-level args become high-level ones): `--log` opened, both files read and
//! checked, `--ca-file` present, the transport's and the copy's options, and what the
//! report shows of them. A problem is said here and ends the run before anything moves.

use std::path::{Path, PathBuf};

use crate::cli::OverwriteArg;
use crate::cli::{FileArgs, SyncArgs};
use crate::commands::{Files, Outcome, load_files, print_config_errors};
use crate::config::{AuthConfig, MachineCredentials, Rule};
use crate::copy::{CopyOptions, Mode, Overwrite, Push};
use crate::github;
use crate::http::TransportOptions;
use crate::plan::Shard;
use crate::progress::log;
use crate::prune::PruneOptions;
use crate::report::Settings;

/// What a sync run does, validated.
pub struct SyncSettings {
    pub auth: AuthConfig,
    pub machine: MachineCredentials,
    pub rules: Vec<Rule>,
    pub transport: TransportOptions,
    pub copy: CopyOptions,
    /// `--chunk-size`: every upload in `PATCH` chunks of this size.
    pub chunk_size: Option<u64>,
    /// Requests in flight per registry at most.
    pub registry_concurrency: usize,
    pub shard: Option<Shard>,
    /// `--create-targets`: target containers (Harbor projects, …) made before any copy.
    pub create_targets: bool,
    /// `--immutable-tags`: tags trusted never to change.
    pub immutable_tags: Option<crate::config::TagRegex>,
    /// `--fail-on-drift`.
    pub fail_on_drift: bool,
    /// `--prune` and its guards.
    pub prune: PruneOptions,
    /// Running as a GitHub Actions step (secrets masked, outputs and summary written).
    pub in_github: bool,
    pub report: PathBuf,
    pub junit: Option<PathBuf>,
    /// `--metrics`.
    pub metrics: Option<PathBuf>,
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
        let prune = prune_options(args)?;
        let immutable_tags = match args
            .immutable_tags
            .as_deref()
            .map(crate::config::TagRegex::new)
        {
            None => None,
            Some(Ok(regex)) => Some(regex),
            Some(Err(e)) => {
                log(&format!("error: --immutable-tags: {e}; nothing was copied"));
                return Err(Outcome::InvalidInput);
            }
        };
        if let Some(problem) = rate_below_floor(args) {
            log(&format!("error: {problem}; nothing was copied"));
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
                limit_rate: args.limit_rate,
            },
            copy: copy_options(args),
            chunk_size: args.chunk_size,
            registry_concurrency: usize::from(args.registry_concurrency),
            shard: args.shard,
            create_targets: args.create_targets,
            prune,
            fail_on_drift: args.fail_on_drift,
            immutable_tags,
            in_github,
            report: args.report.clone(),
            junit: args.junit.clone(),
            metrics: args.metrics.clone(),
            shown: shown(args),
        })
    }
}

impl SyncSettings {
    /// How planning expands the rules.
    pub fn plan_options(&self) -> crate::plan::PlanOptions {
        crate::plan::PlanOptions {
            referrers: self.copy.referrers,
            shard: self.shard,
            immutable_tags: self.immutable_tags.clone(),
        }
    }
}

/// `--prune`, `--prune-protect` (each expression compiled) and `--max-prune`.
fn prune_options(args: &SyncArgs) -> Result<PruneOptions, Outcome> {
    let mut protect = Vec::new();
    for text in &args.prune_protect {
        match crate::config::TagRegex::new(text) {
            Ok(regex) => protect.push(regex),
            Err(e) => {
                log(&format!("error: --prune-protect: {e}; nothing was copied"));
                return Err(Outcome::InvalidInput);
            }
        }
    }
    Ok(PruneOptions {
        enabled: args.prune,
        protect,
        max: args.max_prune,
    })
}

/// Why `--limit-rate` cannot work with the speed floor: each of the `--proc` transfers
/// gets its share of the rate, and a share under `--min-speed` would be cut as too slow.
fn rate_below_floor(args: &SyncArgs) -> Option<String> {
    let rate = args.limit_rate?;
    let share = rate / u64::from(args.proc);
    (args.min_speed > 0 && share < args.min_speed).then(|| {
        format!(
            "--limit-rate {rate} B/s shared by --proc {} transfers is {share} B/s each, \
             under the speed floor --min-speed {} B/s: raise --limit-rate, or lower \
             --proc or --min-speed",
            args.proc, args.min_speed
        )
    })
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
        overwrite: match args.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::Never => Overwrite::Never,
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
        overwrite: Some(
            match args.overwrite {
                OverwriteArg::Always => "always",
                OverwriteArg::Never => "never",
            }
            .to_string(),
        ),
        fail_on_drift: args.fail_on_drift,
        immutable_tags: args.immutable_tags.clone(),
        ca_file: args.ca_file.as_ref().map(|p| p.display().to_string()),
        platforms: args.platforms().iter().map(ToString::to_string).collect(),
        shard: args.shard.map(|s| s.to_string()),
        referrers: args.referrers,
        prune: args.prune,
        prune_protect: args.prune_protect.clone(),
        max_prune: args.prune.then_some(args.max_prune),
        request_timeout_seconds: args.request_timeout.as_secs_f64(),
        min_speed_bytes_per_second: args.min_speed,
        min_speed_window_seconds: args.min_speed_window.as_secs_f64(),
        limit_rate_bytes_per_second: args.limit_rate,
        chunk_size_bytes: args.chunk_size,
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
