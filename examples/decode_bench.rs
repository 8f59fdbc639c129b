//! Times decoding the demo backlog's Opus frames to 16 kHz samples, the way
//! import and VAD do (one `FrameDecoder` per file). Prints one line of JSON:
//! seconds of audio, wall seconds, x-real-time. Used by `bench/pipeline/run.sh`.
//!
//! Usage: `cargo run --release --example decode_bench -- [REPEATS]`

use std::time::Instant;

use omi_sync::audio::{Codec, FrameDecoder};
use omi_sync::device::{demo, wal};

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let files: Vec<Vec<&[u8]>> = demo::FILES
        .iter()
        .map(|f| wal::Frames::new(f.bytes).map(|(_, fr)| fr).collect())
        .collect();
    let mut out = Vec::with_capacity(16_000 * 60);
    let mut samples = 0usize;
    let start = Instant::now();
    for _ in 0..repeats {
        for frames in &files {
            let mut d = FrameDecoder::new(Codec::PENDANT).expect("decoder");
            out.clear();
            for f in frames {
                d.decode(f, &mut out);
            }
            samples += out.len();
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let audio = samples as f64 / 16_000.0;
    println!(
        "{{\"impl\":\"omi-sync\",\"audio_s\":{audio:.1},\"wall_s\":{wall:.4},\"x_real_time\":{:.0}}}",
        audio / wall
    );
}
