//! STT benchmarks (a plain program: `harness = false`). Prints medians of
//! several runs, measured side by side in one process; never asserts.
//!
//! ```text
//! cargo bench --bench stt -- packing [--runs N] [--threads T] [--no-dtw]
//!     packed windows vs one call per segment, same 60 utterances (1-4 s),
//!     same model, same threads: wall time, x-real-time, throughput ratio, WER
//! cargo bench --bench stt -- engine [--runs N] [--threads T] [--dump DIR] [--no-dtw]
//!     whisper.cpp on the packed windows (for bench/stt/compare_faster_whisper.sh,
//!     which runs faster-whisper on the same WAVs written to DIR)
//! ```
//!
//! The model is `$OMI_SYNC_MODEL`, else `../shared/models/ggml-tiny.en.bin`.

#[path = "../tests/integration/stt_common/mod.rs"]
mod stt_common;

use std::time::Instant;

use omi_sync::stt::guards::GuardConfig;
use omi_sync::stt::packing::{self, Assembler, PackConfig, SpeechSegment, Window};
use omi_sync::stt::whisper::{WhisperModel, WhisperOptions, WhisperTranscriber};
use omi_sync::stt::{TranscribeOptions, Transcriber, wav, wer};

const T0: i64 = 1_717_000_000_000;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn backlog(u: &[stt_common::Utterance]) -> Vec<SpeechSegment> {
    let gaps = [1_500, 3_200, 9_000, 1_200, 2_400, 5_500, 1_800, 4_100];
    let mut t = T0;
    u.iter()
        .enumerate()
        .map(|(i, x)| {
            let len = (x.samples.len() / 16) as i64;
            let s = SpeechSegment {
                id: i as i64,
                group: 1,
                start_ms: t,
                end_ms: t + len,
            };
            t += len + gaps[i % gaps.len()];
            s
        })
        .collect()
}

fn window_audio(w: &Window, u: &[stt_common::Utterance]) -> Vec<f32> {
    packing::assemble(w, |p| Ok::<_, ()>(u[p.segment_id as usize].samples.clone())).unwrap()
}

/// Transcribes every window in order, maps back; returns (seconds, WER).
fn run(
    engine: &mut WhisperTranscriber,
    windows: &[Window],
    u: &[stt_common::Utterance],
) -> (f64, f64) {
    let audio: Vec<Vec<f32>> = windows.iter().map(|w| window_audio(w, u)).collect();
    let t = Instant::now();
    let mut asm = Assembler::new();
    let mut results = Vec::new();
    for (w, a) in windows.iter().zip(&audio) {
        let tr = engine
            .transcribe(a, &TranscribeOptions::default())
            .expect("transcribe");
        results.extend(asm.add(packing::map_window(w, &tr, Some(a), &GuardConfig::default()).0));
    }
    let secs = t.elapsed().as_secs_f64();
    let (mut e, mut n) = (0, 0);
    for r in &results {
        let (a, b) = wer::word_edits(&u[r.segment_id as usize].text, &r.text);
        e += a;
        n += b;
    }
    // Segments that never came back count as all words deleted.
    for (i, x) in u.iter().enumerate() {
        if !results.iter().any(|r| r.segment_id == i as i64) {
            let k = wer::normalize(&x.text).len();
            e += k;
            n += k;
        }
    }
    (secs, e as f64 / n.max(1) as f64)
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: this
    // one takes minutes, so it only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("stt benchmark: run it with `cargo bench --bench stt`");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args
        .iter()
        .find(|a| !a.starts_with("--") && !a.chars().all(|c| c.is_ascii_digit()))
        .cloned()
        .unwrap_or_else(|| "packing".into());
    let runs: usize = arg(&args, "--runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let threads: usize = arg(&args, "--threads")
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let Some(model_path) = stt_common::model_path() else {
        return;
    };
    let dtw = !args.iter().any(|a| a == "--no-dtw");
    let model = WhisperModel::load_with(&model_path, dtw).expect("model");
    let mut engine = model
        .transcriber(WhisperOptions {
            threads,
            ..Default::default()
        })
        .unwrap();
    let u = stt_common::utterances();
    let speech_s: f64 = u.iter().map(|x| x.samples.len() as f64 / 16_000.0).sum();
    let segs = backlog(&u);
    let packed = packing::pack(&segs, &PackConfig::default());
    let single = packing::pack(&segs, &PackConfig::one_per_segment());
    println!(
        "model {} (DTW word times: {}) | {} utterances, {:.1} s of speech | {} packed windows vs {} single | {threads} threads | {runs} runs",
        model_path.display(),
        model.has_dtw(),
        u.len(),
        speech_s,
        packed.len(),
        single.len()
    );
    // Warm-up (page in the weights, allocate buffers).
    let _ = engine.transcribe(&window_audio(&packed[0], &u), &TranscribeOptions::default());

    match mode.as_str() {
        "packing" => {
            let (mut tp, mut ts, mut wp, mut ws) = (vec![], vec![], vec![], vec![]);
            for r in 0..runs {
                let (a, b) = run(&mut engine, &packed, &u);
                let (c, d) = run(&mut engine, &single, &u);
                println!(
                    "run {r}: packed {a:.2} s (WER {:.1}%), per-segment {c:.2} s (WER {:.1}%)",
                    b * 100.0,
                    d * 100.0
                );
                tp.push(a);
                wp.push(b);
                ts.push(c);
                ws.push(d);
            }
            let (p, s) = (median(tp), median(ts));
            println!(
                "\nmedian over {runs} runs, {threads} threads, {:.1} s of speech:",
                speech_s
            );
            println!(
                "  packed windows  : {p:7.2} s  {:6.1}x real time  WER {:.1}%",
                speech_s / p,
                median(wp) * 100.0
            );
            println!(
                "  one per segment : {s:7.2} s  {:6.1}x real time  WER {:.1}%",
                speech_s / s,
                median(ws) * 100.0
            );
            println!("  throughput ratio (packed / per-segment): {:.2}x", s / p);
        }
        "engine" => {
            let dump = arg(&args, "--dump");
            let audio: Vec<Vec<f32>> = packed.iter().map(|w| window_audio(w, &u)).collect();
            let window_s: f64 = audio.iter().map(|a| a.len() as f64 / 16_000.0).sum();
            if let Some(dir) = &dump {
                std::fs::create_dir_all(dir).unwrap();
                let mut refs = String::new();
                for (i, (w, a)) in packed.iter().zip(&audio).enumerate() {
                    std::fs::write(
                        format!("{dir}/window{i:02}.wav"),
                        wav::encode_pcm16(a, 16_000),
                    )
                    .unwrap();
                    let text: Vec<&str> = w
                        .parts
                        .iter()
                        .map(|p| u[p.segment_id as usize].text.as_str())
                        .collect();
                    refs.push_str(&format!("window{i:02}.wav\t{}\n", text.join(" ")));
                }
                std::fs::write(format!("{dir}/refs.tsv"), refs).unwrap();
            }
            let refs: Vec<String> = packed
                .iter()
                .map(|w| {
                    w.parts
                        .iter()
                        .map(|p| u[p.segment_id as usize].text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            let (mut times, mut wers) = (vec![], vec![]);
            for r in 0..runs {
                let t = Instant::now();
                let hyps: Vec<String> = audio
                    .iter()
                    .map(|a| {
                        engine
                            .transcribe(a, &TranscribeOptions::default())
                            .unwrap()
                            .text()
                    })
                    .collect();
                let secs = t.elapsed().as_secs_f64();
                let (mut e, mut n) = (0, 0);
                for (r, h) in refs.iter().zip(&hyps) {
                    let (a, b) = wer::word_edits(r, h);
                    e += a;
                    n += b;
                }
                println!(
                    "run {r}: {secs:.2} s, WER {:.1}%",
                    e as f64 * 100.0 / n as f64
                );
                times.push(secs);
                wers.push(e as f64 / n as f64);
            }
            let m = median(times);
            println!(
                "\nwhisper.cpp (whisper-rs, greedy, {}), {threads} threads, {} windows, {window_s:.1} s of window audio:",
                if dtw {
                    "DTW word times, no timestamp tokens"
                } else {
                    "timestamp-token word times"
                },
                packed.len()
            );
            println!(
                "  median {m:.2} s  {:.1}x real time  WER {:.1}% (raw text, no guards)",
                window_s / m,
                median(wers) * 100.0
            );
        }
        other => eprintln!("unknown mode {other}: use `packing` or `engine`"),
    }
}
