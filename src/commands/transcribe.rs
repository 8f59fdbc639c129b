//! `omi-sync transcribe`: speech segments to text, and the engine setup that
//! `--auto` shares.

use anyhow::anyhow;

use super::Context;
use crate::cli::TranscribeArgs;
use crate::engine::transcribe::{TranscribeError, TranscribeOptions, TranscribeReport, transcribe};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::stt::deepgram::DeepgramConfig;
use crate::stt::engine::{Engine, EngineKind, api_key, missing_key_message};
use crate::stt::openai::OpenAiConfig;
use crate::stt::pool::default_workers;
use crate::stt::whisper::{WhisperModel, WhisperOptions, install_log_hook};
use crate::stt::{self, models};
use crate::term::{GOOD, paint};

/// Parallel requests for the cloud engines when not configured.
const HTTP_WORKERS: usize = 4;

/// The engine and run options from the flags over `[stt]` in the config.
/// A missing model or key is a fatal error saying how to fix it.
pub(super) fn setup(
    ctx: &Context,
    args: &TranscribeArgs,
) -> Result<(Engine, TranscribeOptions), Failure> {
    let cfg = &ctx.config.stt;
    let kind = args.engine.unwrap_or(cfg.engine);
    let threads = args
        .threads
        .map(usize::from)
        .or(cfg.threads)
        .unwrap_or(1)
        .max(1);
    let workers = args.workers.map(usize::from).or(cfg.workers);
    let engine = match kind {
        EngineKind::Whisper => {
            let explicit = args.model.as_deref().or(cfg.model_path.as_deref());
            let path = models::resolve_model(explicit, &cfg.model, &ctx.data_dir.join("models"))
                .map_err(Failure::fatal)?;
            install_log_hook();
            let model = WhisperModel::load(&path).map_err(Failure::fatal)?;
            Engine::Whisper {
                model,
                options: WhisperOptions {
                    threads,
                    ..WhisperOptions::default()
                },
            }
        }
        EngineKind::Deepgram => {
            let key =
                api_key(kind).ok_or_else(|| Failure::fatal(anyhow!(missing_key_message(kind))))?;
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
                (None, None) => return Err(Failure::fatal(anyhow!(missing_key_message(kind)))),
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
    let workers = workers.unwrap_or(match kind {
        EngineKind::Whisper => default_workers(threads),
        _ => HTTP_WORKERS,
    });
    let mut opts = TranscribeOptions::with_workers(workers);
    opts.rules = ctx.rules();
    opts.request = stt::TranscribeOptions {
        language: Some(cfg.language.trim().to_string()).filter(|l| !l.is_empty()),
        ..stt::TranscribeOptions::default()
    };
    Ok((engine, opts))
}

/// A failed run as a command failure: the engine's errors are fatal (a
/// person must fetch the model or fix the key), the ledger's keep their class.
pub(super) fn failure(e: TranscribeError) -> Failure {
    match e {
        TranscribeError::Store(e) => e.into(),
        TranscribeError::Engine(e) => Failure::fatal(e),
    }
}

/// 9 when nothing was waiting, 3 when some segments failed or stay pending.
pub(super) fn exit_code(r: &TranscribeReport) -> ExitCode {
    if r.segments == 0 {
        ExitCode::NothingToDo
    } else if r.failed > 0 || r.left_pending > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Done
    }
}

/// `omi-sync transcribe [--engine E] [--workers N] [--threads N] [--model PATH]`
pub fn run(ctx: &Context, args: &TranscribeArgs) -> CommandResult {
    let ledger = ctx.ledger()?;
    if ledger.untranscribed_segments()?.is_empty() {
        if ctx.out.json {
            ctx.out.print_json(&TranscribeReport::default());
        } else {
            ctx.out
                .note("Nothing to transcribe: every segment has its transcript.");
        }
        return Ok(ExitCode::NothingToDo);
    }
    let (engine, opts) = setup(ctx, args)?;
    let progress = ctx.out.progress();
    let report = transcribe(&ledger, &engine, &opts, &progress).map_err(failure)?;
    if ctx.out.json {
        ctx.out.print_json(&report);
    } else if !ctx.out.quiet {
        anstream::println!(
            "{} {} segments with words, {} silent, {} failed, {} left for the next run \
                 ({:.0} s of speech in {:.1} s). `omi-sync timeline` shows the text.",
            paint(GOOD, "transcribed:"),
            report.speech,
            report.silent,
            report.failed,
            report.left_pending,
            report.speech_s,
            report.elapsed_s
        );
    }
    Ok(exit_code(&report))
}
