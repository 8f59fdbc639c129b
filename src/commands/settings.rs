//! `omi-sync config`, `omi-sync completions` and the packagers' `omi-sync man`.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory;
use serde::Serialize;

use super::Context;
use crate::cli::Cli;
use crate::config::{self, Config};
use crate::exit::{CommandResult, ExitCode, Failure};

#[derive(Serialize)]
struct ConfigJson<'a> {
    config_file: Option<String>,
    config_file_exists: bool,
    data_dir: String,
    log_file: Option<String>,
    settings: &'a Config,
}

/// `omi-sync config [--example | --schema]`
pub fn config(ctx: &Context, example: bool, schema: bool) -> CommandResult {
    if example {
        print!("{}", Config::example());
        return Ok(ExitCode::Done);
    }
    if schema {
        println!(
            "{}",
            serde_json::to_string_pretty(&config::schema()).unwrap_or_default()
        );
        return Ok(ExitCode::Done);
    }
    let exists = ctx.ws.config_path.as_ref().is_some_and(|p| p.exists());
    let file = ctx.ws.config_path.as_ref().map(|p| p.display().to_string());
    let log = config::default_log_path().map(|p| p.display().to_string());
    if ctx.out.json {
        ctx.out.print_json(&ConfigJson {
            config_file: file,
            config_file_exists: exists,
            data_dir: ctx.data_dir().display().to_string(),
            log_file: log,
            settings: &ctx.ws.config,
        });
    } else {
        println!(
            "config file: {}{}",
            file.as_deref().unwrap_or("(none)"),
            if exists {
                ""
            } else {
                " (not created; defaults apply; `omi-sync config --example` prints one)"
            }
        );
        println!("data dir:    {}", ctx.data_dir().display());
        println!(
            "log file:    {} (written by --auto runs)",
            log.as_deref()
                .unwrap_or("(no state directory on this platform)")
        );
        println!(
            "\n{}",
            toml::to_string_pretty(&ctx.ws.config).unwrap_or_default()
        );
    }
    Ok(ExitCode::Done)
}

/// `omi-sync completions SHELL`
pub fn completions(shell: clap_complete::Shell) -> CommandResult {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "omi-sync", &mut std::io::stdout());
    Ok(ExitCode::Done)
}

/// `omi-sync man --out DIR`: a man page (section 1) for `omi-sync` and for
/// every command that is not hidden, named as `man` looks them up
/// (`omi-sync-models-download.1`), from the same clap definitions as `--help`.
pub fn man_pages(ctx: &Context, out: &Path) -> CommandResult {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create {}", out.display()))
        .map_err(Failure::from)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let page = Page {
        source: format!("omi-sync {}", env!("CARGO_PKG_VERSION")),
        date: page_date(),
    };
    let mut written = 0;
    write_pages(&cmd, &page, out, &mut written)
        .with_context(|| format!("cannot write man pages into {}", out.display()))
        .map_err(Failure::from)?;
    ctx.out
        .note(format!("wrote {written} man pages into {}", out.display()));
    Ok(ExitCode::Done)
}

/// What every page's title line says besides the command's name.
struct Page {
    source: String,
    date: String,
}

/// The pages' date: `SOURCE_DATE_EPOCH` when set (reproducible package
/// builds), else today (UTC), as `YYYY-MM-DD`.
fn page_date() -> String {
    let at = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let d = at.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn write_pages(
    cmd: &clap::Command,
    page: &Page,
    out: &Path,
    written: &mut usize,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, page, out, written)?;
    }
    clap_mangen::Man::new(cmd.clone())
        .source(page.source.as_str())
        .date(page.date.as_str())
        .manual("omi-sync manual")
        .generate_to(out)?;
    *written += 1;
    Ok(())
}
