//! Making a transcription engine ready from settings: which engine, its
//! model or key, and how many workers with how many threads each.
//!
//! Flags a person gave ([`SttChoice`]) win over `[stt]` in the config. A
//! missing model or key is a [`SetupError`] whose [`remedy`](SetupError::remedy)
//! says what is needed; frontends say how to get it.

use std::path::PathBuf;

use super::TranscribeOptions;
use crate::engine::remedy::{KeyService, Remedy};
use crate::engine::workspace::Workspace;
use crate::stt::deepgram::DeepgramConfig;
use crate::stt::engine::{Engine, EngineKind, api_key};
use crate::stt::openai::OpenAiConfig;
use crate::stt::pool::default_workers;
use crate::stt::whisper::{WhisperModel, WhisperOptions, install_log_hook};
use crate::stt::{self, SttError, models};

/// Parallel requests for the cloud engines when not configured.
const HTTP_WORKERS: usize = 4;

/// What a person chose for this run, over the config (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SttChoice {
    /// The engine.
    pub engine: Option<EngineKind>,
    /// Parallel workers (at least 1).
    pub workers: Option<usize>,
    /// CPU threads per Whisper worker (at least 1).
    pub threads: Option<usize>,
    /// A ggml model file.
    pub model: Option<PathBuf>,
}

/// Why no engine could be made ready.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The Whisper model is missing or cannot be loaded.
    #[error(transparent)]
    Model(SttError),
    /// An HTTP engine has no API key.
    #[error("no API key for {}", .0.name())]
    MissingKey(EngineKind),
    /// The processor lacks what the local Whisper build needs.
    #[error(transparent)]
    Processor(crate::cpu::CpuTooOld),
}

impl SetupError {
    /// What a person can do about it.
    pub fn remedy(&self, ws: &Workspace) -> Remedy {
        match self {
            SetupError::Model(_) => Remedy::GetModel {
                name: models::short_name(&ws.config.stt.model).to_string(),
            },
            SetupError::MissingKey(kind) => Remedy::ProvideKey {
                service: key_service(*kind),
            },
            SetupError::Processor(_) => Remedy::OtherEngine,
        }
    }
}

/// The keyed service behind an HTTP engine.
pub fn key_service(kind: EngineKind) -> KeyService {
    match kind {
        EngineKind::Deepgram => KeyService::Deepgram,
        EngineKind::Openai | EngineKind::Whisper => KeyService::Openai,
    }
}

/// The engine and run options for `choice` over the workspace's `[stt]`.
pub fn setup(
    ws: &Workspace,
    choice: &SttChoice,
) -> Result<(Engine, TranscribeOptions), SetupError> {
    let cfg = &ws.config.stt;
    let kind = choice.engine.unwrap_or(cfg.engine);
    let threads = choice.threads.or(cfg.threads).unwrap_or(1).max(1);
    let engine = match kind {
        EngineKind::Whisper => {
            crate::cpu::require_whisper().map_err(SetupError::Processor)?;
            let explicit = choice.model.as_deref().or(cfg.model_path.as_deref());
            let path = models::resolve_model(explicit, &cfg.model, &ws.data_dir.join("models"))
                .map_err(SetupError::Model)?;
            install_log_hook();
            let model = WhisperModel::load(&path).map_err(SetupError::Model)?;
            Engine::Whisper {
                model,
                options: WhisperOptions {
                    threads,
                    ..WhisperOptions::default()
                },
            }
        }
        EngineKind::Deepgram => {
            let key = api_key(kind).ok_or(SetupError::MissingKey(kind))?;
            let mut c = DeepgramConfig::new(key);
            if let Some(url) = &cfg.deepgram_url {
                c.base_url = url.trim_end_matches('/').to_string();
            }
            Engine::Deepgram(c)
        }
        EngineKind::Openai => {
            // A self-hosted server may need no key; OpenAI's own API does.
            let key = match (api_key(kind), &cfg.openai_url) {
                (Some(k), _) => k,
                (None, Some(_)) => String::new(),
                (None, None) => return Err(SetupError::MissingKey(kind)),
            };
            let mut c = OpenAiConfig::new(key);
            if let Some(url) = &cfg.openai_url {
                c.base_url = url.trim_end_matches('/').to_string();
            }
            if let Some(m) = &cfg.openai_model {
                c.model = m.clone();
            }
            Engine::OpenAi(c)
        }
    };
    let workers = choice
        .workers
        .or(cfg.workers)
        .unwrap_or(match kind {
            EngineKind::Whisper => default_workers(threads),
            _ => HTTP_WORKERS,
        })
        .max(1);
    let mut opts = TranscribeOptions::with_workers(workers);
    opts.rules = ws.rules();
    opts.request = stt::TranscribeOptions {
        language: Some(cfg.language.trim().to_string()).filter(|l| !l.is_empty()),
        ..stt::TranscribeOptions::default()
    };
    Ok((engine, opts))
}
