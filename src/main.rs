//! Entry point: parse the command line, run the command, map the outcome to an exit code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use image_migrator::cli::{Cli, Command, ReportCommand};
use image_migrator::commands::{self, Outcome};

fn main() {
    limit_malloc_arenas();
    let cli = Cli::parse_args();
    let cancelled = Arc::new(AtomicBool::new(false));
    watch_for_cancellation(cancelled.clone());
    let outcome = match &cli.command {
        None => commands::sync(&cli.sync, cancelled),
        Some(Command::Sync(args)) => commands::sync(args, cancelled),
        Some(Command::Validate(args)) => commands::validate(args),
        Some(Command::Config(args)) => commands::discover(args),
        Some(Command::Export(args)) => commands::export(args, cancelled),
        Some(Command::Import(args)) => commands::import(args, cancelled),
        Some(Command::Report(ReportCommand::Merge(args))) => commands::merge_reports(args),
    };
    std::process::exit(exit_code(outcome));
}

/// glibc gives every thread that allocates an arena of its own (up to 8 per core) and
/// keeps what each arena freed: with 8–16 workers the resident memory was twice the heap
/// (72 MiB for 35 MiB at 20,000 tags over TLS). Two arenas bring it close to the heap at
/// no measured cost in speed (bench/RESULTS.md). `MALLOC_ARENA_MAX`, when set, wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The exit codes of the contract: 0 done, 1 something failed, 2 bad input (nothing done).
/// Usage errors exit 2 from clap itself; a second cancellation signal exits 130.
fn exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Success => 0,
        Outcome::Failed => 1,
        Outcome::InvalidInput => 2,
    }
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
