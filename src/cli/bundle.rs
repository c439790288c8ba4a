//! The air gap's subcommands' flags: `export` and `import` take all of `sync`'s and name
//! their bundle.

use clap::Args;

use super::{Cli, Command, SyncArgs};

/// Flags of `image-migrator export`: those of `sync`, and where the bundle goes.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  image-migrator export --to oci:bundle
  image-migrator export --to oci:/mnt/usb/bundle --images images.json --platform linux/amd64
  image-migrator export --to oci-archive:2026-12.tar --base oci-archive:2026-11.tar")]
pub struct ExportArgs {
    /// The bundle to write: an OCI image layout directory (made when missing, added to
    /// when present), or one tar file (built in FILE.tar.d beside it, then packed).
    /// Example: --to oci:bundle
    #[arg(long, value_name = "oci:DIR|oci-archive:FILE.tar")]
    pub to: String,

    /// A previous bundle (oci:DIR, oci-archive:FILE.tar, or its image-migrator.json):
    /// leave out the configs and layers it carried, and record that this bundle needs it
    /// imported first (a delta).
    /// Example: --base oci-archive:/mnt/usb/2026-11.tar
    #[arg(long, value_name = "PREVIOUS")]
    pub base: Option<String>,

    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Flags of `image-migrator import`: those of `sync`, and the bundle to read.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  image-migrator import --from oci:bundle
  image-migrator import --from oci:bundle --images images.json --default-registry harbor.internal")]
pub struct ImportArgs {
    /// The bundle to read, as `export` wrote it (a layout or an archive).
    /// Example: --from oci:bundle
    #[arg(long, value_name = "oci:DIR|oci-archive:FILE.tar")]
    pub from: String,

    #[command(flatten)]
    pub sync: SyncArgs,

    /// Whether --images (or --config) was given: else the bundle's recorded rules are used.
    #[arg(skip)]
    pub rules_given: bool,
}

impl Cli {
    /// The command line, with what only clap's matches know (whether a flag with a
    /// default was given) filled in.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Some(Command::Import(args)) = &mut cli.command {
            let given = |id: &str| {
                matches.subcommand_matches("import").is_some_and(|m| {
                    m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
                })
            };
            args.rules_given = given("images") || given("config");
        }
        cli
    }
}
