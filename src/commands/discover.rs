//! `image-migrator config` (discovery): write images.json from what a Kubernetes cluster
//! runs, so users start from what they run instead of typing every image by hand. The
//! reading is `crate::kube`'s; this module checks the flags, reads `--from-file`, prints
//! progress and warnings and writes the rules. Named apart from `crate::config`, which
//! reads the files this writes.

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
        | DiscoverError::Input { .. }
        | DiscoverError::Kube(KubeError::Kubeconfig { .. }) => Outcome::InvalidInput,
        DiscoverError::Kube(KubeError::Cluster { .. }) | DiscoverError::Output { .. } => {
            Outcome::Failed
        }
    }
}

/// Collects images, builds rules, writes them. Warnings go to stderr; the rules go to the
/// output file (or stdout).
fn run(args: &ConfigArgs) -> Result<(), DiscoverError> {
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

    let rules = crate::kube::build_rules(&images, &args.target);
    for warning in &rules.warnings {
        eprintln!("warning: {warning}");
    }
    let text = rules.to_json();
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
        std::fs::write(&args.output, &text).map_err(|source| DiscoverError::Output {
            path: args.output.clone(),
            source,
        })?;
        eprintln!(
            "wrote {} rule(s) for {} image(s) to {}",
            rules.rules.len(),
            images.len(),
            args.output.display()
        );
    }
    Ok(())
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
