//! What each command does: thin frontends over the engine.
//!
//! A command parses nothing (that is [`crate::cli`]) and decides nothing
//! about the pipeline (that is [`crate::engine`]): it asks the engine for a
//! job or a query, shows the events while it runs, prints the report, and
//! picks the exit code. [`Context`] holds what every command needs: the
//! [`Workspace`], how to print, and the stop token Ctrl-C fires.

mod auto;
mod device;
mod diagnose;
mod edit;
mod export;
mod import;
mod ledger;
mod models;
mod overview;
mod pull;
mod push;
mod review;
mod segments;
mod settings;
mod storage;
mod timeline;
mod transcribe;

use crate::cancel::Cancel;
use crate::cli::{Cli, Command, DeviceCommand, GlobalArgs, LedgerCommand};
use crate::clock::SystemClock;
use crate::config::{Config, default_config_path};
use crate::engine::Ctx;
use crate::engine::events::{EventSink, Silent, Tee};
use crate::engine::jobs::{self, ErrorClass, Job, JobError, next_job_id};
use crate::engine::report::JobReport;
use crate::engine::workspace::Workspace;
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::store::Ledger;
use crate::term::{Output, Progress, say};

/// What every command needs.
pub struct Context {
    /// Settings and the data directory.
    pub ws: Workspace,
    /// How to print.
    pub out: Output,
    /// Fired by Ctrl-C or SIGTERM: the running job stops cleanly.
    pub cancel: Cancel,
}

impl Context {
    /// Loads the configuration named by the flags (or the default file).
    pub fn from_flags(global: &GlobalArgs, cancel: Cancel) -> Result<Self, Failure> {
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
        Self::with_config(global, cancel, config, config_path)
    }

    /// The context for `config` (loaded from `config_path`, if from a file).
    fn with_config(
        global: &GlobalArgs,
        cancel: Cancel,
        config: Config,
        config_path: Option<std::path::PathBuf>,
    ) -> Result<Self, Failure> {
        let out = Output::new(global);
        let data_dir = config
            .resolve_data_dir(global.data_dir.as_deref())
            .map_err(Failure::usage)?;
        let mut ws = Workspace::new(config, config_path, data_dir);
        ws.api_url_override = global.api_url.clone();
        Ok(Context { ws, out, cancel })
    }

    /// Opens (creating if needed) the ledger.
    pub fn ledger(&self) -> Result<Ledger, Failure> {
        self.ws
            .ledger()
            .map_err(|e| self.failure(JobError::Store(e)))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.ws.data_dir()
    }

    /// Runs `job`, showing its events as progress (with `ndjson`, as NDJSON
    /// lines on stdout).
    pub fn run_job(&self, job: Job, ndjson: bool) -> Result<JobReport, Failure> {
        self.run_job_logged(job, ndjson, &Silent)
    }

    /// [`Context::run_job`], also handing every event to `log` (the
    /// `--auto` run log).
    pub fn run_job_logged(
        &self,
        job: Job,
        ndjson: bool,
        log: &dyn EventSink,
    ) -> Result<JobReport, Failure> {
        let sink = Progress::new(self.out, ndjson && self.out.json);
        let both = Tee(&sink, log);
        let ctx = Ctx::new(next_job_id(), &both, self.cancel.clone(), &SystemClock);
        let result = jobs::run(&self.ws, &job, &ctx);
        if self.cancel.is_cancelled() {
            return Err(interrupted());
        }
        result.map_err(|e| self.failure(e))
    }

    /// A job's failure as a command failure: the exit code from its class,
    /// and what to do from its remedy.
    pub fn failure(&self, e: JobError) -> Failure {
        let code = match e.class() {
            ErrorClass::Usage => ExitCode::Usage,
            ErrorClass::Temporary => ExitCode::Temporary,
            ErrorClass::NeedsPerson => ExitCode::Fatal,
            ErrorClass::Failed => ExitCode::Failed,
        };
        let remedy = e.remedy(&self.ws);
        // A full disk or an unwritable data directory is said in words
        // naming the path; SQLite's own words follow as the cause.
        let error = match remedy
            .as_ref()
            .and_then(|r| say::storage_problem(r, self.data_dir()))
        {
            Some(headline) => anyhow::Error::new(e).context(headline),
            None => anyhow::Error::new(e),
        };
        let mut f = Failure::new(code, error);
        f.hint = remedy.as_ref().map(say::remedy);
        f.remedy = remedy;
        f
    }
}

/// Stopped by Ctrl-C or SIGTERM (exit 130).
fn interrupted() -> Failure {
    Failure::new(
        ExitCode::Interrupted,
        anyhow::anyhow!("stopped on request; everything done before it is kept"),
    )
}

/// Runs the parsed command line; `cancel` is fired by Ctrl-C.
pub fn run(cli: Cli, cancel: Cancel) -> CommandResult {
    if let Some(Command::Diagnose(args)) = &cli.command {
        // A config that does not load is one of diagnose's findings, not a stop.
        let (ctx, config_error) = match Context::from_flags(&cli.global, cancel.clone()) {
            Ok(ctx) => (ctx, None),
            Err(f) => {
                let path = cli.global.config.clone().or_else(default_config_path);
                let ctx = Context::with_config(&cli.global, cancel, Config::default(), path)?;
                (ctx, Some(format!("{:#}", f.error)))
            }
        };
        return diagnose::run(&ctx, args, cli.global.data_dir.is_some(), config_error);
    }
    let ctx = Context::from_flags(&cli.global, cancel)?;
    if cli.auto && cli.command.is_some() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--auto runs the whole job on its own; it cannot be combined with a command"
        )));
    }
    let p = &cli.push;
    if !cli.auto
        && (p.dry_run
            || p.wait
            || p.allow_estimated_times
            || p.retry_rejected
            || p.forget_vanished
            || p.replace_vanished)
    {
        return Err(Failure::usage(anyhow::anyhow!(
            "--dry-run, --wait, --allow-estimated-times, --retry-rejected, --forget-vanished and --replace-vanished go with --auto, or after `push` (omi-sync push --dry-run)"
        )));
    }
    if cli.auto {
        return auto::run(
            &ctx,
            cli.source
                .as_deref()
                .or(ctx.ws.config.auto.source.as_deref()),
            cli.auto_sim_faults.as_deref(),
            &cli.push,
        );
    }
    match cli.command {
        None if review::on_a_terminal(&cli.global) => review::run(&ctx),
        None => overview::run(&ctx),
        Some(Command::Review) => review::run(&ctx),
        Some(Command::Export {
            segment,
            conversation,
            output,
        }) => export::run(&ctx, segment, conversation.as_deref(), output),
        Some(Command::Import { paths }) => import::run(&ctx, paths),
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
        Some(Command::Diagnose(_)) => unreachable!("diagnose runs before the context is made"),
        Some(Command::Device {
            command: DeviceCommand::Status { pendant },
        }) => device::status(&ctx, &pendant),
        Some(Command::Storage { action }) => storage::run(&ctx, action.as_ref()),
        Some(Command::Ledger {
            action: LedgerCommand::Rebuild,
        }) => ledger::rebuild(&ctx),
        Some(Command::Completions { shell }) => settings::completions(shell),
        Some(Command::Man { out }) => settings::man_pages(&ctx, &out),
    }
}
