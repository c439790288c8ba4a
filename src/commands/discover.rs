//! `image-migrator config` (discovery): write images.json from what a Kubernetes cluster
//! runs, or (`--from-registry`) from the repositories a registry holds, so users start
//! from what they have instead of typing every image by hand. The reading is
//! `crate::kube`'s and `crate::vendor`'s; this module checks the flags, reads
//! `--from-file`, prints progress and warnings and writes the rules. Named apart from
//! `crate::config`, which reads the files this writes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Outcome;
use crate::cli::ConfigArgs;
use crate::kube::{Cluster, ImageSet, KubeError};

/// Why `config` failed; each maps to an outcome (bad input or failure).
#[derive(Debug, thiserror::Error)]
enum DiscoverError {
    /// A flag's value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The `--from-file` input cannot be read or is not JSON.
    #[error("--from-file {}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    /// The kubeconfig or the cluster.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// auth.json (or the machine's credentials) is invalid.
    #[error("configuration is invalid")]
    Config(crate::config::ConfigErrors),
    /// The registry's listing failed or was empty.
    #[error("{0}")]
    Registry(crate::error::Error),
    /// The output cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `image-migrator config`: images.json from a Kubernetes cluster.
pub fn discover(args: &ConfigArgs) -> Outcome {
    match run(args) {
        Ok(()) => Outcome::Success,
        Err(DiscoverError::Config(errors)) => {
            super::print_config_errors(&errors);
            Outcome::InvalidInput
        }
        Err(error) => {
            eprintln!("error: {error}");
            outcome_of(&error)
        }
    }
}

/// Bad flags, kubeconfig or input: fix the command line and rerun. Failures talking to the
/// cluster or writing the output are run-time failures.
fn outcome_of(error: &DiscoverError) -> Outcome {
    match error {
        DiscoverError::Usage(_)
        | DiscoverError::Config(_)
        | DiscoverError::Input { .. }
        | DiscoverError::Kube(KubeError::Kubeconfig { .. }) => Outcome::InvalidInput,
        DiscoverError::Kube(KubeError::Cluster { .. })
        | DiscoverError::Registry(_)
        | DiscoverError::Output { .. } => Outcome::Failed,
    }
}

/// Collects images, builds rules, writes them. Warnings go to stderr; the rules go to the
/// output file (or stdout).
fn run(args: &ConfigArgs) -> Result<(), DiscoverError> {
    if let Some(source) = &args.from_registry {
        return from_registry(args, source);
    }
    let target = crate::kube::Target::parse(&args.target).map_err(DiscoverError::Usage)?;
    let namespaces = namespaces(args)?;
    let mut images = ImageSet::default();
    match &args.from_file {
        Some(path) => {
            if !namespaces.is_empty() {
                eprintln!(
                    "warning: -n/--namespaces is ignored with --from-file; \
                     choose namespaces in the kubectl command"
                );
            }
            read_file(path, &mut images)?
        }
        None => read_cluster(args, &namespaces, &mut images)?,
    }

    let rules = crate::kube::build_rules(&images, &target);
    for warning in &rules.warnings {
        eprintln!("warning: {warning}");
    }
    write_rules(
        args,
        &rules.to_json(),
        &format!(
            "{} rule(s) for {} image(s)",
            rules.rules.len(),
            images.len()
        ),
    )
}

/// Writes the rules to `-o` (a file, or standard output for `-`); `what` says what was
/// written, on stderr.
fn write_rules(args: &ConfigArgs, text: &str, what: &str) -> Result<(), DiscoverError> {
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(DiscoverError::Output {
                    path: "standard output".into(),
                    source: e,
                });
            }
            _ => {}
        }
    } else {
        std::fs::write(&args.output, text).map_err(|source| DiscoverError::Output {
            path: args.output.clone(),
            source,
        })?;
        eprintln!("wrote {what} to {}", args.output.display());
    }
    Ok(())
}

/// `--from-registry`: the registry's repositories under the namespace, through its own API,
/// one whole-repository rule each.
fn from_registry(args: &ConfigArgs, source: &str) -> Result<(), DiscoverError> {
    use crate::reference::Location;
    let location = |flag: &str, value: &str| {
        Location::parse(value.trim().trim_end_matches('/')).map_err(|e| {
            DiscoverError::Usage(format!(
                "{flag} {value:?}: {}; expected registry[/namespace], e.g. harbor.example.com/team",
                e.reason
            ))
        })
    };
    let source = location("--from-registry", source)?;
    let target = location("-t/--target", &args.target)?;
    let filter = crate::vendor::rules::PathFilter::new(&args.include, &args.exclude)
        .map_err(DiscoverError::Usage)?;
    let client = registry_client(args)?;
    let stats = crate::http::RequestStats::default();
    let (kind, listing) = crate::vendor::list_repositories(
        &client,
        &source.registry,
        source.namespace.as_deref(),
        &stats,
    )
    .map_err(DiscoverError::Registry)?;
    eprintln!(
        "listed {} repositor{} under {source} ({kind}: {})",
        listing.repositories.len(),
        if listing.repositories.len() == 1 {
            "y"
        } else {
            "ies"
        },
        listing.asked
    );
    let (rules, filtered) =
        crate::vendor::rules::rules(&source, &listing.repositories, &target, &filter);
    if filtered > 0 {
        eprintln!("--include/--exclude left out {filtered} repositor(ies)");
    }
    if rules.is_empty() {
        return Err(DiscoverError::Usage(format!(
            "--include/--exclude left none of the {} repositor(ies) under {source}",
            listing.repositories.len()
        )));
    }
    let mut text = serde_json::to_string_pretty(&rules).expect("a map of strings");
    text.push('\n');
    write_rules(args, &text, &format!("{} rule(s)", rules.len()))
}

/// A registry client with the credentials `sync` would use.
fn registry_client(args: &ConfigArgs) -> Result<crate::registry::Client, DiscoverError> {
    use crate::config::{AuthConfig, MachineCredentials, auth::DEFAULT_PATH};
    let env = |name: &str| std::env::var(name).ok();
    let auth = match &args.auth {
        Some(path) => AuthConfig::load(path, &env),
        None if Path::new(DEFAULT_PATH).exists() => AuthConfig::load(Path::new(DEFAULT_PATH), &env),
        None => Ok(AuthConfig::default()),
    }
    .map_err(DiscoverError::Config)?;
    let machine = if args.no_docker_config {
        MachineCredentials::default()
    } else {
        MachineCredentials::load(&env).map_err(DiscoverError::Config)?
    };
    let options = crate::http::TransportOptions {
        retries: 3,
        ca_file: None,
        max_idle_per_host: 2,
        certs_d: Some(crate::http::DOCKER_CERTS_D.into()),
        time: crate::http::TimeBounds::default(),
        limit_rate: None,
    };
    let usage = |e: crate::error::Error| DiscoverError::Usage(e.to_string());
    let transport = crate::http::Transport::new(
        &options,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .map_err(usage)?;
    let credentials = crate::credentials::CredentialStore::new(auth, machine, Box::new(|_| {}))
        .with_cloud(crate::config::CloudKeys::from_env(&env));
    crate::registry::Client::new(transport, credentials, 8).map_err(usage)
}

/// `-n/--namespaces`, trimmed, without empty entries; each must be a namespace name.
fn namespaces(args: &ConfigArgs) -> Result<Vec<&str>, DiscoverError> {
    let namespaces: Vec<&str> = args
        .namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(bad) = namespaces.iter().find(|n| !crate::kube::valid_namespace(n)) {
        return Err(DiscoverError::Usage(format!(
            "invalid namespace {bad:?} in -n/--namespaces: expected lowercase letters, digits \
             and '-', e.g. -n web,db"
        )));
    }
    Ok(namespaces)
}

/// `--from-file`: a file, or standard input for `-`.
fn read_file(path: &Path, images: &mut ImageSet) -> Result<(), DiscoverError> {
    let input_error = |message: String| DiscoverError::Input {
        path: path.to_path_buf(),
        message,
    };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| input_error(format!("cannot read standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| input_error(e.to_string()))?;
    }
    crate::kube::add_kubectl_output(&text, images).map_err(input_error)
}

fn read_cluster(
    args: &ConfigArgs,
    namespaces: &[&str],
    images: &mut ImageSet,
) -> Result<(), DiscoverError> {
    let cluster = Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref())?;
    eprintln!(
        "reading workloads from {} (context {}{})",
        cluster.server,
        cluster.context,
        cluster
            .version
            .as_ref()
            .map(|v| format!(", Kubernetes {v}"))
            .unwrap_or_default()
    );
    cluster.collect_images(namespaces, args.chunk_size, images, &mut |skipped| {
        eprintln!("warning: {skipped}")
    })?;
    Ok(())
}
