//! Local Whisper through whisper.cpp (`whisper-rs`).
//!
//! One [`WhisperModel`] loads the ggml file once; each pool worker gets its
//! own [`WhisperTranscriber`] from [`WhisperModel::transcriber`], holding a
//! private `WhisperState` (decoder buffers) over the shared weights, and its
//! own thread count. whisper.cpp's log goes to `tracing` (target
//! `whisper_rs`), never to the terminal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters,
};

use super::{
    Piece, SttError, TranscribeOptions, Transcriber, Transcript, Word, WordTimes, check_audio,
};
use crate::cancel::Cancel;

const ENGINE: &str = "whisper";

/// How the local engine decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperOptions {
    /// CPU threads per worker (whisper.cpp's `n_threads`), at least 1.
    pub threads: usize,
    /// Beam width; 1 (the default) is greedy decoding.
    pub beam_size: usize,
    /// Re-decode at rising temperature when a segment looks degenerate
    /// (whisper.cpp's fallback). Off by default: it is slow and makes output
    /// non-deterministic; the guards catch loops instead.
    pub temperature_fallback: bool,
}

impl Default for WhisperOptions {
    fn default() -> Self {
        WhisperOptions {
            threads: 1,
            beam_size: 1,
            temperature_fallback: false,
        }
    }
}

static LOG_HOOK: Once = Once::new();

/// Routes whisper.cpp's and ggml's log into `tracing` (idempotent).
pub fn install_log_hook() {
    LOG_HOOK.call_once(whisper_rs::install_logging_hooks);
}

/// A loaded ggml Whisper model, shared by all workers.
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    path: PathBuf,
    english_only: bool,
    dtw: bool,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .field("english_only", &self.english_only)
            .field("dtw", &self.dtw)
            .finish()
    }
}

impl WhisperModel {
    /// Loads the model at `path`, with DTW word timing when the file name
    /// tells which standard model it is (see [`WhisperModel::load_with`]).
    pub fn load(path: &Path) -> Result<Self, SttError> {
        Self::load_with(path, true)
    }

    /// Loads the model at `path`. With `dtw`, and a file named like a
    /// standard model (`ggml-tiny.en.bin`, `ggml-base-q5_1.bin`, ...),
    /// whisper.cpp aligns tokens to audio with dynamic time warping over the
    /// model's alignment heads: word times good to about 0.1 s, which packing
    /// needs to put each word back in its segment. Otherwise word times come
    /// from the timestamp-token heuristic, which often stretches a word over
    /// a pause. A missing or unloadable file is [`SttError::Model`] naming
    /// the file and the command that fetches a model; so is a processor
    /// below the build's baseline ([`crate::cpu`]), before whisper.cpp runs.
    pub fn load_with(path: &Path, dtw: bool) -> Result<Self, SttError> {
        crate::cpu::require_whisper().map_err(|e| SttError::Model {
            message: e.to_string(),
        })?;
        install_log_hook();
        if !path.is_file() {
            return Err(SttError::Model {
                message: format!(
                    "Whisper model {} not found; fetch one with `omi-sync models download tiny.en`",
                    path.display()
                ),
            });
        }
        // whisper.cpp aborts the process on a malformed file: check it first.
        super::ggml_file::check(path).map_err(|why| SttError::Model {
            message: format!(
                "{} is not a whole Whisper model: {why}; fetch it again with `omi-sync models download`",
                path.display()
            ),
        })?;
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let preset = if dtw { dtw_preset(path) } else { None };
        let has_dtw = preset.is_some();
        if let Some(model_preset) = preset {
            params.dtw_parameters(DtwParameters {
                mode: DtwMode::ModelPreset { model_preset },
                ..DtwParameters::default()
            });
        }
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| SttError::Model {
            message: format!(
                "cannot load Whisper model {}: {e} (is it a whisper.cpp ggml file? \
                 `omi-sync models verify` checks installed models)",
                path.display()
            ),
        })?;
        let english_only = !ctx.is_multilingual();
        Ok(WhisperModel {
            ctx: Arc::new(ctx),
            path: path.to_path_buf(),
            english_only,
            dtw: has_dtw,
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when word times come from DTW alignment.
    pub fn has_dtw(&self) -> bool {
        self.dtw
    }

    /// True for the English-only (`.en`) models.
    pub fn is_english_only(&self) -> bool {
        self.english_only
    }

    /// A transcriber for one worker, with its own decoder state.
    pub fn transcriber(&self, opts: WhisperOptions) -> Result<WhisperTranscriber, SttError> {
        let state = self.ctx.create_state().map_err(|e| SttError::Engine {
            engine: ENGINE,
            message: format!("cannot create a decoder state: {e}"),
        })?;
        Ok(WhisperTranscriber {
            model: self.clone(),
            state,
            opts,
            cancel: None,
        })
    }
}

/// The DTW alignment-head preset for a standard model file name.
fn dtw_preset(path: &Path) -> Option<DtwModelPreset> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let name = name.strip_suffix(".bin").unwrap_or(&name);
    let name = name.strip_prefix("ggml-").unwrap_or(name);
    // Quantised variants keep the architecture: ggml-base.en-q5_1.bin.
    let name = name.split("-q").next().unwrap_or(name);
    use DtwModelPreset as P;
    Some(match name {
        "tiny.en" => P::TinyEn,
        "tiny" => P::Tiny,
        "base.en" => P::BaseEn,
        "base" => P::Base,
        "small.en" => P::SmallEn,
        "small" => P::Small,
        "medium.en" => P::MediumEn,
        "medium" => P::Medium,
        "large-v1" => P::LargeV1,
        "large-v2" => P::LargeV2,
        "large-v3" | "large" => P::LargeV3,
        "large-v3-turbo" => P::LargeV3Turbo,
        _ => return None,
    })
}

/// whisper.cpp's abort hook: whether the job's cancel flag is set.
///
/// # Safety
/// `data` must point at a live `AtomicBool`.
unsafe extern "C" fn aborted(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: the caller passes the flag `transcribe` keeps alive.
    unsafe {
        (*(data as *const std::sync::atomic::AtomicBool)).load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One worker's Whisper engine: the shared model plus a private state.
pub struct WhisperTranscriber {
    model: WhisperModel,
    state: whisper_rs::WhisperState,
    opts: WhisperOptions,
    /// Stops a window mid-way (whisper.cpp's abort hook polls it).
    cancel: Option<Cancel>,
}

impl WhisperTranscriber {
    /// The same transcriber, stopping mid-window when `cancel` fires (the
    /// window then fails with [`SttError::Cancelled`]).
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }
}

impl std::fmt::Debug for WhisperTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTranscriber")
            .field("model", &self.model)
            .field("opts", &self.opts)
            .finish()
    }
}

/// A decoded token before words are assembled.
struct Tok {
    text: String,
    /// Log probability.
    plog: f32,
    t0: i64,
    t1: i64,
    /// DTW time (centiseconds), negative when unavailable.
    t_dtw: i64,
}

/// Joins subword tokens into words: a token starting with a space starts a
/// new word; punctuation-only tokens attach to the word before. With DTW
/// times, a word starts at its first token's DTW time and ends where the
/// next word starts (the last word at its last token's DTW time plus the
/// length of its tokens, at most the segment end); otherwise at the tokens'
/// timestamp-heuristic times.
fn tokens_to_words(toks: &[Tok], seg_t0: f64, seg_t1: f64) -> Vec<Word> {
    struct Acc {
        text: String,
        plog_sum: f32,
        n: usize,
        t0: i64,
        t1: i64,
        d0: i64,
        dlast: i64,
    }
    let mut words: Vec<Acc> = Vec::new();
    for t in toks {
        let starts_word = t.text.starts_with(' ') || words.is_empty();
        let trimmed = t.text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let punct_only = trimmed.chars().all(|c| !c.is_alphanumeric());
        if starts_word && !(punct_only && !words.is_empty() && !t.text.starts_with(' ')) {
            words.push(Acc {
                text: trimmed.to_string(),
                plog_sum: t.plog,
                n: 1,
                t0: t.t0,
                t1: t.t1,
                d0: t.t_dtw,
                dlast: t.t_dtw,
            });
        } else if let Some(w) = words.last_mut() {
            w.text.push_str(trimmed);
            w.plog_sum += t.plog;
            w.n += 1;
            w.t1 = w.t1.max(t.t1);
            if t.t_dtw >= 0 {
                w.dlast = w.dlast.max(t.t_dtw);
            }
        }
    }
    let dtw = !words.is_empty() && words.iter().all(|w| w.d0 >= 0);
    let cs = |c: i64| c as f64 / 100.0;
    let mut out = Vec::with_capacity(words.len());
    for i in 0..words.len() {
        let w = &words[i];
        let (start, end) = if dtw {
            let start = cs(w.d0);
            let end = match words.get(i + 1) {
                Some(next) => cs(next.d0),
                // About 0.1 s a token past the last token's alignment.
                None => cs(w.dlast) + 0.1 * w.n as f64,
            };
            (start, end)
        } else {
            (cs(w.t0), cs(w.t1))
        };
        let start = start.clamp(seg_t0, seg_t1);
        let end = end.clamp(start, seg_t1.max(start));
        out.push(Word {
            start,
            end,
            text: w.text.clone(),
            confidence: Some((w.plog_sum / w.n as f32).exp()),
            speaker: None,
        });
    }
    out
}

impl Transcriber for WhisperTranscriber {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        check_audio(ENGINE, audio)?;
        // whisper.cpp ignores input under 100 ms anyway.
        if audio.len() < super::SAMPLE_RATE as usize / 10 {
            return Ok(Transcript::default());
        }
        let strategy = if self.opts.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: self.opts.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.opts.threads.max(1) as i32);
        let language = if self.model.english_only {
            Some("en")
        } else {
            opts.language.as_deref()
        };
        params.set_language(language.or(Some("auto")));
        params.set_detect_language(false);
        params.set_translate(false);
        params.set_no_context(true);
        params.set_token_timestamps(opts.word_timestamps);
        // With DTW the word times come from alignment, so the timestamp
        // tokens only cost decoding steps, and after the last one whisper.cpp
        // encodes the window's tail again as a new 30 s window: without them
        // a window is one encoder pass (1.2x faster, same or better WER,
        // bench/stt/README.md). Packing splits the one piece per window back
        // into its segments ([`super::WordTimes::Onsets`]).
        params.set_no_timestamps(self.model.dtw && opts.word_timestamps);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        if !self.opts.temperature_fallback {
            params.set_temperature_inc(0.0);
        }
        if let Some(p) = &opts.prompt {
            params.set_initial_prompt(p);
        }
        let cancel = self.cancel.clone();
        // Kept alive until `full` returns: the abort hook reads it.
        let flag = cancel.as_ref().map(Cancel::flag);
        if let (Some(c), Some(flag)) = (&cancel, &flag) {
            c.check().map_err(|_| SttError::Cancelled)?;
            // whisper-rs 0.16's `set_abort_callback_safe` hands its trampoline
            // a pointer of another type than it reads (undefined behaviour that
            // aborts windows at random), so the hook is set here by hand.
            // SAFETY: `aborted` only reads the `AtomicBool` behind the pointer,
            // which `flag` keeps alive for the whole `full` call.
            unsafe {
                params.set_abort_callback(Some(aborted));
                params.set_abort_callback_user_data(Arc::as_ptr(flag) as *mut std::ffi::c_void);
            }
        }
        let done = self.state.full(params, audio);
        drop(flag);
        if cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            return Err(SttError::Cancelled);
        }
        done.map_err(|e| SttError::Engine {
            engine: ENGINE,
            message: format!("whisper_full failed: {e}"),
        })?;

        let eot = self.model.ctx.token_eot();
        let duration = audio.len() as f64 / f64::from(super::SAMPLE_RATE);
        let mut pieces = Vec::new();
        for seg in self.state.as_iter() {
            // Times never run past the audio (whisper.cpp's can, by a frame or two).
            let t0 = (seg.start_timestamp() as f64 / 100.0).min(duration);
            let t1 = (seg.end_timestamp() as f64 / 100.0).clamp(t0, duration);
            let text = match seg.to_str_lossy() {
                Ok(s) => s.trim().to_string(),
                Err(_) => continue,
            };
            let mut toks = Vec::new();
            let mut logp_sum = 0.0f64;
            let mut n_text = 0usize;
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else {
                    continue;
                };
                let data = tok.token_data();
                if data.id >= eot {
                    continue; // special and timestamp tokens
                }
                let text = tok
                    .to_str_lossy()
                    .map(|s| s.into_owned())
                    .unwrap_or_default();
                logp_sum += f64::from(data.plog);
                n_text += 1;
                toks.push(Tok {
                    text,
                    plog: data.plog,
                    t0: data.t0,
                    t1: data.t1,
                    t_dtw: if self.model.dtw { data.t_dtw } else { -1 },
                });
            }
            let confidence = (n_text > 0).then(|| (logp_sum / n_text as f64).exp() as f32);
            let words = if opts.word_timestamps {
                tokens_to_words(&toks, t0, t1)
            } else {
                Vec::new()
            };
            if text.is_empty() && words.is_empty() {
                continue;
            }
            pieces.push(Piece {
                start: t0,
                end: t1,
                text,
                words,
                no_speech_prob: Some(seg.no_speech_probability()),
                confidence,
                speaker: None,
            });
        }
        Ok(Transcript {
            pieces,
            language: language.map(str::to_string),
            word_times: if self.model.dtw {
                WordTimes::Onsets
            } else {
                WordTimes::Spans
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str, t0: i64, t1: i64) -> Tok {
        Tok {
            text: text.into(),
            plog: -0.1,
            t0,
            t1,
            t_dtw: -1,
        }
    }

    #[test]
    fn dtw_times_start_words_and_end_them_at_the_next() {
        let mut toks = [tok(" Hel", 0, 20), tok("lo", 20, 40), tok(" world", 50, 90)];
        toks[0].t_dtw = 10;
        toks[1].t_dtw = 25;
        toks[2].t_dtw = 60;
        let w = tokens_to_words(&toks, 0.0, 2.0);
        assert_eq!((w[0].start, w[0].end), (0.1, 0.6));
        assert!((w[1].start - 0.6).abs() < 1e-9 && (w[1].end - 0.7).abs() < 1e-9);
    }

    #[test]
    fn dtw_presets_from_file_names() {
        let p = |n: &str| dtw_preset(Path::new(n)).map(|p| format!("{p:?}"));
        assert_eq!(p("/m/ggml-tiny.en.bin").as_deref(), Some("TinyEn"));
        assert_eq!(p("ggml-base.en-q5_1.bin").as_deref(), Some("BaseEn"));
        assert_eq!(
            p("ggml-large-v3-turbo-q8_0.bin").as_deref(),
            Some("LargeV3Turbo")
        );
        assert_eq!(p("my-model.bin"), None);
    }

    #[test]
    fn tokens_join_into_words() {
        let toks = [
            tok(" Hel", 0, 20),
            tok("lo", 20, 40),
            tok(",", 40, 42),
            tok(" world", 50, 90),
            tok(".", 90, 95),
        ];
        let w = tokens_to_words(&toks, 0.0, 1.0);
        let texts: Vec<&str> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Hello,", "world."]);
        assert_eq!((w[0].start, w[0].end), (0.0, 0.42));
        assert_eq!((w[1].start, w[1].end), (0.5, 0.95));
    }

    #[test]
    fn word_times_stay_inside_the_segment() {
        let w = tokens_to_words(&[tok(" late", 500, 900)], 1.0, 2.0);
        assert_eq!((w[0].start, w[0].end), (2.0, 2.0));
    }

    #[test]
    fn missing_model_names_the_download_command() {
        let e = WhisperModel::load(Path::new("/nonexistent/ggml-x.bin")).unwrap_err();
        assert!(e.is_fatal());
        assert!(e.to_string().contains("omi-sync models download"), "{e}");
    }

    #[test]
    fn garbage_model_is_a_model_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ggml-bad.bin");
        std::fs::write(&p, b"not a model at all").unwrap();
        let e = WhisperModel::load(&p).unwrap_err();
        assert!(matches!(e, SttError::Model { .. }), "{e}");
    }
}
