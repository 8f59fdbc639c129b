//! Fuzzing the parsers that read untrusted bytes: phone-app names and bodies,
//! ring records, capture placement, and the Opus/PCM decoders on garbage.
//! None may panic, loop or read out of bounds, whatever the input.
//!
//! `OMI_FUZZ_CASES=N` sets the cases per property (default 2000; cargo-fuzz
//! needs a nightly toolchain, so this uses proptest).

use omi_sync::audio::{Codec, FrameDecoder, opus_packet_samples};
use omi_sync::clock::{ClockTrust, UtcMillis};
use omi_sync::device::capture::{self, CaptureFormat};
use omi_sync::device::record::Record;
use omi_sync::device::wal;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("OMI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Bytes biased towards the structures being parsed: small little-endian
/// lengths followed by that many bytes, mixed with raw noise.
fn wal_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            (0u32..200, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(len, body)| {
                let mut v = len.to_le_bytes().to_vec();
                v.extend(body);
                v
            }),
            prop::collection::vec(any::<u8>(), 0..16),
            Just(u32::MAX.to_le_bytes().to_vec()),
            Just(0u32.to_le_bytes().to_vec()),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn wal_bodies(body in wal_like()) {
        let mut frames = wal::Frames::new(&body);
        let mut total = 0usize;
        for (off, f) in frames.by_ref() {
            prop_assert!(off as usize + f.len() <= body.len());
            total += 4 + f.len();
        }
        match frames.end() {
            None => prop_assert_eq!(total, body.len()),
            Some(end) => prop_assert_eq!(end.offset() as usize, total),
        }
        let layout = capture::wal_layout(&body, Codec::PENDANT, UtcMillis(0), ClockTrust::Wall);
        prop_assert!(layout.runs.len() <= 1);
    }

    #[test]
    fn wal_names(name in "(audio_)?[a-z0-9_]{0,30}_(opus|opus_fs320|pcm16|pcm8|aac|lc3_fs1030)?_?[0-9]{0,6}_?[0-9]?_?(fs[0-9]{0,4})?_?[0-9]{0,14}(\\.bin)?") {
        let _ = wal::parse_name(&name, UtcMillis::from_secs(1_800_000_000));
    }

    #[test]
    fn ring_records_and_placement(bytes in prop::collection::vec(any::<u8>(), 0..4000), stamps in prop::collection::vec(any::<u32>(), 0..9)) {
        // Overwrite record timestamps with chosen values so placement sees
        // plausible, uptime and wild clocks.
        let mut bytes = bytes;
        for (k, t) in stamps.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(k * 444..k * 444 + 4) {
                slot.copy_from_slice(&t.to_be_bytes());
            }
        }
        for chunk in bytes.chunks(444) {
            if let Some(r) = Record::parse(chunk) {
                for f in r.frame_bytes() {
                    prop_assert!(!f.is_empty());
                }
            }
        }
        let layout = capture::ring_layout(&bytes, Codec::PENDANT, UtcMillis::from_secs(1_750_000_000));
        let frames = capture::frames(CaptureFormat::Ring, &bytes).count() as u64;
        prop_assert_eq!(layout.frames(), frames);
    }

    #[test]
    fn decoders_on_garbage(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        for codec in [Codec::PENDANT, Codec::Opus { frame_samples: 160 }, Codec::Pcm16 { sample_rate: 8000 }, Codec::Pcm8 { sample_rate: 8000 }] {
            let mut d = FrameDecoder::new(codec).unwrap();
            let mut out = Vec::new();
            for f in &frames {
                d.decode(f, &mut out);
            }
            d.finish(&mut out);
            prop_assert!(out.iter().all(|x| x.is_finite()));
            if let Codec::Opus { frame_samples } = codec {
                prop_assert_eq!(out.len(), frames.len() * frame_samples as usize);
            }
        }
        for f in &frames {
            let _ = opus_packet_samples(f);
        }
    }
}
