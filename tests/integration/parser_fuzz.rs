//! Fuzzing the parsers that read untrusted bytes: phone-app names and bodies,
//! ring records, capture placement, the Opus/PCM decoders, card images
//! (mutated and cut), the pendant's control and notification messages, the
//! config file, and the cloud's answers (status, headers, body). None may
//! panic, loop or read out of bounds, whatever the input. (The BLE session
//! against a pendant saying random things is `device_fuzz`.)
//!
//! `OMI_FUZZ_CASES=N` sets the cases per property (default 2000; cargo-fuzz
//! needs a nightly toolchain, so this uses proptest).

use omi_sync::audio::{Codec, FrameDecoder, opus_packet_samples};
use omi_sync::clock::{ClockTrust, UtcMillis};
use omi_sync::device::capture::{self, CaptureFormat};
use omi_sync::device::record::Record;
use omi_sync::device::wal;
use proptest::prelude::*;

use omi_sync::cloud::answer;
use omi_sync::config::Config;
use omi_sync::device::ring::{self, Command, Notification, StorageStatus};
use omi_sync::device::usb::fixture::FixtureBuilder;
use omi_sync::device::usb::{ImageReader, Variant};
use omi_sync::http::{Answer, HeaderMap};

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

/// A small valid image of each layout, holding a few batches of records.
fn images() -> &'static [Vec<u8>] {
    static IMAGES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    IMAGES.get_or_init(|| {
        [Variant::A, Variant::B, Variant::C]
            .into_iter()
            .map(|v| {
                let records = crate::common::pack_records(
                    &crate::common::demo_frames(0)[..400],
                    1_750_000_000,
                );
                let mut b = FixtureBuilder::new(v, 24).unwrap();
                for commit in records
                    .chunks(36 * omi_sync::device::record::RECORD_BYTES)
                    .take(6)
                {
                    b.writer().append(commit).unwrap();
                }
                b.finish()
            })
            .collect()
    })
}

/// Config text built from the real sections and keys with wild values,
/// mixed with raw noise lines.
fn config_like() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[cloud]",
        "[stt]",
        "[vad]",
        "[auto]",
        "[storage]",
        "[timeline]",
        "[pendant]",
        "[tui]",
        "[x]",
        "[[cloud]]",
    ]);
    let key = prop::sample::select(vec![
        "api_url",
        "pushes_per_hour",
        "rate_window_secs",
        "request_timeout_secs",
        "workers",
        "threads",
        "engine",
        "model",
        "keep_days",
        "source",
        "gap_secs",
        "threshold",
        "notify",
        "pre_roll_ms",
        "bogus",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f}")),
        "\"[ -~]{0,20}\"",
        Just("true".to_string()),
        Just("[1, 2]".to_string()),
        Just("{ a = 1 }".to_string()),
        "[ -~]{0,12}",
    ];
    let line = prop_oneof![
        3 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => section.prop_map(str::to_string),
        1 => "[ -~]{0,30}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|l| l.join("\n"))
}

/// An answer from the cloud: any status, rate-limit and retry headers with
/// plausible and wild values, and a JSON-ish or raw body.
fn answer_like() -> impl Strategy<Value = Answer> {
    let header_value = prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        "[ -~]{0,24}",
    ];
    let headers = prop::collection::vec(
        (
            prop::sample::select(vec![
                "retry-after",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "content-type",
                "location",
            ]),
            header_value,
        ),
        0..5,
    );
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            prop::sample::select(vec![
                "id",
                "status",
                "detail",
                "message",
                "error",
                "created_at",
                "structured"
            ]),
            prop_oneof![
                "\"[ -~]{0,40}\"",
                any::<i64>().prop_map(|n| n.to_string()),
                Just("null".to_string()),
                Just("[{\"msg\": 1}]".to_string()),
                Just("{\"title\": [] }".to_string()),
            ],
        )
            .prop_map(|(k, v)| format!("{{\"{k}\": {v}}}").into_bytes()),
    ];
    (100u16..600, headers, body, any::<bool>()).prop_map(|(status, headers, body, truncated)| {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            if let Ok(v) = v.parse() {
                map.insert(k, v);
            }
        }
        Answer {
            status,
            headers: map,
            body,
            truncated,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn card_images_mutated_and_cut(
        which in 0usize..3,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..24),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = images()[which].clone();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(at) = cut {
            bytes.truncate(at.index(bytes.len()));
        }
        let len = bytes.len() as u64;
        if let Ok(reader) = ImageReader::open(std::io::Cursor::new(bytes)) {
            for a in reader.anomalies() {
                if let Some(sector) = a.sector {
                    prop_assert!(sector * 512 <= len + 512, "anomaly at sector {sector} of a {len}-byte image");
                }
            }
            if let Ok(recovery) = reader.read_all() {
                let _ = format!("{recovery:?}");
            }
        }
    }

    #[test]
    fn pendant_messages(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Notification::decode(&bytes);
        let _ = Command::decode(&bytes);
        let _ = StorageStatus::decode(&bytes);
        let _ = ring::decode_time(&bytes);
    }

    #[test]
    fn config_files(text in config_like()) {
        match Config::parse(&text) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn cloud_answers(a in answer_like()) {
        let _ = answer::classify_create(&a);
        let _ = answer::error_for(&a).to_string();
        let _ = answer::budget_of(&a);
        let _ = answer::success_json(&a);
        let message = answer::server_message(&a);
        prop_assert!(message.chars().count() <= 600, "{} chars", message.chars().count());
    }
}
