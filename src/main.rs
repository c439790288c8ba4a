//! Entry point: parse the command line, run the command, map the outcome to an exit code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use image_migrator::app;
use image_migrator::cli::{Cli, Command, ReportCommand};

fn main() {
    let cli = Cli::parse();
    let cancelled = Arc::new(AtomicBool::new(false));
    watch_for_cancellation(cancelled.clone());
    let code = match &cli.command {
        None => app::sync(&cli.sync, cancelled),
        Some(Command::Sync(args)) => app::sync(args, cancelled),
        Some(Command::Validate(args)) => app::validate(args),
        Some(Command::Config(args)) => app::discover(args),
        Some(Command::Report(ReportCommand::Merge(args))) => app::merge_reports(args),
    };
    std::process::exit(code);
}

/// SIGINT/SIGTERM (CI cancellation): stop starting new work, let in-flight transfers end,
/// write the report. A second signal exits at once.
fn watch_for_cancellation(cancelled: Arc<AtomicBool>) {
    let _ = ctrlc::set_handler(move || {
        if cancelled.swap(true, Ordering::SeqCst) {
            eprintln!("image-migrator: second signal, exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "image-migrator: cancelling: no new images are started; the report will mark them cancelled"
        );
    });
}
