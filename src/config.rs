//! Settings: the TOML config file, environment variables, and where data lives.
//!
//! Precedence, highest first: command-line flags, environment variables
//! (`OMI_SYNC_DATA_DIR`, `OMI_SYNC_CONFIG`, ...), the config file, the
//! defaults below. The config file is `config.toml` in the platform config
//! directory (`~/.config/omi-sync/` on Linux); the ledger and captures live in
//! the platform data directory (`~/.local/share/omi-sync/`). Secrets never
//! live here: the API key is in the OS keyring or `OMI_API_KEY`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::stt::engine::EngineKind;

/// The rules the Omi cloud applies, kept in one place so omi-sync shows
/// locally exactly what the cloud would do.
pub mod rules {
    /// A silence this long (ms) or longer starts a new conversation.
    pub const CONVERSATION_GAP_MS: i64 = 120_000;
    /// Silero VAD speech threshold.
    pub const VAD_THRESHOLD: f32 = 0.5;
    /// Silero VAD window at 16 kHz (samples).
    pub const VAD_WINDOW: usize = 512;
    /// Samples of context carried from the previous window.
    pub const VAD_CONTEXT: usize = 64;
    /// Conversations the cloud lets one key create per hour.
    pub const PUSHES_PER_HOUR: u32 = 25;
    /// Transcript segments one push may carry.
    pub const MAX_SEGMENTS_PER_PUSH: usize = 500;
}

/// The application name used for platform directories.
pub const APP_NAME: &str = "omi-sync";

/// The config file's contents. Every field is optional in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the ledger and captures live (default: the platform data dir).
    pub data_dir: Option<PathBuf>,
    /// Grouping speech into conversations.
    pub timeline: TimelineConfig,
    /// Finding speech (Silero VAD).
    pub vad: crate::vad::VadParams,
    /// The headless job (`omi-sync --auto`).
    pub auto: AutoConfig,
    /// Speech to text.
    pub stt: SttConfig,
    /// The Omi cloud.
    pub cloud: CloudConfig,
    /// The review TUI (`omi-sync review`): theme, mouse, keys.
    pub tui: crate::tui::config::TuiConfig,
}

/// `[stt]`: how speech becomes text. Flags override every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttConfig {
    /// The engine.
    pub engine: EngineKind,
    /// The Whisper model's name in `omi-sync models list` (e.g. `tiny.en`),
    /// looked for in the data directory's `models/`.
    pub model: String,
    /// A ggml model file to use instead of a named one.
    pub model_path: Option<PathBuf>,
    /// Parallel transcriptions (default: one per core, divided by `threads`).
    pub workers: Option<usize>,
    /// CPU threads per Whisper worker (default 1: on a busy machine, more
    /// workers of one thread each beat fewer wide ones).
    pub threads: Option<usize>,
    /// Language (ISO 639-1), or empty to let the engine detect it.
    pub language: String,
    /// Where `omi-sync models download` fetches ggml files from (a mirror of
    /// whisper.cpp's model repository).
    pub model_mirror: Option<String>,
    /// Deepgram's base URL (default `https://api.deepgram.com`).
    pub deepgram_url: Option<String>,
    /// The OpenAI-compatible server's base URL up to `/v1` (default
    /// `https://api.openai.com/v1`; a self-hosted whisper server works too).
    pub openai_url: Option<String>,
    /// The OpenAI-compatible model name (default `whisper-1`).
    pub openai_model: Option<String>,
}

impl Default for SttConfig {
    fn default() -> Self {
        SttConfig {
            engine: EngineKind::Whisper,
            model: crate::stt::models::DEFAULT_MODEL.to_string(),
            model_path: None,
            workers: None,
            threads: None,
            language: "en".into(),
            model_mirror: None,
            deepgram_url: None,
            openai_url: None,
            openai_model: None,
        }
    }
}

/// `[cloud]`: where and how conversations are pushed. The API key is never
/// here: it lives in the OS keyring (`omi-sync login`) or `OMI_API_KEY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// The API base URL.
    pub api_url: String,
    /// Transcript language sent with each conversation.
    pub language: String,
    /// Conversations created per rate window at most (the cloud allows 25 per hour).
    pub pushes_per_hour: u32,
    /// Length of the rate window in seconds (the cloud's is 3600).
    pub rate_window_secs: u64,
    /// Push conversations whose times are estimated (the pendant's clock was not set).
    pub allow_estimated_times: bool,
    /// Seconds a whole request may take (creating a conversation runs the
    /// cloud's processing before it answers).
    pub request_timeout_secs: u64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            api_url: crate::cloud::api::DEFAULT_BASE_URL.to_string(),
            language: "en".to_string(),
            pushes_per_hour: rules::PUSHES_PER_HOUR,
            rate_window_secs: 3600,
            allow_estimated_times: false,
            request_timeout_secs: 180,
        }
    }
}

/// `[auto]`: what `omi-sync --auto` does when flags do not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoConfig {
    /// Where the backlog comes from: `demo`, a folder of phone-app files,
    /// `image:PATH` (the pendant's card), `device:ID` (the pendant over
    /// Bluetooth) or `sim:PATH` (the simulated pendant).
    pub source: Option<String>,
}

/// `[timeline]`: how conversations are grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimelineConfig {
    /// Seconds of silence that start a new conversation (Omi: 120).
    pub gap_secs: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            gap_secs: (rules::CONVERSATION_GAP_MS / 1000) as u32,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for omi-sync.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// No home directory to put data in.
    #[error(
        "cannot find a home directory for omi-sync's data; pass --data-dir or set OMI_SYNC_DATA_DIR"
    )]
    NoHome,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", APP_NAME)
}

/// The default config file path.
pub fn default_config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

/// The default data directory.
pub fn default_data_dir() -> Option<PathBuf> {
    project_dirs().map(|d| d.data_dir().to_path_buf())
}

impl Config {
    /// Loads `path`; a missing file is the defaults, an unreadable or invalid
    /// one is an error naming the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|message| ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The data directory: the flag, then the file, then the platform default.
    pub fn resolve_data_dir(&self, flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(p) = flag {
            return Ok(p.to_path_buf());
        }
        if let Some(p) = &self.data_dir {
            return Ok(p.clone());
        }
        default_data_dir().ok_or(ConfigError::NoHome)
    }

    /// A commented example config with every default, for `omi-sync config`.
    pub fn example() -> String {
        let body = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        format!(
            "# omi-sync configuration. Every setting is optional; these are the defaults.\n\
             # data_dir = \"/path/to/omi-sync-data\"\n\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&dir.path().join("nope.toml")).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.timeline.gap_secs, 120);
    }

    #[test]
    fn invalid_file_names_itself_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "[timeline]\ngap_secs = \"two minutes\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("config.toml") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "colour = true\n").unwrap();
        assert!(Config::load(&p).unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn example_parses_back_to_defaults() {
        assert_eq!(
            Config::parse(&Config::example()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn stt_settings_parse() {
        let c = Config::parse(
            "[stt]\nengine = \"deepgram\"\nworkers = 3\nmodel_mirror = \"http://m\"\n",
        )
        .unwrap();
        assert_eq!(c.stt.engine, EngineKind::Deepgram);
        assert_eq!(c.stt.workers, Some(3));
        assert_eq!(c.stt.model, "tiny.en");
        assert!(Config::parse("[stt]\nengine = \"vosk\"\n").is_err());
    }

    #[test]
    fn data_dir_precedence() {
        let c = Config {
            data_dir: Some("/from/file".into()),
            ..Config::default()
        };
        assert_eq!(
            c.resolve_data_dir(Some(Path::new("/flag"))).unwrap(),
            PathBuf::from("/flag")
        );
        assert_eq!(
            c.resolve_data_dir(None).unwrap(),
            PathBuf::from("/from/file")
        );
    }
}
