//! What each command does: thin frontends over the engine and the ledger.
//!
//! [`Context`] holds what every command needs (settings, data directory,
//! output); [`run`] dispatches the parsed command line. Pipeline logic lives
//! in [`crate::engine`], never here.

mod auto;
mod device;
mod edit;
mod import;
mod models;
mod overview;
mod pull;
mod push;
mod segments;
mod settings;
mod timeline;
mod transcribe;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::{Cli, Command, DeviceCommand, GlobalArgs};
use crate::config::{Config, default_config_path};
use crate::exit::{CommandResult, Failure};
use crate::store::Ledger;
use crate::term::Output;
use crate::timeline::{Rules, Timeline};

/// What every command needs.
pub struct Context {
    /// The loaded configuration.
    pub config: Config,
    /// Where it was loaded from.
    pub config_path: Option<PathBuf>,
    /// Where the ledger lives.
    pub data_dir: PathBuf,
    /// The API base URL from the flag or `OMI_API_URL`, if given.
    pub api_url: Option<String>,
    /// How to print.
    pub out: Output,
}

impl Context {
    /// Loads the configuration named by the flags (or the default file).
    pub fn from_flags(global: &GlobalArgs) -> Result<Self, Failure> {
        let out = Output::new(global);
        let config_path = global.config.clone().or_else(default_config_path);
        let config = match &config_path {
            Some(p) => {
                let loaded = Config::load(p).map_err(Failure::usage)?;
                for unknown in &loaded.unknown_keys {
                    out.warn("config", &unknown.to_string());
                }
                loaded.config
            }
            None => Config::default(),
        };
        let data_dir = config
            .resolve_data_dir(global.data_dir.as_deref())
            .map_err(Failure::usage)?;
        Ok(Context {
            config,
            config_path,
            data_dir,
            api_url: global.api_url.clone(),
            out,
        })
    }

    /// Opens (creating if needed) the ledger.
    pub fn ledger(&self) -> Result<Ledger, Failure> {
        Ledger::open(&self.data_dir)
            .with_context(|| format!("cannot open the ledger in {}", self.data_dir.display()))
            .map_err(Failure::fatal)
    }

    /// Takes the data dir's run lock, so that two runs that send or free
    /// things (pull, push, `--auto`) cannot collide; busy is exit 5.
    pub fn run_lock(&self) -> Result<crate::store::RunLock, Failure> {
        crate::store::RunLock::acquire(&self.data_dir)
            .map_err(|e| Failure::new(crate::exit::ExitCode::Temporary, e))
    }

    /// The timeline rules from the configuration.
    pub fn rules(&self) -> Rules {
        Rules {
            gap_ms: self.config.timeline.gap_secs as i64 * 1000,
        }
    }

    /// The current timeline: every segment, with the edits in effect.
    pub fn timeline(&self, ledger: &Ledger) -> Result<Timeline, Failure> {
        let segments: Vec<_> = ledger.segments()?.iter().map(|s| s.to_timeline()).collect();
        let overrides = ledger.active_overrides()?;
        Ok(crate::timeline::build(&segments, &overrides, &self.rules()))
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> CommandResult {
    let ctx = Context::from_flags(&cli.global)?;
    if cli.auto && cli.command.is_some() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--auto runs the whole job on its own; it cannot be combined with a command"
        )));
    }
    let p = &cli.push;
    if !cli.auto && (p.dry_run || p.wait || p.allow_estimated_times) {
        return Err(Failure::usage(anyhow::anyhow!(
            "--dry-run, --wait and --allow-estimated-times go with --auto, or after `push` (omi-sync push --dry-run)"
        )));
    }
    if cli.auto {
        return auto::run(
            &ctx,
            cli.source.as_deref().or(ctx.config.auto.source.as_deref()),
            &cli.push,
        );
    }
    match cli.command {
        None => overview::run(&ctx),
        Some(Command::Import { paths }) => import::run(&ctx, &paths),
        Some(Command::Segments) => segments::run(&ctx),
        Some(Command::Timeline) => timeline::run(&ctx),
        Some(Command::Merge { a, b }) => edit::merge(&ctx, &a, &b),
        Some(Command::Split { segment }) => edit::split(&ctx, segment),
        Some(Command::Undo) => edit::undo(&ctx),
        Some(Command::Redo) => edit::redo(&ctx),
        Some(Command::Vad { rerun }) => import::vad(&ctx, rerun),
        Some(Command::Transcribe(args)) => transcribe::run(&ctx, &args),
        Some(Command::Models { action }) => models::run(&ctx, &action),
        Some(Command::Push { args }) => push::run(&ctx, &args),
        Some(Command::Login) => push::login(&ctx),
        Some(Command::Logout) => push::logout(&ctx),
        Some(Command::Config { example, schema }) => settings::config(&ctx, example, schema),
        Some(Command::Devices { scan }) => device::devices(&ctx, scan),
        Some(Command::Pull(args)) => pull::run(&ctx, &args),
        Some(Command::Device {
            command: DeviceCommand::Status { pendant },
        }) => device::status(&ctx, &pendant),
        Some(Command::Completions { shell }) => settings::completions(shell),
        Some(Command::Man { out }) => settings::man_pages(&ctx, &out),
    }
}
