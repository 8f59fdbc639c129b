//! The `omi-sync` command: parse the command line, run it, exit with a code a
//! script can act on (see [`omi_sync::exit`]).

use clap::Parser;
use omi_sync::cli::Cli;
use omi_sync::commands;
use omi_sync::exit::ExitCode;
use omi_sync::term::{BAD, paint};

fn main() -> std::process::ExitCode {
    // Before anything else, and long before any whisper.cpp code: what the
    // processor can do (the local Whisper engine refuses an older one with
    // one line instead of dying on an illegal instruction).
    omi_sync::cpu::detect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Done
            };
            let _ = e.print();
            return std::process::ExitCode::from(code.code());
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    match commands::run(cli) {
        Ok(code) => std::process::ExitCode::from(code.code()),
        Err(failure) => {
            anstream::eprintln!("{} {}", paint(BAD, "error:"), failure.error);
            for cause in failure.error.chain().skip(1) {
                anstream::eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::from(failure.code.code())
        }
    }
}

/// Logs go to stderr: warnings by default, more with -v, set by RUST_LOG.
fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("omi_sync={default},{default}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
