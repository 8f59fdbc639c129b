//! Times the Rust Silero VAD on a 16 kHz mono 16-bit WAV, repeated to a
//! target duration; used by `bench/vad/run.sh`.
//!
//! ```text
//! cargo run --release --example vad_bench -- FILE.wav [--seconds 600] [--runs 5]
//!     [--per-chunk] [--probs OUT.f32]
//! ```
//!
//! Prints one line per run (`run N: X s for Y s of audio, cpu Z s`: wall
//! time, and on Linux the thread's on-CPU time, which other processes on a
//! busy machine do not inflate as much). By default the
//! audio goes through `SileroVad::probabilities` (windows batched through
//! the convolutions); `--per-chunk` calls `process_chunk` once per window
//! instead, as a caller streaming 32 ms at a time would. With `--probs`, it
//! writes the probabilities of the un-repeated file (raw f32 LE).

use std::time::Instant;

use omi_sync::vad::SileroVad;

fn main() {
    if let Err(e) = run() {
        eprintln!("vad_bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let (mut seconds, mut runs, mut probs_out, mut per_chunk) = (600.0f64, 5usize, None, false);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--seconds" => seconds = value("--seconds")?.parse().map_err(|e| format!("{e}"))?,
            "--runs" => runs = value("--runs")?.parse().map_err(|e| format!("{e}"))?,
            "--probs" => probs_out = Some(value("--probs")?),
            "--per-chunk" => per_chunk = true,
            _ if file.is_none() => file = Some(a),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    let file = file
        .ok_or("usage: vad_bench FILE.wav [--seconds S] [--runs N] [--per-chunk] [--probs OUT]")?;
    let bytes = std::fs::read(&file).map_err(|e| format!("{file}: {e}"))?;
    let clip = pcm16_mono_16k(&bytes).ok_or(format!("{file}: not a 16 kHz mono 16-bit WAV"))?;
    if clip.is_empty() {
        return Err(format!("{file}: no samples"));
    }

    if let Some(out) = probs_out {
        let probs = SileroVad::new().probabilities(&clip);
        let raw: Vec<u8> = probs.iter().flat_map(|p| p.to_le_bytes()).collect();
        std::fs::write(&out, raw).map_err(|e| format!("{out}: {e}"))?;
    }

    let target = (seconds * 16_000.0) as usize;
    let mut audio = Vec::with_capacity(target + clip.len());
    while audio.len() < target {
        audio.extend_from_slice(&clip);
    }
    audio.truncate(target.max(1));
    let audio_s = audio.len() as f64 / 16_000.0;
    let mut vad = SileroVad::new();
    for r in 0..runs {
        vad.reset();
        let cpu0 = thread_cpu_seconds();
        let t = Instant::now();
        let probs = if per_chunk {
            audio
                .chunks(omi_sync::vad::WINDOW_SAMPLES)
                .map(|c| vad.process_chunk(c))
                .collect()
        } else {
            vad.probabilities(&audio)
        };
        let el = t.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_seconds()) {
            (Some(a), Some(b)) => format!(", cpu {:.4} s", b - a),
            _ => String::new(),
        };
        let speech = probs.iter().filter(|&&p| p >= 0.5).count();
        println!("run {r}: {el:.4} s for {audio_s:.1} s of audio{cpu} ({speech} speech windows)");
    }
    Ok(())
}

/// Time this thread has spent on a CPU, from Linux's schedstat (ns).
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// The samples of a PCM 16-bit mono 16 kHz WAV, or `None`.
fn pcm16_mono_16k(b: &[u8]) -> Option<Vec<f32>> {
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let u16_at = |i: usize| Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]));
    let u32_at = |i: usize| {
        Some(u32::from_le_bytes([
            *b.get(i)?,
            *b.get(i + 1)?,
            *b.get(i + 2)?,
            *b.get(i + 3)?,
        ]))
    };
    let (mut pos, mut fmt_ok) = (12usize, false);
    while pos + 8 <= b.len() {
        let len = u32_at(pos + 4)? as usize;
        let body = pos + 8;
        match &b[pos..pos + 4] {
            b"fmt " => {
                fmt_ok = u16_at(body)? == 1
                    && u16_at(body + 2)? == 1
                    && u32_at(body + 4)? == 16_000
                    && u16_at(body + 14)? == 16;
            }
            b"data" if fmt_ok => {
                let data = b.get(body..body.checked_add(len)?)?;
                return Some(
                    data.chunks_exact(2)
                        .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
                        .collect(),
                );
            }
            _ => {}
        }
        pos = body.checked_add(len)?.checked_add(len & 1)?;
    }
    None
}
