//! Writes a simulated pendant storage image (a variant C ring holding
//! `HOURS` of fixture records, about 36 000 an hour) for trying
//! `omi-sync pull --sim` and `omi-sync device status --sim` without a pendant.
//!
//! Usage: `cargo run --release --example ring_image -- OUT.img [HOURS] [speech]`
//! (default 0.5 h of fixture records; `speech`: the demo's conversation
//! over and over, three minutes apart, for VAD and transcription benchmarks)

use omi_sync::device::usb::fixture::{hours_of_audio, hours_of_speech};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: ring_image OUT.img [HOURS]");
        std::process::exit(2);
    };
    let hours: f64 = match args.next() {
        Some(h) => h
            .parse()
            .map_err(|_| format!("HOURS must be a number, not `{h}`"))?,
        None => 0.5,
    };
    let image = match args.next().as_deref() {
        Some("speech") => hours_of_speech(hours, 180)?,
        Some(other) => return Err(format!("unknown kind `{other}` (only `speech`)").into()),
        None => hours_of_audio(hours)?,
    };
    std::fs::write(&out, &image).map_err(|e| format!("cannot write {out}: {e}"))?;
    println!(
        "{out}: {:.1} MB, {hours} h of records",
        image.len() as f64 / 1e6
    );
    Ok(())
}
