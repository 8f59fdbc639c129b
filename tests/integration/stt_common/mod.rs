//! Helpers shared by the `stt_*` integration tests: the real model and the
//! Opus-encoded espeak-ng fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use omi_sync::audio::{Codec, FrameDecoder};

/// The fixture directory.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stt")
}

/// The real tiny.en model: `OMI_SYNC_MODEL`, else `../shared/models/` beside
/// the checkout. With `CI` set a missing model FAILS the test; locally it is
/// skipped with a loud message.
pub fn model_path() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("OMI_SYNC_MODEL")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/ggml-tiny.en.bin"),
            PathBuf::from("/work/shared/models/ggml-tiny.en.bin"),
        ])
        .collect();
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Some(p.clone());
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but the Whisper model is missing (looked at {candidates:?}); set OMI_SYNC_MODEL"
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: no Whisper model (looked at {candidates:?}); set OMI_SYNC_MODEL !!!!!!!!\n"
    );
    None
}

/// One spoken sentence from the fixture.
#[derive(Debug, Clone)]
pub struct Utterance {
    /// espeak-ng voice.
    pub voice: String,
    /// What was said.
    pub text: String,
    /// 16 kHz mono samples after the Opus round trip.
    pub samples: Vec<f32>,
}

/// Reads `utterances.bin` (phone-app WAL layout) and `utterances.tsv`, decodes
/// every frame with the crate's own [`FrameDecoder`] and cuts the sentences out.
pub fn utterances() -> Vec<Utterance> {
    let bin = std::fs::read(data_dir().join("utterances.bin")).expect("fixture utterances.bin");
    let tsv = std::fs::read_to_string(data_dir().join("utterances.tsv")).expect("fixture tsv");
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 4 <= bin.len() {
        let n = u32::from_le_bytes(bin[at..at + 4].try_into().unwrap()) as usize;
        frames.push(&bin[at + 4..at + 4 + n]);
        at += 4 + n;
    }
    let mut dec = FrameDecoder::new(Codec::PENDANT).unwrap();
    let mut pcm = Vec::new();
    for f in &frames {
        assert!(dec.decode(f, &mut pcm), "fixture frame decodes");
    }
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let first: usize = c[2].parse().unwrap();
            let n: usize = c[3].parse().unwrap();
            Utterance {
                voice: c[1].to_string(),
                text: c[4].to_string(),
                samples: pcm[first * 320..(first + n) * 320].to_vec(),
            }
        })
        .collect()
}

/// Deterministic white noise (xorshift), amplitude `amp`.
pub fn noise(samples: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..samples)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}
