//! `image-migrator config`: writes an images.json from the images that a Kubernetes
//! cluster's workloads use, read from the API server (or from `kubectl get -o json` output),
//! so users start from what they run instead of typing every image by hand.

pub mod client;
pub mod images;
pub mod kubeconfig;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use self::client::{Client, ListOutcome};
use self::images::{ImageSet, Kind, Target};

/// Flags of `image-migrator config`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  image-migrator config -t harbor.example.com/mirror
  image-migrator config -k prod.yaml --context prod -n web,db -t harbor.example.com/mirror
  image-migrator config -t registry.example.com/team/mirror -o prod-images.json
  kubectl get pods,deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs -A -o json \\
    | image-migrator config --from-file - -t harbor.example.com/mirror -o -")]
pub struct ConfigArgs {
    /// Kubeconfig file to read [default: $KUBECONFIG, else ~/.kube/config].
    /// Example: -k ~/.kube/prod.yaml
    #[arg(
        short = 'k',
        long,
        env = "KUBECONFIG",
        value_name = "FILE",
        hide_env = true
    )]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use instead of its current-context.
    /// Example: --context prod-eu
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Only read these namespaces, comma-separated [default: all namespaces].
    /// Example: -n web,db
    #[arg(short = 'n', long, value_name = "NS,NS", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Registry and namespace the rules copy to; each image goes to
    /// <target>/<last segment of its repository>[:tag].
    /// Example: -t harbor.example.com/mirror
    #[arg(short = 't', long, value_name = "REGISTRY/NAMESPACE", value_parser = parse_target)]
    pub target: Target,

    /// File to write; `-` writes to standard output.
    /// Example: -o prod-images.json
    #[arg(short = 'o', long, value_name = "FILE", default_value = "images.json")]
    pub output: PathBuf,

    /// Read objects from this `kubectl get ... -o json` output instead of the API server;
    /// `-` reads standard input.
    /// Example: --from-file cluster.json
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,

    /// Items per list request (the API's `limit`; pages are followed with `continue`).
    /// Example: --chunk-size 100
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,
}

fn parse_target(value: &str) -> Result<Target, String> {
    Target::parse(value)
}

/// Why `config` failed; the `config` command maps each to an outcome (bad input or failure).
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A flag's value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The kubeconfig cannot be read or uses something unsupported.
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig { path: PathBuf, message: String },
    /// The `--from-file` input cannot be read or is not JSON.
    #[error("--from-file {}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    /// The API server cannot be reached or answered with an error.
    #[error("{message}")]
    Cluster { message: String },
    /// The output cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs `image-migrator config`: collects images, builds rules, writes them. Warnings go to
/// stderr; the rules go to the output file (or stdout).
pub fn run(args: &ConfigArgs) -> Result<(), KubeError> {
    let namespaces: Vec<&str> = args
        .namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(bad) = namespaces.iter().find(|n| !valid_namespace(n)) {
        return Err(KubeError::Usage(format!(
            "invalid namespace {bad:?} in -n/--namespaces: expected lowercase letters, digits \
             and '-', e.g. -n web,db"
        )));
    }

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

    let rules = images::build_rules(&images, &args.target);
    for warning in &rules.warnings {
        eprintln!("warning: {warning}");
    }
    let text = rules.to_json();
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(KubeError::Output {
                    path: "standard output".into(),
                    source: e,
                });
            }
            _ => {}
        }
    } else {
        std::fs::write(&args.output, &text).map_err(|source| KubeError::Output {
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

/// Kubernetes namespace names are DNS labels.
fn valid_namespace(ns: &str) -> bool {
    ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

fn read_file(path: &Path, images: &mut ImageSet) -> Result<(), KubeError> {
    let input_error = |message: String| KubeError::Input {
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
    // kubectl may print several documents one after another (one per resource type).
    let stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let mut documents = 0;
    for document in stream {
        let document = document.map_err(|e| {
            input_error(format!(
                "not JSON ({e}); produce it with kubectl get ... -o json"
            ))
        })?;
        images.add_document(&document);
        documents += 1;
    }
    if documents == 0 {
        return Err(input_error(
            "is empty; produce it with kubectl get ... -o json".into(),
        ));
    }
    Ok(())
}

fn read_cluster(
    args: &ConfigArgs,
    namespaces: &[&str],
    images: &mut ImageSet,
) -> Result<(), KubeError> {
    let path = match &args.kubeconfig {
        Some(value) if !value.as_os_str().is_empty() => kubeconfig::choose_path(value),
        _ => kubeconfig::default_path()?,
    };
    let access = kubeconfig::load(&path, args.context.as_deref())?;
    let client = Client::new(&access).map_err(|message| KubeError::Kubeconfig {
        path: path.clone(),
        message: format!("context {}: {message}", access.context),
    })?;
    let version = client.version()?;
    eprintln!(
        "reading workloads from {} (context {}{})",
        access.server,
        access.context,
        version
            .map(|v| format!(", Kubernetes {v}"))
            .unwrap_or_default()
    );

    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().copied().map(Some).collect()
    };
    for scope in scopes {
        for kind in Kind::ALL {
            let where_ = match scope {
                Some(ns) => format!("namespace {ns}"),
                None => "all namespaces".to_string(),
            };
            match client.list(&kind.list_path(scope), args.chunk_size)? {
                ListOutcome::Items(items) => {
                    for item in &items {
                        images.add_object(kind, item);
                    }
                }
                ListOutcome::Forbidden(message) => eprintln!(
                    "warning: not allowed to list {} in {where_}, skipping them: {message}",
                    kind.plural()
                ),
                ListOutcome::NotFound(_) => eprintln!(
                    "warning: the cluster does not serve {} ({}) in {where_}, skipping them",
                    kind.plural(),
                    kind.api_version()
                ),
            }
        }
    }
    Ok(())
}
