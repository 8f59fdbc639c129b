//! The `omi-sync` command: parse the command line, run it, exit with a code a
//! script can act on (see [`omi_sync::exit`]).

use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use omi_sync::cancel::Cancel;
use omi_sync::cli::Cli;
use omi_sync::commands;
use omi_sync::exit::{ExitCode, Failure};
use omi_sync::runlog::{self, RotatingFile};
use omi_sync::term::{BAD, DIM, WARN, paint};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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
    let auto = cli.auto;
    init_logging(
        cli.global.verbose,
        cli.global.quiet,
        auto,
        omi_sync::term::stderr_color(cli.global.color),
    );
    if auto {
        runlog::started();
    }
    let json = cli.global.json;
    let cancel = Cancel::new();
    stop_on_signals(&cancel);
    let (code, failure) = match commands::run(cli, cancel) {
        Ok(code) => (code, None),
        Err(failure) => {
            report(&failure, json);
            (failure.code, Some(failure.error))
        }
    };
    if auto {
        runlog::finished(code.code(), failure.as_ref());
    }
    std::process::ExitCode::from(code.code())
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
    // An error that already says what to do (the processor check) is not
    // told twice.
    if let Some(hint) = failure
        .hint
        .as_ref()
        .filter(|h| !failure.error.to_string().contains(h.as_str()))
    {
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
/// `--auto` runs also keep the run log ([`runlog`]) at info level, with a
/// filter of its own that `RUST_LOG` does not change. Log lines on stderr
/// carry colour escapes only when `ansi` (see [`omi_sync::term::stderr_color`]).
fn init_logging(verbose: u8, quiet: bool, auto: bool, ansi: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let not_runlog: tracing_subscriber::filter::Directive = format!("{}=off", runlog::TARGET)
        .parse()
        .expect("a valid directive");
    let stderr_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("omi_sync={default},{default}"))
        })
        .add_directive(not_runlog);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(stderr_filter);
    let file = auto.then(open_run_log).flatten().map(|log| {
        tracing_subscriber::fmt::layer()
            .with_writer(log)
            .with_ansi(false)
            .with_target(false)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("omi_sync", tracing::Level::INFO)
                    .with_default(tracing::Level::WARN),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// The run log, or `None` (with a warning) when it cannot be opened: a
/// read-only home must not stop the job.
fn open_run_log() -> Option<RotatingFile> {
    let path = omi_sync::config::default_log_path()?;
    match RotatingFile::open(&path, runlog::MAX_BYTES, runlog::KEEP) {
        Ok(log) => Some(log),
        Err(e) => {
            anstream::eprintln!(
                "{} log: cannot open {}: {e}; this run is not logged",
                paint(WARN, "warning:"),
                path.display()
            );
            None
        }
    }
}
