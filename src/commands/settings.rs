//! `omi-sync config` and `omi-sync completions`.

use clap::CommandFactory;
use serde::Serialize;

use super::Context;
use crate::cli::Cli;
use crate::config::Config;
use crate::exit::{CommandResult, ExitCode};

#[derive(Serialize)]
struct ConfigJson<'a> {
    config_file: Option<String>,
    config_file_exists: bool,
    data_dir: String,
    settings: &'a Config,
}

/// `omi-sync config [--example]`
pub fn config(ctx: &Context, example: bool) -> CommandResult {
    if example {
        print!("{}", Config::example());
        return Ok(ExitCode::Done);
    }
    let exists = ctx.ws.config_path.as_ref().is_some_and(|p| p.exists());
    let file = ctx.ws.config_path.as_ref().map(|p| p.display().to_string());
    if ctx.out.json {
        ctx.out.print_json(&ConfigJson {
            config_file: file,
            config_file_exists: exists,
            data_dir: ctx.data_dir().display().to_string(),
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
