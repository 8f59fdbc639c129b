//! A data directory with its settings: what every face opens first.
//!
//! A [`Workspace`] is the configuration (file, environment, flags already
//! folded in) and the data directory it applies to. It opens the ledger and
//! turns settings into each stage's options, so no frontend repeats that
//! translation: the command line, `--auto`, the TUI and `diagnose` all ask
//! the workspace.

use std::path::{Path, PathBuf};

use super::analyze::AnalyzeOptions;
use crate::config::Config;
use crate::store::{Ledger, LockError, RunLock, Section, StoreError};
use crate::stt::models::ModelStore;
use crate::timeline::{Rules, Timeline};

/// Settings and the data directory they apply to.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The loaded configuration.
    pub config: Config,
    /// Where it was loaded from (`None`: no file, defaults).
    pub config_path: Option<PathBuf>,
    /// Where the ledger and captures live.
    pub data_dir: PathBuf,
    /// The cloud API base URL given on the command line or in `OMI_API_URL`
    /// (it wins over `[cloud] api_url`).
    pub api_url_override: Option<String>,
}

impl Workspace {
    /// A workspace on `data_dir` with `config`.
    pub fn new(config: Config, config_path: Option<PathBuf>, data_dir: PathBuf) -> Self {
        Workspace {
            config,
            config_path,
            data_dir,
            api_url_override: None,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Opens (creating and migrating if needed) the ledger.
    pub fn ledger(&self) -> Result<Ledger, StoreError> {
        Ledger::open(&self.data_dir)
    }

    /// Takes the lock of one critical section of the data directory (a
    /// pull, a push send, the janitor), so two runs cannot do it at once.
    pub fn lock(&self, section: Section) -> Result<RunLock, LockError> {
        RunLock::acquire(&self.data_dir, section)
    }

    /// The timeline rules.
    pub fn rules(&self) -> Rules {
        Rules {
            gap_ms: i64::from(self.config.timeline.gap_secs) * 1000,
        }
    }

    /// How VAD runs: the configured parameters, one worker per core.
    pub fn analyze_options(&self, rerun_all: bool) -> AnalyzeOptions {
        AnalyzeOptions {
            params: self.config.vad.clone(),
            rerun_all,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The Whisper models directory, fetching from `mirror` (else `[stt]
    /// model_mirror`, else Hugging Face).
    pub fn model_store(&self, mirror: Option<&str>) -> ModelStore {
        let store = ModelStore::new(self.data_dir.join("models"));
        match mirror.or(self.config.stt.model_mirror.as_deref()) {
            Some(url) => store.with_base_url(url.trim_end_matches('/')),
            None => store,
        }
    }

    /// The cloud API base URL: the override, else the config.
    pub fn api_url(&self) -> String {
        self.api_url_override
            .clone()
            .unwrap_or_else(|| self.config.cloud.api_url.clone())
    }

    /// The current timeline of `ledger`: every segment, with the edits in effect.
    pub fn timeline(&self, ledger: &Ledger) -> Result<Timeline, StoreError> {
        ledger.timeline(&self.rules())
    }
}
