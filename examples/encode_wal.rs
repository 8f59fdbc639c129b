//! Encodes a 16 kHz mono WAV as the pendant does and writes phone-app `.bin`
//! files, cut into chunks like the app (used to build `assets/demo/`).
//!
//! Usage: `cargo run --release --example encode_wal -- IN.wav START_UNIX_SECS OUT_DIR [CHUNK_SECS] [DEVICE]`

use std::path::PathBuf;

use omi_sync::audio::{Codec, PENDANT_FRAME, PendantEncoder};
use omi_sync::clock::UtcMillis;
use omi_sync::device::wal;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: encode_wal IN.wav START_UNIX_SECS OUT_DIR [CHUNK_SECS] [DEVICE]");
        std::process::exit(2);
    }
    let input = PathBuf::from(&args[0]);
    let start: i64 = args[1].parse()?;
    let out_dir = PathBuf::from(&args[2]);
    let chunk_secs: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(60);
    let device = args.get(4).cloned().unwrap_or_else(|| "omi".into());

    let mut reader = hound::WavReader::open(&input)?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!(
            "{} must be 16 kHz mono 16-bit, is {spec:?}",
            input.display()
        )
        .into());
    }
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| s.map(|v| v as f32 / 32768.0))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&out_dir)?;
    let mut encoder = PendantEncoder::new()?;
    let per_chunk = chunk_secs * 16_000;
    for (i, chunk) in samples.chunks(per_chunk).enumerate() {
        let frames = encoder.encode(chunk)?;
        let t = UtcMillis::from_secs(start + (i * chunk_secs) as i64);
        let path = wal::write_file(
            &out_dir,
            &device,
            Codec::PENDANT,
            t,
            frames.iter().map(|f| &f[..]),
        )?;
        let bytes = std::fs::metadata(&path)?.len();
        println!(
            "{}  {:.1} s  {} frames  {} bytes",
            path.display(),
            chunk.len() as f64 / 16_000.0,
            chunk.len().div_ceil(PENDANT_FRAME),
            bytes
        );
    }
    Ok(())
}
