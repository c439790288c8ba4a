//! Temporary entry point exposing only `image-migrator config`; all logic lives in the
//! library (`image_migrator::kube`).

use clap::{Parser, Subcommand};
use image_migrator::kube;

#[derive(Parser)]
#[command(name = "image-migrator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write images.json from the images a Kubernetes cluster runs
    Config(kube::ConfigArgs),
}

fn main() {
    let code = match Cli::parse().command {
        Command::Config(args) => match kube::run(&args) {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("error: {error}");
                error.exit_code()
            }
        },
    };
    std::process::exit(code);
}
