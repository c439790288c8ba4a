//! The command line: clap types for `sync` (the default), `validate` and `config`, with
//! help text and examples for every flag. Turns flags and environment into settings.

mod bundle;
mod values;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Defaults;
pub use bundle::{ExportArgs, ImportArgs};
pub use values::byte_size;
use values::positive_duration;

/// What `--version` prints after the name: the crate version and the commit it was built
/// from (set by build.rs; "unknown" outside a git checkout without `IMAGE_MIGRATOR_COMMIT`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("IMAGE_MIGRATOR_BUILD_COMMIT"),
    ")"
);

/// Migrate container images between registries, exactly and incrementally.
///
/// With no subcommand, runs `sync`: reads ./auth.json and ./images.json and copies every
/// image they name. Exit codes: 0 all done, 1 some images failed, 2 configuration error.
#[derive(Debug, Parser)]
#[command(
    name = "image-migrator",
    version = VERSION,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub sync: SyncArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy every image images.json names (the default command).
    Sync(SyncArgs),
    /// Check auth.json and images.json without touching the network, and print the rules.
    Validate(ValidateArgs),
    /// Write images.json from the images a Kubernetes cluster runs, or (--from-registry)
    /// from the repositories a registry holds under a namespace.
    Config(ConfigArgs),
    /// Copy every image images.json names into one OCI image layout (for the air gap):
    /// planned exactly as `sync` plans, blobs stored once and byte for byte.
    Export(ExportArgs),
    /// Push the images of a bundle written by `export` to the targets of its recorded
    /// rules (or of --images), with everything `sync` does.
    Import(ImportArgs),
    /// Work with reports: `report merge` combines the reports of sharded runs.
    #[command(subcommand)]
    Report(ReportCommand),
}

/// Where the two files are and how empty targets are filled.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Credentials file, JSON or YAML (.yaml/.yml) [default: auth.json; when absent,
    /// access is anonymous].
    /// Example: --auth ci/auth.yaml
    #[arg(long, value_name = "FILE")]
    pub auth: Option<PathBuf>,

    /// One file holding both, as image-syncer's --config: top-level `auth` and `images`
    /// objects, JSON or YAML. Cannot be combined with --auth or --images.
    /// Example: --config config.yaml
    #[arg(long, value_name = "FILE", conflicts_with_all = ["auth", "images"])]
    pub config: Option<PathBuf>,

    /// Use only auth.json: no Docker config, credential helpers, containers auth file or
    /// DOCKER_AUTH_CONFIG for registries it does not cover.
    #[arg(long)]
    pub no_docker_config: bool,

    /// Rules file: source → target, JSON or YAML (.yaml/.yml).
    /// Example: --images ci/images.yaml
    #[arg(long, value_name = "FILE", default_value = "images.json")]
    pub images: PathBuf,

    /// Registry for rules whose target is "".
    /// Example: --default-registry swr.cn-north-4.myhuaweicloud.com
    #[arg(
        long,
        visible_alias = "registry",
        env = "DEFAULT_REGISTRY",
        value_name = "HOST"
    )]
    pub default_registry: Option<String>,

    /// Namespace for rules whose target is "".
    /// Example: --default-namespace team-a
    #[arg(
        long,
        visible_alias = "namespace",
        env = "DEFAULT_NAMESPACE",
        value_name = "NAMESPACE"
    )]
    pub default_namespace: Option<String>,
}

impl FileArgs {
    /// The file the rules are read from: --config when given, else --images.
    pub fn images_file(&self) -> &std::path::Path {
        self.config.as_deref().unwrap_or(&self.images)
    }

    pub fn defaults(&self) -> Defaults {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Defaults {
            registry: non_empty(&self.default_registry),
            namespace: non_empty(&self.default_namespace),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// Images (tags) copied in parallel; blobs of an image share the same workers.
    /// Example: --proc 16
    #[arg(short = 'p', long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub proc: u16,

    /// Retries for transient failures (connection errors, 408, 429, 5xx), with backoff.
    /// Example: --retries 5
    #[arg(short = 'r', long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,

    /// Where to write the JSON report.
    /// Example: --report out/migration.json
    #[arg(
        long,
        value_name = "FILE",
        default_value = "image-migrator-report.json"
    )]
    pub report: PathBuf,

    /// Where to write the run's metrics in the Prometheus text format (images by status,
    /// bytes, blobs, pruned and drifted tags, duration, end time, success), for
    /// node-exporter's textfile collector or a Pushgateway.
    /// Example: --metrics /var/lib/node-exporter/image-migrator.prom
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,

    /// Where to write a JUnit XML file (one test case per image), e.g. for GitLab.
    /// Example: --junit junit.xml
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Resolve rules, list tags and compare digests; write nothing to any registry.
    #[arg(long)]
    pub dry_run: bool,

    /// Before copying, check each target container — the Harbor project (first path
    /// segment) — and create it when missing (private); with --dry-run only check, and
    /// say `would create`. Images whose container cannot be made fail; the rest go on.
    #[arg(long)]
    pub create_targets: bool,

    /// Push manifests even when the target already has the same digest (blobs the target
    /// has are still skipped), as image-syncer's --force.
    #[arg(long)]
    pub force: bool,

    /// What to do with a target tag that names another image than the source's: `always`
    /// move it (the default), or `never`: leave it and report it `drifted`.
    /// Example: --overwrite never
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = OverwriteArg::Always)]
    pub overwrite: OverwriteArg,

    /// Tags trusted never to change (a release's version tags): a matching tag that the
    /// target's tag list already shows is `unchanged`, with no manifest request on either
    /// side. A rule's `tags` object may add its own (`"immutable": "REGEX"`).
    /// Example: --immutable-tags '^v?[0-9]+\.[0-9]+\.[0-9]+$'
    #[arg(long, value_name = "REGEX")]
    pub immutable_tags: Option<String>,

    /// Exit 1 when a target tag drifted (`--overwrite never`) or could not be moved because
    /// the target keeps it immutable.
    #[arg(long)]
    pub fail_on_drift: bool,

    /// Also write the human log (one line per image, the summary) to FILE.
    /// Example: --log migration.log
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Extra CA certificates (PEM) trusted besides the system roots.
    /// Example: --ca-file /etc/ssl/private-ca.pem
    #[arg(long, env = "SSL_CERT_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Copy only these platforms of multi-arch indexes (the index is rewritten, so its
    /// digest changes; the report says so). Single-platform images are copied as they are.
    /// Example: --platform linux/amd64,linux/arm64
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',')]
    pub platform: Vec<crate::manifest::PlatformSpec>,

    /// image-syncer style platform filter: operating systems to keep (with --arch).
    /// Example: --os linux
    #[arg(long, value_name = "OS", value_delimiter = ',')]
    pub os: Vec<String>,

    /// image-syncer style platform filter: architectures to keep (with --os).
    /// Example: --arch amd64,arm64
    #[arg(long, value_name = "ARCH", value_delimiter = ',')]
    pub arch: Vec<String>,

    /// Run only the K-th of N deterministic slices of the rules (a source repository stays
    /// in one slice), to spread a migration over CI jobs; combine the reports with
    /// `image-migrator report merge`.
    /// Example: --shard $CI_NODE_INDEX/$CI_NODE_TOTAL (GitLab parallel:)
    #[arg(long, value_name = "K/N", env = "IMAGE_MIGRATOR_SHARD")]
    pub shard: Option<crate::plan::Shard>,

    /// Copy what refers to each image too: signatures, SBOMs and attestations (OCI 1.1
    /// referrers — API or `sha256-<hex>` fallback tag — and cosign's `.sig`/`.att`/`.sbom`
    /// tags), of the image, of each child of an index, and of those referrers, by digest.
    #[arg(long)]
    pub referrers: bool,

    /// Keep the mirror true: after a whole-repository rule's copies succeeded, delete the
    /// target tags that no rule selects any more (see --prune-protect, --max-prune). Never
    /// when a source listing failed or a rule selected nothing; with --dry-run, only say
    /// `would delete`.
    #[arg(long)]
    pub prune: bool,

    /// With --prune: never delete target tags matching this regular expression
    /// (unanchored); may be repeated.
    /// Example: --prune-protect '^release-'
    #[arg(long, value_name = "REGEX", requires = "prune")]
    pub prune_protect: Vec<String>,

    /// With --prune: a repository that would lose more tags than this loses none, and its
    /// rule fails.
    /// Example: --max-prune 200
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_prune: usize,

    /// Cap on requests waiting for an answer from one registry at a time (blob bodies
    /// streaming after their answer do not count; --proc bounds those).
    /// Example: --registry-concurrency 32
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub registry_concurrency: u16,

    /// Deadline of one request: until the end of the answer for manifests, tokens and tag
    /// lists; until the answer's headers for blobs (--min-speed bounds their bodies). A
    /// request over it fails as a transient error (retried).
    /// Example: --request-timeout 2m
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = positive_duration)]
    pub request_timeout: humantime::Duration,

    /// Speed floor, bytes per second: an answer slower than this over a whole
    /// --min-speed-window is aborted as a transient error (retried); 0 turns it off.
    /// Example: --min-speed 10240
    #[arg(long, value_name = "BYTES_PER_SECOND", default_value_t = 1024)]
    pub min_speed: u64,

    /// The window over which --min-speed is measured.
    /// Example: --min-speed-window 30s
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub min_speed_window: humantime::Duration,

    /// Bandwidth cap over the blob bytes read from sources, for the whole run (all
    /// threads together), bytes per second: a number with k, M or G (1024, 1024², 1024³).
    /// Example: --limit-rate 20M
    #[arg(long, value_name = "RATE", value_parser = byte_size)]
    pub limit_rate: Option<u64>,

    /// Upload every blob in PATCH chunks of this size (k, M or G, 1024-based), then a
    /// closing PUT: for proxies that cap request bodies. Without it a blob goes in one PUT,
    /// and in 64M chunks to a registry that refused that. A broken chunk continues from
    /// what the registry holds.
    /// Example: --chunk-size 16M
    #[arg(long, value_name = "SIZE", value_parser = byte_size)]
    pub chunk_size: Option<u64>,
}

/// `--overwrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverwriteArg {
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// Output format of the resolved rules.
    /// Example: --format json
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Show the rules as `sync --referrers` runs them (referrers copied with each image).
    #[arg(long)]
    pub referrers: bool,
}

/// Flags of `image-migrator config`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  image-migrator config -t harbor.example.com/mirror
  image-migrator config -k prod.yaml --context prod -n web,db -t harbor.example.com/mirror
  image-migrator config -t registry.example.com/team/mirror -o prod-images.json
  kubectl get pods,deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs -A -o json \\
    | image-migrator config --from-file - -t harbor.example.com/mirror -o -
  image-migrator config --from-registry harbor.example.com/team \\
    -t swr.cn-north-4.myhuaweicloud.com/team --exclude '^legacy/'")]
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
    /// <target>/<last segment of its repository>[:tag]. With --from-registry each
    /// repository goes to <target>/<its path below the source namespace>, and the
    /// namespace may be left out.
    /// Example: -t harbor.example.com/mirror
    #[arg(short = 't', long, value_name = "REGISTRY/NAMESPACE")]
    pub target: String,

    /// List the repositories of this registry under this namespace (through the
    /// registry's own API: Harbor, Docker Hub, Quay, else `_catalog`) and write one
    /// whole-repository rule for each, instead of reading a cluster. Credentials come as
    /// for `sync` (auth.json, Docker config, credential helpers).
    /// Example: --from-registry harbor.example.com/team
    #[arg(long, value_name = "REGISTRY/NS", conflicts_with_all = ["from_file", "namespaces", "context"])]
    pub from_registry: Option<String>,

    /// With --from-registry: keep only repositories whose path below the namespace
    /// matches this regular expression (unanchored); may be repeated.
    /// Example: --include '^apps/'
    #[arg(long, value_name = "REGEX", requires = "from_registry")]
    pub include: Vec<String>,

    /// With --from-registry: leave out repositories whose path below the namespace
    /// matches this regular expression (unanchored; wins over --include); may be repeated.
    /// Example: --exclude 'legacy|-old$'
    #[arg(long, value_name = "REGEX", requires = "from_registry")]
    pub exclude: Vec<String>,

    /// With --from-registry: the credentials file, JSON or YAML [default: auth.json when
    /// present].
    /// Example: --auth ci/auth.json
    #[arg(long, value_name = "FILE", requires = "from_registry")]
    pub auth: Option<PathBuf>,

    /// With --from-registry: use only auth.json (no Docker config, credential helpers,
    /// containers auth file or DOCKER_AUTH_CONFIG).
    #[arg(long, requires = "from_registry")]
    pub no_docker_config: bool,

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

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Combine the JSON reports of the slices of a sharded migration into one.
    /// Example: image-migrator report merge -o report.json shard-*/image-migrator-report.json
    Merge(MergeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Where to write the combined report.
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "image-migrator-report.json"
    )]
    pub output: PathBuf,

    /// The reports to combine.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
}

impl SyncArgs {
    /// The request deadline and speed floor.
    pub fn time_bounds(&self) -> crate::http::TimeBounds {
        crate::http::TimeBounds {
            request_timeout: *self.request_timeout,
            min_speed: self.min_speed,
            min_speed_window: *self.min_speed_window,
        }
    }

    /// The platform filter: `--platform` entries plus every `--os` × `--arch` pair (a
    /// missing side matches any).
    pub fn platforms(&self) -> Vec<crate::manifest::PlatformSpec> {
        use crate::manifest::PlatformSpec;
        let mut platforms = self.platform.clone();
        if !self.os.is_empty() || !self.arch.is_empty() {
            let any = vec![None];
            let oses: Vec<Option<String>> = if self.os.is_empty() {
                any.clone()
            } else {
                self.os.iter().cloned().map(Some).collect()
            };
            let arches: Vec<Option<String>> = if self.arch.is_empty() {
                any
            } else {
                self.arch.iter().cloned().map(Some).collect()
            };
            for os in &oses {
                for architecture in &arches {
                    platforms.push(PlatformSpec {
                        os: os.clone(),
                        architecture: architecture.clone(),
                        variant: None,
                    });
                }
            }
        }
        platforms
    }
}
