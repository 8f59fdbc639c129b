//! Settings: the TOML config file, environment variables, and where data lives.
//!
//! Precedence, highest first: command-line flags, environment variables
//! (`OMI_SYNC_DATA_DIR`, `OMI_SYNC_CONFIG`, ...), the config file, the
//! defaults below. The config file is `config.toml` in the platform config
//! directory (`~/.config/omi-sync/` on Linux); the ledger and captures live in
//! the platform data directory (`~/.local/share/omi-sync/`), the `--auto` log
//! in the state directory (`~/.local/state/omi-sync/`). Secrets never live
//! here: the API key is in the OS keyring or `OMI_API_KEY`.
//!
//! The file is checked when it is loaded ([`Config::load`]): a key
//! omi-sync does not know is a warning naming the file and the key (with the
//! nearest known key), a value a setting does not allow is an error naming
//! the key, the value and what is allowed, every such problem at once. What
//! each setting allows is written once, in [`Config::validate`]'s table; the
//! JSON Schema of the file ([`schema`], `omi-sync config --schema`, kept in
//! `assets/config.schema.json` for editors) is generated from these types and
//! carries the same bounds. URLs are not checked here: the code that uses
//! them parses them.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stt::engine::EngineKind;

/// The rules the Omi cloud applies, kept in one place so omi-sync shows
/// locally exactly what the cloud would do.
pub mod rules {
    /// A silence this long (ms) or longer starts a new conversation.
    pub const CONVERSATION_GAP_MS: i64 = 120_000;
    /// Conversations the cloud lets one key create per hour.
    pub const PUSHES_PER_HOUR: u32 = 25;
    /// Speech segments less than this far apart (ms) are one stream cut in
    /// two, as at the boundary of two contiguous captures: transcribed as
    /// one stretch of audio and sent to the cloud as one segment.
    pub const CONTIGUOUS_MS: i64 = 40;
}

/// The application name used for platform directories.
pub const APP_NAME: &str = "omi-sync";

/// The `--auto` log's file name in the state directory ([`default_log_path`]).
pub const LOG_FILE: &str = "auto.log";

/// The config file's contents. Every field is optional in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields, title = "omi-sync configuration")]
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
    /// Local audio: how long it is kept once the cloud has it.
    pub storage: StorageConfig,
}

/// Days confirmed audio is kept by default.
pub const DEFAULT_KEEP_DAYS: u32 = 30;

/// `[storage]`: when local audio is freed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct StorageConfig {
    /// Days a capture's audio is kept after every conversation it feeds is
    /// confirmed in the Omi cloud (0: free it once confirmed; "never": keep
    /// it for ever).
    pub keep_days: KeepDays,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            keep_days: KeepDays::Days(DEFAULT_KEEP_DAYS),
        }
    }
}

/// How long confirmed audio is kept: a number of days, or `"never"` freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeepDays {
    /// This many days after the cloud confirmed the last conversation.
    Days(u32),
    /// Never freed.
    Never(Never),
}

/// The word `"never"` (for [`KeepDays`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Never {
    /// Keep it.
    Never,
}

impl KeepDays {
    /// The retention in ms, `None` for never.
    pub fn as_ms(self) -> Option<i64> {
        match self {
            KeepDays::Days(d) => Some(i64::from(d) * 86_400_000),
            KeepDays::Never(_) => None,
        }
    }
}

/// `[stt]`: how speech becomes text. Flags override every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
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
    /// Seconds after a `processing` answer before the cloud is asked whether
    /// the conversation is completed.
    pub confirm_check_secs: u64,
    /// Seconds a conversation may stay `processing` before the same request
    /// is sent again (the cloud drops such a claim after 15 minutes).
    pub stale_claim_secs: u64,
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
            confirm_check_secs: 30,
            stale_claim_secs: 16 * 60,
        }
    }
}

/// `[auto]`: what `omi-sync --auto` does when flags do not say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AutoConfig {
    /// Where the backlog comes from: `demo`, a folder of phone-app files,
    /// `image:PATH` (the pendant's card), `device:ID` (the pendant over
    /// Bluetooth) or `sim:PATH` (the simulated pendant).
    pub source: Option<String>,
    /// Show a desktop notification when a run pushed conversations or
    /// stopped because it needs a person (only when a desktop session's
    /// D-Bus is there).
    pub notify: bool,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig {
            source: None,
            notify: true,
        }
    }
}

/// `[timeline]`: how conversations are grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
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

/// A setting whose value is not allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The key, dotted: `vad.threshold`.
    pub key: String,
    /// The value as written (TOML).
    pub value: String,
    /// What the setting allows.
    pub allowed: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}; allowed: {}",
            self.key, self.value, self.allowed
        )
    }
}

/// A key in the config file that omi-sync does not know (it is ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownKey {
    /// The file.
    pub path: PathBuf,
    /// The key, dotted: `vad.treshold`.
    pub key: String,
    /// The known key it most resembles, if one is close.
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown key `{}` in config file {} (ignored",
            self.key,
            self.path.display()
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        f.write_str(")")
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
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// Settings have values they do not allow.
    #[error("config file {path} has {} invalid setting{}:{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// No home directory to put data in.
    #[error(
        "cannot find a home directory for omi-sync's data; pass --data-dir or set OMI_SYNC_DATA_DIR"
    )]
    NoHome,
}

/// What parsing config text found wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Not TOML at all (the message has the line and column).
    Syntax(String),
    /// TOML, but with values the settings do not allow.
    Invalid(Vec<Problem>),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax(m) => f.write_str(m),
            ParseError::Invalid(problems) => {
                let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
                f.write_str(&lines.join("; "))
            }
        }
    }
}

/// A config file read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// Keys the file has that omi-sync ignored.
    pub unknown_keys: Vec<UnknownKey>,
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

/// Where `--auto` runs keep their log: `auto.log` in the platform state
/// directory (`$XDG_STATE_HOME/omi-sync/`, by default
/// `~/.local/state/omi-sync/`). `None` where the platform has no state
/// directory or there is no home.
pub fn default_log_path() -> Option<PathBuf> {
    project_dirs().and_then(|d| d.state_dir().map(|s| s.join(LOG_FILE)))
}

impl Config {
    /// Loads and checks `path`: a missing file is the defaults; an
    /// unreadable file, a TOML error or a value a setting does not allow is
    /// an error naming the file (and for values every bad key, its value and
    /// what is allowed); unknown keys come back beside the settings.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    config: Config::default(),
                    unknown_keys: Vec::new(),
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let (config, unknown) = Self::parse_with_unknown(&text).map_err(|e| match e {
            ParseError::Syntax(message) => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            ParseError::Invalid(problems) => ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            },
        })?;
        let known = known_keys();
        let unknown_keys = unknown
            .into_iter()
            .map(|key| UnknownKey {
                suggestion: nearest(&key, &known),
                path: path.to_path_buf(),
                key,
            })
            .collect();
        Ok(Loaded {
            config,
            unknown_keys,
        })
    }

    /// Parses and checks TOML text, ignoring unknown keys.
    pub fn parse(text: &str) -> Result<Config, ParseError> {
        Self::parse_with_unknown(text).map(|(config, _)| config)
    }

    /// Parses and checks TOML text; also returns the keys it ignored.
    ///
    /// A value of the wrong type (`gap_secs = -5` for a count, a word for a
    /// number) and a value out of bounds are both [`ParseError::Invalid`],
    /// with every such problem in the file: each wrongly typed key is set
    /// aside and the rest parsed again, then [`validate`](Self::validate)
    /// checks the bounds.
    pub fn parse_with_unknown(text: &str) -> Result<(Config, Vec<String>), ParseError> {
        let original: toml::Table =
            toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string().trim().into()))?;
        let mut table = original.clone();
        let mut problems = Vec::new();
        loop {
            let mut unknown = Vec::new();
            let mut track = serde_path_to_error::Track::new();
            let de = serde_path_to_error::Deserializer::new(table.clone(), &mut track);
            match serde_ignored::deserialize(de, |p| unknown.push(p.to_string())) {
                Ok(config) => {
                    let config: Config = config;
                    // Show each value as the file has it (`-1`, not `-1.0`).
                    problems.extend(config.validate().into_iter().map(|mut p| {
                        if let Some(v) = lookup(&original, &p.key) {
                            p.value = v.to_string();
                        }
                        p
                    }));
                    return if problems.is_empty() {
                        Ok((config, unknown))
                    } else {
                        Err(ParseError::Invalid(problems))
                    };
                }
                Err(e) => {
                    let key = track.path().to_string();
                    problems.push(Problem {
                        value: lookup(&original, &key)
                            .map_or_else(|| "?".to_string(), |v| v.to_string()),
                        allowed: allowed_for(&key).unwrap_or_else(|| e.to_string()),
                        key: key.clone(),
                    });
                    // Parse the rest without it; a key that cannot be set
                    // aside (the error is not at a key) ends the search.
                    if !remove(&mut table, &key) {
                        return Err(ParseError::Invalid(problems));
                    }
                }
            }
        }
    }

    /// Every setting whose value is not allowed, with its key, its value and
    /// what it allows. URLs are left to the code that uses them.
    ///
    /// The bounds are what keeps a stage from silently doing nothing or
    /// harm: a VAD threshold outside (0, 1) finds no speech (and a re-run
    /// would then drop every segment), zero workers or a zero rate budget
    /// never finish, a zero timeout fails every request.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = SETTINGS
            .iter()
            .filter_map(|s| {
                let value = (s.get)(self)?;
                (!s.allowed.admits(&value)).then(|| Problem {
                    key: s.key.to_string(),
                    value: value.to_string(),
                    allowed: s.allowed.to_string(),
                })
            })
            .collect();
        problems.extend(self.relations());
        problems
    }

    /// The checks that relate two settings.
    fn relations(&self) -> Vec<Problem> {
        let v = &self.vad;
        let mut out = Vec::new();
        if let Some(neg) = v.neg_threshold
            && neg > v.threshold
            && v.threshold > 0.0
        {
            out.push(Problem {
                key: "vad.neg_threshold".into(),
                value: Value::Float(neg).to_string(),
                allowed: format!(
                    "a number greater than 0 and at most vad.threshold ({})",
                    v.threshold
                ),
            });
        }
        // The longest segment must leave room for one window and the padding
        // on both sides, or every long stretch is cut at once.
        let floor_s = (crate::vad::WINDOW_SAMPLES as f32 / crate::vad::SAMPLE_RATE as f32)
            + 2.0 * v.speech_pad_ms as f32 / 1000.0;
        if let Some(max) = v.max_speech_s
            && max.is_finite()
            && max > 0.0
            && max <= floor_s
        {
            out.push(Problem {
                key: "vad.max_speech_s".into(),
                value: Value::Float(max).to_string(),
                allowed: format!(
                    "more than 2 x vad.speech_pad_ms + 32 ms of VAD window = {floor_s} s"
                ),
            });
        }
        out
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
             # `omi-sync config --schema` prints the JSON Schema that checks this file.\n\
             # data_dir = \"/path/to/omi-sync-data\"\n\n{body}"
        )
    }
}

/// A setting's value, as the checks see it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Int(i128),
    Float(f32),
    Text(&'a str),
}

impl fmt::Display for Value<'_> {
    /// As TOML writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_nan() => f.write_str("nan"),
            Value::Float(x) if x.is_infinite() => f.write_str(if x > 0.0 { "inf" } else { "-inf" }),
            Value::Float(x) if x.fract() == 0.0 => write!(f, "{x:.1}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// What a setting allows.
#[derive(Debug, Clone, Copy)]
enum Allowed {
    /// A number in an interval.
    Number(Interval),
    /// Text that is not empty.
    NonEmpty,
    /// A language code (`en`, `pt-BR`); empty too when `empty_ok`.
    Language {
        /// Whether empty text is allowed (let the engine detect it).
        empty_ok: bool,
    },
}

/// An interval of numbers, each end open or closed.
#[derive(Debug, Clone, Copy)]
struct Interval {
    min: f64,
    min_open: bool,
    max: f64,
    max_open: bool,
    /// Whole numbers only (the type already ensures it; this is for the words).
    whole: bool,
    /// What the number counts (`seconds`), for the words.
    unit: &'static str,
}

impl Interval {
    /// Whole numbers of `unit` from `min` to `max`, both included.
    const fn whole(min: u32, max: u32, unit: &'static str) -> Self {
        Interval {
            min: min as f64,
            min_open: false,
            max: max as f64,
            max_open: false,
            whole: true,
            unit,
        }
    }

    /// Numbers of `unit` above `min` (excluded when `min_open`) and below
    /// `max` (excluded when `max_open`).
    const fn real(min: f64, min_open: bool, max: f64, max_open: bool, unit: &'static str) -> Self {
        Interval {
            min,
            min_open,
            max,
            max_open,
            whole: false,
            unit,
        }
    }

    fn admits(&self, x: f64) -> bool {
        let above = if self.min_open {
            x > self.min
        } else {
            x >= self.min
        };
        let below = if self.max_open {
            x < self.max
        } else {
            x <= self.max
        };
        above && below
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.whole {
            "a whole number"
        } else {
            "a number"
        };
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" of {}", self.unit)
        };
        if !self.min_open && !self.max_open {
            return write!(f, "{kind}{unit} from {} to {}", self.min, self.max);
        }
        let low = if self.min_open {
            "greater than"
        } else {
            "at least"
        };
        let high = if self.max_open {
            "less than"
        } else {
            "at most"
        };
        write!(f, "{kind}{unit} {low} {} and {high} {}", self.min, self.max)
    }
}

impl Allowed {
    fn admits(&self, v: &Value<'_>) -> bool {
        match (self, *v) {
            (Allowed::Number(i), Value::Int(x)) => i.admits(x as f64),
            (Allowed::Number(i), Value::Float(x)) => i.admits(f64::from(x)),
            (Allowed::NonEmpty, Value::Text(s)) => !s.trim().is_empty(),
            (Allowed::Language { empty_ok }, Value::Text(s)) => {
                (*empty_ok && s.is_empty()) || is_language_code(s)
            }
            _ => false,
        }
    }

    /// Adds the bounds to a property of the JSON Schema.
    fn annotate(&self, property: &mut serde_json::Map<String, serde_json::Value>) {
        let mut set = |k: &str, v: serde_json::Value| {
            property.insert(k.to_string(), v);
        };
        match self {
            Allowed::Number(i) => {
                let n = |x: f64| {
                    if i.whole {
                        serde_json::json!(x as i64)
                    } else {
                        serde_json::json!(x)
                    }
                };
                set(
                    if i.min_open {
                        "exclusiveMinimum"
                    } else {
                        "minimum"
                    },
                    n(i.min),
                );
                set(
                    if i.max_open {
                        "exclusiveMaximum"
                    } else {
                        "maximum"
                    },
                    n(i.max),
                );
            }
            Allowed::NonEmpty => set("pattern", serde_json::json!("\\S")),
            Allowed::Language { empty_ok } => set(
                "pattern",
                serde_json::json!(if *empty_ok {
                    format!("^(|{LANGUAGE_PATTERN})$")
                } else {
                    format!("^{LANGUAGE_PATTERN}$")
                }),
            ),
        }
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::Number(i) => i.fmt(f),
            Allowed::NonEmpty => f.write_str("text that is not empty"),
            Allowed::Language { empty_ok } => write!(
                f,
                "a language code of two or three lowercase letters, optionally with a region \
                 (`en`, `pt-BR`){}",
                if *empty_ok {
                    ", or \"\" to let the engine detect it"
                } else {
                    ""
                }
            ),
        }
    }
}

/// A language code as a regular expression (for the schema).
const LANGUAGE_PATTERN: &str = "[a-z]{2,3}(-[A-Za-z]{2,4})?";

/// `en`, `yue`, `pt-BR`, `zh-Hant`: what [`LANGUAGE_PATTERN`] matches.
fn is_language_code(s: &str) -> bool {
    let (lang, region) = match s.split_once('-') {
        Some((l, r)) => (l, Some(r)),
        None => (s, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphabetic())
        })
}

/// One checked setting: its key, what it allows, and how to read it.
struct Setting {
    key: &'static str,
    allowed: Allowed,
    /// The value, `None` when the setting is unset (an optional one).
    get: fn(&Config) -> Option<Value<'_>>,
}

/// Whole numbers of VAD milliseconds from 0 to `max`.
const fn vad_ms(max: u32) -> Allowed {
    Allowed::Number(Interval::whole(0, max, "milliseconds"))
}

/// What each setting allows: the one table [`Config::validate`] and
/// [`schema`] read.
const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        allowed: Allowed::NonEmpty,
        get: |c| {
            c.data_dir
                .as_deref()
                .map(|p| Value::Text(p.to_str().unwrap_or("?")))
        },
    },
    Setting {
        key: "timeline.gap_secs",
        allowed: Allowed::Number(Interval::whole(1, 86_400, "seconds")),
        get: |c| Some(Value::Int(c.timeline.gap_secs.into())),
    },
    Setting {
        key: "vad.threshold",
        allowed: Allowed::Number(Interval::real(0.0, true, 1.0, true, "")),
        get: |c| Some(Value::Float(c.vad.threshold)),
    },
    Setting {
        key: "vad.neg_threshold",
        allowed: Allowed::Number(Interval::real(0.0, true, 1.0, true, "")),
        get: |c| c.vad.neg_threshold.map(Value::Float),
    },
    Setting {
        key: "vad.min_speech_ms",
        allowed: vad_ms(10_000),
        get: |c| Some(Value::Int(c.vad.min_speech_ms.into())),
    },
    Setting {
        key: "vad.min_silence_ms",
        allowed: vad_ms(10_000),
        get: |c| Some(Value::Int(c.vad.min_silence_ms.into())),
    },
    Setting {
        key: "vad.speech_pad_ms",
        allowed: vad_ms(1_000),
        get: |c| Some(Value::Int(c.vad.speech_pad_ms.into())),
    },
    Setting {
        key: "vad.max_speech_s",
        allowed: Allowed::Number(Interval::real(1.0, false, 86_400.0, false, "seconds")),
        get: |c| c.vad.max_speech_s.map(Value::Float),
    },
    Setting {
        key: "stt.model",
        allowed: Allowed::NonEmpty,
        get: |c| Some(Value::Text(&c.stt.model)),
    },
    Setting {
        key: "stt.workers",
        allowed: Allowed::Number(Interval::whole(1, 256, "")),
        get: |c| c.stt.workers.map(|n| Value::Int(n as i128)),
    },
    Setting {
        key: "stt.threads",
        allowed: Allowed::Number(Interval::whole(1, 256, "")),
        get: |c| c.stt.threads.map(|n| Value::Int(n as i128)),
    },
    Setting {
        key: "stt.language",
        allowed: Allowed::Language { empty_ok: true },
        get: |c| Some(Value::Text(&c.stt.language)),
    },
    Setting {
        key: "stt.openai_model",
        allowed: Allowed::NonEmpty,
        get: |c| c.stt.openai_model.as_deref().map(Value::Text),
    },
    Setting {
        key: "cloud.language",
        allowed: Allowed::Language { empty_ok: false },
        get: |c| Some(Value::Text(&c.cloud.language)),
    },
    Setting {
        key: "cloud.pushes_per_hour",
        allowed: Allowed::Number(Interval::whole(1, 1_000, "")),
        get: |c| Some(Value::Int(c.cloud.pushes_per_hour.into())),
    },
    Setting {
        key: "cloud.rate_window_secs",
        allowed: Allowed::Number(Interval::whole(1, 86_400, "seconds")),
        get: |c| Some(Value::Int(c.cloud.rate_window_secs.into())),
    },
    Setting {
        key: "storage.keep_days",
        allowed: Allowed::Number(Interval::whole(0, 36_500, "days, or \"never\"")),
        get: |c| match c.storage.keep_days {
            KeepDays::Days(d) => Some(Value::Int(d.into())),
            KeepDays::Never(_) => None,
        },
    },
    Setting {
        key: "cloud.request_timeout_secs",
        allowed: Allowed::Number(Interval::whole(1, 3_600, "seconds")),
        get: |c| Some(Value::Int(c.cloud.request_timeout_secs.into())),
    },
    Setting {
        key: "cloud.confirm_check_secs",
        allowed: Allowed::Number(Interval::whole(1, 3_600, "seconds")),
        get: |c| Some(Value::Int(c.cloud.confirm_check_secs.into())),
    },
    Setting {
        key: "cloud.stale_claim_secs",
        allowed: Allowed::Number(Interval::whole(1, 86_400, "seconds")),
        get: |c| Some(Value::Int(c.cloud.stale_claim_secs.into())),
    },
];

/// What `key` allows, if it is a checked setting.
fn allowed_for(key: &str) -> Option<String> {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .map(|s| s.allowed.to_string())
}

/// The value at a dotted key.
fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let (first, rest) = match key.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (key, None),
    };
    let v = table.get(first)?;
    match (rest, v) {
        (None, v) => Some(v),
        (Some(rest), toml::Value::Table(t)) => lookup(t, rest),
        _ => None,
    }
}

/// Removes the value at a dotted key; whether there was one.
fn remove(table: &mut toml::Table, key: &str) -> bool {
    match key.split_once('.') {
        None => table.remove(key).is_some(),
        Some((first, rest)) => match table.get_mut(first) {
            Some(toml::Value::Table(t)) => remove(t, rest),
            _ => false,
        },
    }
}

/// The JSON Schema of the config file (draft 2020-12), generated from the
/// types, with each checked setting's bounds.
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Config).to_value();
    for s in SETTINGS {
        if let Some(property) = property_mut(&mut schema, s.key) {
            s.allowed.annotate(property);
        }
    }
    schema
}

/// The schema of the property at a dotted key (following `$ref`s into `$defs`).
fn property_mut<'a>(
    schema: &'a mut serde_json::Value,
    key: &str,
) -> Option<&'a mut serde_json::Map<String, serde_json::Value>> {
    let mut path: Vec<String> = Vec::new();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        path.extend(["properties".to_string(), part.to_string()]);
        if parts.peek().is_some() {
            let at = pointer(&path);
            let reference = schema.pointer(&at)?.get("$ref")?.as_str()?.to_string();
            path = reference
                .strip_prefix("#/")?
                .split('/')
                .map(String::from)
                .collect();
        }
    }
    schema.pointer_mut(&pointer(&path))?.as_object_mut()
}

fn pointer(path: &[String]) -> String {
    path.iter().map(|p| format!("/{p}")).collect()
}

/// Every key the schema knows, dotted (`vad.threshold`), sections too.
fn known_keys() -> Vec<String> {
    let schema = schema();
    let mut keys = Vec::new();
    let Some(props) = schema["properties"].as_object() else {
        return keys;
    };
    for (name, prop) in props {
        keys.push(name.clone());
        let section = prop
            .get("$ref")
            .and_then(|r| r.as_str())
            .and_then(|r| r.strip_prefix("#/"))
            .and_then(|r| schema.pointer(&format!("/{r}/properties")))
            .and_then(|p| p.as_object());
        for field in section.into_iter().flat_map(|s| s.keys()) {
            keys.push(format!("{name}.{field}"));
        }
    }
    keys
}

/// The known key nearest to `key`, if it is a likely typo of it.
fn nearest(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::osa_distance(key, k), k))
        .filter(|(d, k)| *d <= 3 && 3 * *d <= k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&dir.path().join("nope.toml")).unwrap().config;
        assert_eq!(c, Config::default());
        assert_eq!(c.timeline.gap_secs, 120);
        assert!(c.auto.notify);
    }

    #[test]
    fn syntax_errors_name_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "[timeline]\ngap_secs = = 3\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("config.toml") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key_the_value_and_what_is_allowed() {
        let Err(ParseError::Invalid(p)) = Config::parse("[timeline]\ngap_secs = \"two minutes\"\n")
        else {
            panic!("accepted")
        };
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "timeline.gap_secs");
        assert_eq!(p[0].value, "\"two minutes\"");
        assert_eq!(p[0].allowed, "a whole number of seconds from 1 to 86400");
        // An enum without a bound in the table says what serde expected.
        let Err(ParseError::Invalid(p)) = Config::parse("[stt]\nengine = \"vosk\"\n") else {
            panic!("accepted")
        };
        assert_eq!(p[0].key, "stt.engine");
        assert!(p[0].allowed.contains("whisper"), "{}", p[0].allowed);
    }

    #[test]
    fn values_that_cannot_work_are_refused_with_key_value_and_what_is_allowed() {
        for (text, needle) in [
            (
                "[cloud]\npushes_per_hour = 0\n",
                "cloud.pushes_per_hour = 0; allowed: a whole number from 1",
            ),
            (
                "[cloud]\nrate_window_secs = 0\n",
                "cloud.rate_window_secs = 0; allowed: a whole number of seconds from 1",
            ),
            (
                "[cloud]\nrequest_timeout_secs = 0\n",
                "cloud.request_timeout_secs = 0; allowed: a whole number of seconds from 1",
            ),
            (
                "[stt]\nworkers = 0\n",
                "stt.workers = 0; allowed: a whole number from 1",
            ),
            (
                "[cloud]\nconfirm_check_secs = 0\n",
                "cloud.confirm_check_secs = 0; allowed: a whole number of seconds from 1",
            ),
            (
                "[cloud]\nstale_claim_secs = 0\n",
                "cloud.stale_claim_secs = 0; allowed: a whole number of seconds from 1",
            ),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(Config::parse("[cloud]\npushes_per_hour = 1\n[stt]\nworkers = 1\n").is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[timeline]\ngap_secs = -5\n[vad]\nthreshold = 5.0\n[stt]\nworkers = 0\nthreads = \"many\"\n";
        let Err(ParseError::Invalid(p)) = Config::parse(text) else {
            panic!("accepted")
        };
        let mut keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "stt.threads",
                "stt.workers",
                "timeline.gap_secs",
                "vad.threshold"
            ]
        );
        let gap = p.iter().find(|p| p.key == "timeline.gap_secs").unwrap();
        assert_eq!(gap.value, "-5");
    }

    #[test]
    fn bounds_are_checked_in_the_typed_config() {
        let mut c = Config::default();
        assert!(c.validate().is_empty());
        c.vad.threshold = f32::NAN;
        c.cloud.pushes_per_hour = 0;
        let p = c.validate();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0].to_string(),
            "vad.threshold = nan; allowed: a number greater than 0 and less than 1"
        );
        assert_eq!(
            p[1].to_string(),
            "cloud.pushes_per_hour = 0; allowed: a whole number from 1 to 1000"
        );
    }

    #[test]
    fn related_settings_are_checked_together() {
        let p = Config::parse("[vad]\nthreshold = 0.4\nneg_threshold = 0.45\n").unwrap_err();
        assert!(
            p.to_string()
                .contains("vad.neg_threshold = 0.45; allowed: a number greater than 0 and at most vad.threshold (0.4)"),
            "{p}"
        );
        let p = Config::parse("[vad]\nspeech_pad_ms = 1000\nmax_speech_s = 2.0\n").unwrap_err();
        assert!(p.to_string().contains("vad.max_speech_s = 2.0"), "{p}");
        assert!(Config::parse("[vad]\nspeech_pad_ms = 1000\nmax_speech_s = 2.5\n").is_ok());
    }

    #[test]
    fn unknown_keys_are_returned_with_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "colour = true\n[vad]\ntreshold = 0.6\n[vda]\nx = 1\n").unwrap();
        let loaded = Config::load(&p).unwrap();
        assert_eq!(loaded.config, Config::default());
        let shown: Vec<String> = loaded.unknown_keys.iter().map(|u| u.to_string()).collect();
        let file = p.display().to_string();
        assert_eq!(
            shown,
            [
                format!("unknown key `colour` in config file {file} (ignored)"),
                format!(
                    "unknown key `vad.treshold` in config file {file} (ignored; did you mean `vad.threshold`?)"
                ),
                format!("unknown key `vda` in config file {file} (ignored; did you mean `vad`?)"),
            ]
        );
    }

    #[test]
    fn languages() {
        for ok in ["en", "yue", "pt-BR", "zh-Hant"] {
            assert!(is_language_code(ok), "{ok}");
        }
        for bad in ["", "e", "EN", "english", "en-", "en_US", "pt-BRAZIL"] {
            assert!(!is_language_code(bad), "{bad}");
        }
        assert!(Config::parse("[stt]\nlanguage = \"\"\n").is_ok());
        assert!(Config::parse("[cloud]\nlanguage = \"\"\n").is_err());
    }

    #[test]
    fn example_parses_back_to_defaults() {
        assert_eq!(
            Config::parse(&Config::example()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_schema_carries_every_bound_of_the_table() {
        let s = schema();
        for setting in SETTINGS {
            let mut s = s.clone();
            let p = property_mut(&mut s, setting.key)
                .unwrap_or_else(|| panic!("{} is not in the schema", setting.key));
            assert!(
                ["minimum", "exclusiveMinimum", "pattern"]
                    .iter()
                    .any(|k| p.contains_key(*k)),
                "{}: {p:?}",
                setting.key
            );
        }
        let mut s = s;
        let t = property_mut(&mut s, "vad.threshold").unwrap();
        assert_eq!(t["exclusiveMinimum"], 0.0);
        assert_eq!(t["exclusiveMaximum"], 1.0);
    }

    #[test]
    fn known_keys_cover_every_section() {
        let keys = known_keys();
        for k in [
            "data_dir",
            "timeline.gap_secs",
            "vad.speech_pad_ms",
            "auto.notify",
            "stt.workers",
            "cloud.request_timeout_secs",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
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
