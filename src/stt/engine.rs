//! Choosing an engine and building one instance of it per worker.
//!
//! [`EngineKind`] is the choice a person makes (`--engine`, `[stt] engine`);
//! [`Engine`] is that choice made ready: the Whisper model loaded once and
//! shared, or the HTTP engine's settings with its API key. [`Engine::worker`]
//! builds the per-worker [`Transcriber`] the pool needs. API keys come from
//! the environment first, then the OS keyring ([`api_key`]).

use serde::{Deserialize, Serialize};

use super::deepgram::{DeepgramConfig, DeepgramTranscriber};
use super::openai::{OpenAiConfig, OpenAiTranscriber};
use super::whisper::{WhisperModel, WhisperOptions};
use super::{SttError, Transcriber};
use crate::cancel::Cancel;
use crate::cloud::credentials::{OsKeyring, SecretStore};

/// Which speech-to-text engine transcribes.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Local Whisper (whisper.cpp), offline.
    #[default]
    Whisper,
    /// Deepgram pre-recorded (`nova-3`), as the Omi cloud uses.
    Deepgram,
    /// Any OpenAI-compatible `/v1/audio/transcriptions` server.
    Openai,
}

impl EngineKind {
    /// The name used in flags, config and messages.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Whisper => "whisper",
            EngineKind::Deepgram => "deepgram",
            EngineKind::Openai => "openai",
        }
    }

    /// The environment variable holding the engine's API key (HTTP engines).
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            EngineKind::Whisper => None,
            EngineKind::Deepgram => Some("DEEPGRAM_API_KEY"),
            EngineKind::Openai => Some("OPENAI_API_KEY"),
        }
    }
}

/// The keyring service the HTTP engines' keys are stored under.
pub const KEYRING_SERVICE: &str = "omi-sync";

/// The engine's API key: its environment variable, else the OS keyring
/// (service `omi-sync`, user `<engine>-api-key`). `None` when neither has
/// one; Whisper needs none.
pub fn api_key(kind: EngineKind) -> Option<String> {
    let env = kind.key_env()?;
    if let Some(k) = std::env::var(env).ok().filter(|k| !k.trim().is_empty()) {
        return Some(k.trim().to_string());
    }
    let user = format!("{}-api-key", kind.name());
    OsKeyring::new(KEYRING_SERVICE, &user)
        .read()
        .ok()
        .flatten()
        .filter(|k| !k.trim().is_empty())
}

/// The message for an HTTP engine without a key.
pub fn missing_key_message(kind: EngineKind) -> String {
    format!(
        "no API key for {name}: set {env} in the environment, or store it in the OS keyring \
         (service `{KEYRING_SERVICE}`, user `{name}-api-key`, e.g. \
         `secret-tool store --label omi-sync service {KEYRING_SERVICE} username {name}-api-key`)",
        name = kind.name(),
        env = kind.key_env().unwrap_or("-"),
    )
}

/// An engine made ready: what each worker's [`Transcriber`] is built from.
#[derive(Debug, Clone)]
pub enum Engine {
    /// Local Whisper: the model, loaded once and shared by the workers.
    Whisper {
        /// The loaded model.
        model: WhisperModel,
        /// Decoding options (threads per worker).
        options: WhisperOptions,
    },
    /// Deepgram.
    Deepgram(DeepgramConfig),
    /// An OpenAI-compatible server.
    OpenAi(OpenAiConfig),
}

impl Engine {
    /// Which kind it is.
    pub fn kind(&self) -> EngineKind {
        match self {
            Engine::Whisper { .. } => EngineKind::Whisper,
            Engine::Deepgram(_) => EngineKind::Deepgram,
            Engine::OpenAi(_) => EngineKind::Openai,
        }
    }

    /// A transcriber for one worker (a Whisper worker gets its own decoder
    /// state; HTTP workers share the engine's connection pool) that stops its
    /// work, its requests and its retry waits when `cancel` fires.
    pub fn worker(&self, cancel: &Cancel) -> Result<Box<dyn Transcriber>, SttError> {
        Ok(match self {
            Engine::Whisper { model, options } => Box::new(
                model
                    .transcriber(options.clone())?
                    .with_cancel(cancel.clone()),
            ),
            Engine::Deepgram(cfg) => {
                Box::new(DeepgramTranscriber::new(cfg.clone())?.with_cancel(cancel.clone()))
            }
            Engine::OpenAi(cfg) => {
                Box::new(OpenAiTranscriber::new(cfg.clone())?.with_cancel(cancel.clone()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_key_variables() {
        assert_eq!(EngineKind::Openai.name(), "openai");
        assert_eq!(EngineKind::Whisper.key_env(), None);
        assert_eq!(api_key(EngineKind::Whisper), None);
        let m = missing_key_message(EngineKind::Deepgram);
        assert!(
            m.contains("DEEPGRAM_API_KEY") && m.contains("deepgram-api-key"),
            "{m}"
        );
    }
}
