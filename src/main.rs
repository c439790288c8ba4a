//! Entry point: parse the command line, run the command, map the outcome to an exit code.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use image_migrator::app;
use image_migrator::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let cancelled = Arc::new(AtomicBool::new(false));
    let code = match &cli.command {
        None => app::sync(&cli.sync, cancelled),
        Some(Command::Sync(args)) => app::sync(args, cancelled),
        Some(Command::Validate(args)) => app::validate(args),
    };
    std::process::exit(code);
}
