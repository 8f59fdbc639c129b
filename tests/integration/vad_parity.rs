//! Parity of the Rust Silero VAD with the Python package, on reference data
//! made by `scripts/silero/make_reference.py`:
//!
//! * probabilities within 1e-4 of onnxruntime running
//!   `silero_vad_16k_op15.onnx` as silero-vad's `OnnxWrapper` does;
//! * spans identical to silero-vad 6.2.3's `get_speech_timestamps` for
//!   several parameter sets, in batch and streamed in odd block sizes;
//! * the span rules identical to the upstream function on 300 random
//!   probability sequences and parameter sets.

use std::path::PathBuf;

use omi_sync::vad::{
    SileroVad, SpanTracker, SpeechDetector, SpeechSpan, VadParams, WINDOW_SAMPLES,
    spans_from_probabilities, speech_spans,
};
use serde::Deserialize;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vad")
        .join(name)
}

/// The samples of a 16 kHz mono 16-bit PCM WAV file, as `i16 / 32768`.
fn read_wav(bytes: &[u8]) -> Vec<f32> {
    assert!(bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut pos = 12;
    let mut format_ok = false;
    while pos + 8 <= bytes.len() {
        let (id, len) = (&bytes[pos..pos + 4], u32_at(pos + 4) as usize);
        let body = pos + 8;
        match id {
            b"fmt " => {
                // PCM, 1 channel, 16 kHz, 16 bits.
                assert_eq!(
                    (
                        u16_at(body),
                        u16_at(body + 2),
                        u32_at(body + 4),
                        u16_at(body + 14)
                    ),
                    (1, 1, 16_000, 16)
                );
                format_ok = true;
            }
            b"data" => {
                assert!(format_ok, "data before fmt");
                return bytes[body..body + len]
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                    .collect();
            }
            _ => {}
        }
        pos = body + len + (len & 1);
    }
    panic!("no data chunk");
}

fn audio() -> Vec<f32> {
    read_wav(&std::fs::read(data("parity.wav")).expect("parity.wav"))
}

fn onnx_probs() -> Vec<f32> {
    std::fs::read(data("parity_probs.f32"))
        .expect("parity_probs.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[derive(Deserialize)]
struct ParityDoc {
    audio_samples: u64,
    windows: usize,
    cases: Vec<ParityCase>,
}

#[derive(Deserialize)]
struct ParityCase {
    name: String,
    params: VadParams,
    spans: Vec<(u64, u64)>,
}

fn parity_doc() -> ParityDoc {
    serde_json::from_slice(&std::fs::read(data("parity_spans.json")).expect("parity_spans.json"))
        .expect("parity_spans.json parses")
}

fn spans(pairs: &[(u64, u64)]) -> Vec<SpeechSpan> {
    pairs
        .iter()
        .map(|&(start, end)| SpeechSpan { start, end })
        .collect()
}

#[test]
fn probabilities_match_onnxruntime() {
    let audio = audio();
    let expected = onnx_probs();
    assert_eq!(expected.len(), audio.len().div_ceil(WINDOW_SAMPLES));
    assert!(
        !audio.len().is_multiple_of(WINDOW_SAMPLES),
        "the last window should be partial"
    );

    let got = SileroVad::new().probabilities(&audio);
    assert_eq!(got.len(), expected.len());
    let (mut max_diff, mut worst) = (0.0f32, 0);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let d = (g - e).abs();
        if d > max_diff {
            (max_diff, worst) = (d, i);
        }
    }
    println!(
        "max |rust - onnxruntime| = {max_diff:e} at window {worst} of {} (rust {}, onnx {})",
        got.len(),
        got[worst],
        expected[worst]
    );
    assert!(max_diff < 1e-4, "max difference {max_diff}");
    // The audio has both speech and non-speech.
    assert!(got.iter().any(|&p| p > 0.9) && got.iter().any(|&p| p < 0.1));
}

#[test]
fn process_chunk_gives_the_same_values_as_probabilities() {
    let audio = audio();
    let batch = SileroVad::new().probabilities(&audio);
    let mut vad = SileroVad::new();
    let single: Vec<f32> = audio
        .chunks(WINDOW_SAMPLES)
        .map(|chunk| vad.process_chunk(chunk))
        .collect();
    // Bit for bit: every product adds its terms in the same order however
    // many windows are computed together.
    assert_eq!(single, batch);

    // reset() really starts over.
    vad.reset();
    let again: Vec<f32> = audio[..20 * WINDOW_SAMPLES]
        .chunks(WINDOW_SAMPLES)
        .map(|c| vad.process_chunk(c))
        .collect();
    assert_eq!(again[..], batch[..20]);
}

#[test]
fn spans_match_get_speech_timestamps() {
    let doc = parity_doc();
    let audio = audio();
    assert_eq!(doc.audio_samples, audio.len() as u64);
    let onnx = onnx_probs();
    assert_eq!(doc.windows, onnx.len());
    let rust_probs = SileroVad::new().probabilities(&audio);
    for case in &doc.cases {
        let expected = spans(&case.spans);
        assert!(!expected.is_empty(), "{}", case.name);
        assert_eq!(
            spans_from_probabilities(&onnx, doc.audio_samples, &case.params),
            expected,
            "{}: span rules on onnxruntime's probabilities",
            case.name
        );
        assert_eq!(
            spans_from_probabilities(&rust_probs, doc.audio_samples, &case.params),
            expected,
            "{}: span rules on the Rust probabilities",
            case.name
        );
    }
    // The batch convenience, once.
    assert_eq!(
        speech_spans(&audio, &doc.cases[0].params),
        spans(&doc.cases[0].spans)
    );
}

#[test]
fn streaming_detector_in_odd_blocks_equals_batch() {
    let doc = parity_doc();
    let audio = audio();
    let block_sizes: [&[usize]; 4] = [&[1000], &[511, 513, 7, 4097], &[1, 2, 3, 65_536], &[12_345]];
    for (case, sizes) in doc.cases.iter().zip(block_sizes.iter().cycle()) {
        let mut det = SpeechDetector::new(case.params.clone());
        let mut got = Vec::new();
        let (mut pos, mut k) = (0, 0);
        while pos < audio.len() {
            let n = sizes[k % sizes.len()].min(audio.len() - pos);
            let new = det.push(&audio[pos..pos + n]);
            pos += n;
            k += 1;
            // A span comes out only once the audio has passed its end.
            for s in &new {
                assert!(s.end <= pos as u64, "{}: {s:?} before {pos}", case.name);
            }
            got.extend(new);
        }
        assert_eq!(det.samples_seen(), audio.len() as u64);
        got.extend(det.finish());
        assert_eq!(got, spans(&case.spans), "{} in blocks {sizes:?}", case.name);
    }
}

#[derive(Deserialize)]
struct FuzzDoc {
    cases: Vec<FuzzCase>,
}

#[derive(Deserialize)]
struct FuzzCase {
    runs: Vec<(f32, usize)>,
    audio_len: u64,
    params: VadParams,
    spans: Vec<(u64, u64)>,
}

#[test]
fn span_rules_match_upstream_on_random_probabilities() {
    let doc: FuzzDoc =
        serde_json::from_slice(&std::fs::read(data("spans_fuzz.json")).expect("spans_fuzz.json"))
            .expect("spans_fuzz.json parses");
    assert!(doc.cases.len() >= 300);
    let mut with_spans = 0;
    for (i, case) in doc.cases.iter().enumerate() {
        let probs: Vec<f32> = case
            .runs
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect();
        let expected = spans(&case.spans);
        with_spans += usize::from(!expected.is_empty());
        assert_eq!(
            spans_from_probabilities(&probs, case.audio_len, &case.params),
            expected,
            "case {i}: batch, {:?}",
            case.params
        );
        let mut tracker = SpanTracker::new(&case.params);
        let mut got = Vec::new();
        for &p in &probs {
            tracker.push(p, &mut got);
        }
        tracker.finish(case.audio_len, &mut got);
        assert_eq!(got, expected, "case {i}: streaming, {:?}", case.params);
    }
    assert!(with_spans > doc.cases.len() / 2);
}

#[test]
fn bad_input_does_not_panic() {
    let mut vad = SileroVad::new();
    assert!(vad.probabilities(&[]).is_empty());
    assert_eq!(vad.probabilities(&[0.25; 3]).len(), 1);
    let p = vad.process_chunk(&[]);
    assert!((0.0..=1.0).contains(&p));
    let mut weird = vec![f32::NAN; 700];
    weird[10] = f32::INFINITY;
    weird[20] = f32::NEG_INFINITY;
    weird[30] = 1e30;
    weird[40] = -1e30;
    for p in vad.probabilities(&weird) {
        assert!((0.0..=1.0).contains(&p), "{p}");
    }
    // NaN is silence: the same as zeros from a fresh state.
    let nan = SileroVad::new().probabilities(&[f32::NAN; 2048]);
    let zero = SileroVad::new().probabilities(&[0.0; 2048]);
    assert_eq!(nan, zero);

    assert!(speech_spans(&[], &VadParams::default()).is_empty());
    let det = SpeechDetector::new(VadParams::default());
    assert!(det.finish().is_empty());
    let mut det = SpeechDetector::new(VadParams {
        threshold: f32::NAN,
        ..VadParams::default()
    });
    assert!(det.push(&audio()).is_empty());
    assert!(det.finish().is_empty());
}
