//! Criterion benchmarks of the Silero VAD on the parity audio (the first
//! 10 s of `tests/data/vad/parity.wav`). `bench/vad/run.sh` compares with
//! onnxruntime side by side.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use omi_sync::vad::{
    SileroVad, SpeechDetector, VadParams, WINDOW_SAMPLES, spans_from_probabilities,
};

/// The samples of the parity WAV (16 kHz mono 16-bit, canonical header).
fn parity_audio() -> Vec<f32> {
    let wav = include_bytes!("../tests/data/vad/parity.wav");
    let data = wav
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk")
        + 8;
    wav[data..]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let audio: Vec<f32> = parity_audio().into_iter().take(10 * 16_000).collect();
    let mut g = c.benchmark_group("vad_10s");
    g.throughput(Throughput::Elements(audio.len() as u64));
    g.sample_size(20);

    let mut vad = SileroVad::new();
    g.bench_function("probabilities", |b| {
        b.iter(|| {
            vad.reset();
            black_box(vad.probabilities(black_box(&audio)))
        })
    });
    g.bench_function("process_chunk_each_window", |b| {
        b.iter(|| {
            vad.reset();
            for chunk in audio.chunks(WINDOW_SAMPLES) {
                black_box(vad.process_chunk(black_box(chunk)));
            }
        })
    });
    g.bench_function("speech_detector_4096_blocks", |b| {
        b.iter(|| {
            let mut det = SpeechDetector::new(VadParams::default());
            let mut n = 0;
            for block in audio.chunks(4096) {
                n += det.push(black_box(block)).len();
            }
            n + det.finish().len()
        })
    });
    vad.reset();
    let probs = vad.probabilities(&audio);
    g.bench_function("spans_from_probabilities", |b| {
        b.iter(|| {
            spans_from_probabilities(black_box(&probs), audio.len() as u64, &VadParams::default())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
