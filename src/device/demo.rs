//! The built-in demo backlog: phone-app `.bin` files embedded in the binary.
//!
//! About four minutes of speech with known text (espeak-ng voices over a
//! quiet noise floor), encoded as the pendant does and cut into 60 s files as
//! the phone app does: one session with a 70 s pause (one conversation by the
//! 120 s rule), a second session 23 minutes later (a second conversation), and
//! 30 s of room noise with no speech. `scripts/demo-assets/make_demo.py` rebuilds it;
//! `assets/demo/transcript.tsv` holds what is said, and when.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct DemoFile {
    /// Its phone-app file name (which carries its start time).
    pub name: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! demo_files {
    ($($name:literal),* $(,)?) => {
        &[$(DemoFile { name: $name, bytes: include_bytes!(concat!("../../assets/demo/", $name)) }),*]
    };
}

/// The demo backlog, in time order.
pub const FILES: &[DemoFile] = demo_files![
    "audio_omi_opus_fs320_16000_1_fs320_1748854800.bin",
    "audio_omi_opus_fs320_16000_1_fs320_1748854860.bin",
    "audio_omi_opus_fs320_16000_1_fs320_1748854920.bin",
    "audio_omi_opus_fs320_16000_1_fs320_1748856360.bin",
    "audio_omi_opus_fs320_16000_1_fs320_1748859300.bin",
];

/// What the demo's speakers say: `(start unix s, end unix s, text)`.
pub fn transcript() -> Vec<(f64, f64, &'static str)> {
    include_str!("../../assets/demo/transcript.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.splitn(4, '\t');
            let start = f.next()?.parse().ok()?;
            let end = f.next()?.parse().ok()?;
            let _voice = f.next()?;
            Some((start, end, f.next()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UtcMillis;
    use crate::device::wal;

    #[test]
    fn every_demo_file_has_a_valid_name_and_body() {
        for f in FILES {
            let name = wal::parse_name(f.name, UtcMillis::now()).unwrap();
            assert_eq!(name.device, "omi");
            let mut frames = wal::Frames::new(f.bytes);
            assert!(frames.by_ref().count() > 1000, "{}", f.name);
            assert_eq!(frames.end(), None, "{}", f.name);
        }
    }

    #[test]
    fn transcript_has_both_sessions() {
        let t = transcript();
        assert_eq!(t.len(), 23);
        assert!(t.iter().all(|(s, e, text)| e > s && !text.is_empty()));
    }
}
