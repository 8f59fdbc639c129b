//! The `omi-sync` command: parse the command line, run it, exit with a code a
//! script can act on (see [`omi_sync::exit`]).

use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use omi_sync::cancel::Cancel;
use omi_sync::cli::Cli;
use omi_sync::commands;
use omi_sync::exit::{ExitCode, Failure};
use omi_sync::term::{BAD, DIM, paint};

fn main() -> std::process::ExitCode {
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
    let json = cli.global.json;
    let cancel = Cancel::new();
    stop_on_signals(&cancel);
    match commands::run(cli, cancel) {
        Ok(code) => std::process::ExitCode::from(code.code()),
        Err(failure) => {
            report(&failure, json);
            std::process::ExitCode::from(failure.code.code())
        }
    }
}

/// The first Ctrl-C (or SIGTERM, SIGHUP) asks the running job to stop: it
/// finishes the write in hand and exits with 130. A second one exits at once.
fn stop_on_signals(cancel: &Cancel) {
    static ASKED: AtomicBool = AtomicBool::new(false);
    let cancel = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if ASKED.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(ExitCode::Interrupted.code()));
        }
        anstream::eprintln!(
            "{}",
            paint(
                DIM,
                "stopping: finishing what is being written (press Ctrl-C again to quit at once)"
            )
        );
        cancel.cancel();
    });
}

/// Says what failed (and what to do) on stderr; with `--json`, also as one
/// JSON object on stdout, so a script always has something to parse.
fn report(failure: &Failure, json: bool) {
    anstream::eprintln!("{} {}", paint(BAD, "error:"), failure.error);
    for cause in failure.error.chain().skip(1) {
        let text = cause.to_string();
        if !failure.error.to_string().contains(&text) {
            anstream::eprintln!("  caused by: {text}");
        }
    }
    if let Some(hint) = &failure.hint {
        anstream::eprintln!("  what to do: {hint}");
    }
    if json {
        let causes: Vec<String> = failure
            .error
            .chain()
            .skip(1)
            .map(|c| c.to_string())
            .collect();
        let obj = serde_json::json!({
            "error": failure.error.to_string(),
            "causes": causes,
            "exit_code": failure.code.code(),
            "remedy": failure.remedy,
            "what_to_do": failure.hint,
        });
        println!("{obj}");
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
