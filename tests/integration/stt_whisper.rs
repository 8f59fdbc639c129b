//! The real tiny.en model on real Opus-encoded speech (espeak-ng sentences
//! encoded at the pendant's settings, decoded by `audio::FrameDecoder`).
//!
//! Bounds: tiny.en greedy on clean synthetic speech measures about 4-6% WER
//! on passages (shared/models/README.md), and 5.9-6.4% here on the 60
//! sentences packed into windows: that test allows 15%, so a different CPU's
//! float rounding cannot flip it, while a broken pipeline (wrong sample rate,
//! wrong mapping, lost words) lands far above it (mapping by timestamp
//! heuristics instead of DTW gave 47%). Isolated 2 s clips are much harder
//! for tiny.en: ten clips over all five voices measured 25-26% (9.5% with
//! the en-us voice alone; the RP and +f2 voices are misheard most), so that
//! test allows 35% (wrong-rate or garbled audio would land far above).

use crate::stt_common;

use std::sync::Arc;

use omi_sync::stt::guards::GuardConfig;
use omi_sync::stt::packing::{self, Assembler, PackConfig, SegmentStatus, SpeechSegment};
use omi_sync::stt::pool::{PoolEvent, WorkerPool};
use omi_sync::stt::whisper::{WhisperModel, WhisperOptions};
use omi_sync::stt::{TranscribeOptions, Transcriber, wer};

const T0: i64 = 1_717_000_000_000;

/// The fixture sentences as a backlog: absolute times with gaps of 1.2-9 s.
fn backlog(u: &[stt_common::Utterance]) -> Vec<SpeechSegment> {
    let gaps = [1_500, 3_200, 9_000, 1_200, 2_400, 5_500, 1_800, 4_100];
    let mut t = T0;
    u.iter()
        .enumerate()
        .map(|(i, x)| {
            let len = (x.samples.len() / 16) as i64;
            let s = SpeechSegment {
                id: 100 + i as i64,
                group: 1,
                start_ms: t,
                end_ms: t + len,
            };
            t += len + gaps[i % gaps.len()];
            s
        })
        .collect()
}

#[test]
fn single_utterances_transcribe_within_wer_bound() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let model = WhisperModel::load(&model).unwrap();
    assert!(model.is_english_only());
    let mut engine = model
        .transcriber(WhisperOptions {
            threads: 2,
            ..Default::default()
        })
        .unwrap();
    let u = stt_common::utterances();
    let (mut edits, mut words) = (0, 0);
    // Every sixth sentence: all five voices in turn, ten calls.
    for x in u.iter().step_by(6) {
        // 300 ms of lead-in silence, as packing gives every window.
        let mut audio = vec![0.0f32; 4_800];
        audio.extend_from_slice(&x.samples);
        let t = engine
            .transcribe(&audio, &TranscribeOptions::default())
            .unwrap();
        let (e, n) = wer::word_edits(&x.text, &t.text());
        eprintln!("[{}] {:?} -> {:?}", x.voice, x.text, t.text());
        edits += e;
        words += n;
        // Word timings are inside the audio and ordered.
        let dur = audio.len() as f64 / 16000.0;
        for p in &t.pieces {
            assert!(!p.words.is_empty());
            assert!(p.no_speech_prob.is_some() && p.confidence.is_some());
            for w in &p.words {
                assert!(
                    0.0 <= w.start && w.start <= w.end && w.end <= dur + 0.05,
                    "{w:?}"
                );
            }
        }
    }
    let rate = edits as f64 / words as f64;
    eprintln!(
        "single-utterance WER {:.1}% ({edits}/{words})",
        rate * 100.0
    );
    assert!(rate <= 0.35, "WER {rate}");
}

#[test]
fn packed_backlog_maps_back_to_the_right_segments() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let model = WhisperModel::load(&model).unwrap();
    let u = Arc::new(stt_common::utterances());
    let segs = backlog(&u);
    let windows = packing::pack(&segs, &PackConfig::default());
    assert!(
        windows.len() <= 12,
        "60 short utterances pack into few windows, got {}",
        windows.len()
    );
    assert!(windows.iter().any(|w| w.parts.len() >= 5));

    // Two workers sharing one loaded model, one thread each.
    let by_id: std::collections::HashMap<i64, usize> =
        segs.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let u2 = u.clone();
    let mut pool = WorkerPool::start(
        2,
        move |_| {
            model.transcriber(WhisperOptions {
                threads: 1,
                ..Default::default()
            })
        },
        move |engine, w: &packing::Window| {
            let r = packing::transcribe_window(
                engine,
                w,
                &TranscribeOptions::default(),
                &GuardConfig::default(),
                |p| Ok(u2[by_id[&p.segment_id]].samples.clone()),
            )?;
            Ok((r.parts, r.dropped))
        },
    );
    for w in windows.iter().cloned() {
        pool.submit(w);
    }
    let mut asm = Assembler::new();
    let mut results = Vec::new();
    pool.finish(|ev| match ev {
        PoolEvent::Done(o) => {
            let (parts, dropped) = o.result.unwrap();
            for d in &dropped {
                eprintln!("dropped {d:?}");
            }
            results.extend(asm.add(parts));
        }
        PoolEvent::WorkerFailed { error, .. } => panic!("{error}"),
    });
    assert_eq!(results.len(), segs.len(), "every segment exactly once");
    assert!(asm.pending().is_empty());

    let (mut edits, mut words, mut bad) = (0, 0, Vec::new());
    for r in &results {
        let i = (r.segment_id - 100) as usize;
        let seg = &segs[i];
        assert_eq!(
            r.status,
            SegmentStatus::Speech,
            "segment {i} {:?}",
            u[i].text
        );
        for w in &r.words {
            assert!(
                seg.start_ms <= w.start_ms && w.end_ms <= seg.end_ms,
                "{w:?} outside {seg:?}"
            );
        }
        let (e, n) = wer::word_edits(&u[i].text, &r.text);
        if e * 3 > n {
            bad.push(format!("{:?} -> {:?}", u[i].text, r.text));
        }
        edits += e;
        words += n;
    }
    let rate = edits as f64 / words as f64;
    eprintln!(
        "packed WER {:.1}% ({edits}/{words}); poorly matched: {bad:#?}",
        rate * 100.0
    );
    assert!(rate <= 0.15, "WER {rate}");
    // Words landing in the neighbour's segment show up as runs of badly
    // matched segments (without DTW times every segment lost its first word
    // to its neighbour: WER 47%); allow a few misheard sentences (10%).
    assert!(bad.len() <= 6, "{bad:#?}");
}

#[test]
fn noise_and_silence_leave_nothing() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let model = WhisperModel::load(&model).unwrap();
    let mut engine = model
        .transcriber(WhisperOptions {
            threads: 2,
            ..Default::default()
        })
        .unwrap();
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("digital silence 10 s", vec![0.0; 160_000]),
        ("noise floor 30 s", stt_common::noise(480_000, 0.002, 1)),
        ("white noise 5 s", stt_common::noise(80_000, 0.05, 2)),
        ("loud white noise 20 s", stt_common::noise(320_000, 0.3, 3)),
        (
            "hum 8 s",
            (0..128_000)
                .map(|i| (i as f32 * 50.0 / 16_000.0 * std::f32::consts::TAU).sin() * 0.05)
                .collect(),
        ),
        ("brown noise 12 s", {
            let w = stt_common::noise(192_000, 0.02, 4);
            let mut acc = 0.0f32;
            w.iter()
                .map(|x| {
                    acc = (acc + x) * 0.995;
                    acc
                })
                .collect()
        }),
        (
            "clicks 10 s",
            (0..160_000usize)
                .map(|i| if i % 8_000 < 16 { 0.6 } else { 0.0 })
                .collect(),
        ),
        (
            "chord 8 s",
            (0..128_000)
                .map(|i| {
                    let t = i as f32 / 16_000.0;
                    [220.0f32, 277.2, 329.6]
                        .iter()
                        .map(|f| (t * f * std::f32::consts::TAU).sin() * 0.1)
                        .sum::<f32>()
                })
                .collect(),
        ),
    ];
    for (name, audio) in cases {
        let seg = SpeechSegment {
            id: 1,
            group: 0,
            start_ms: 0,
            end_ms: (audio.len() / 16) as i64,
        };
        let w = &packing::pack(&[seg], &PackConfig::default())[0];
        let t = engine
            .transcribe(&audio, &TranscribeOptions::default())
            .unwrap();
        let (parts, dropped) = packing::map_window(w, &t, Some(&audio), &GuardConfig::default());
        eprintln!(
            "{name}: raw {:?}, dropped {:?}",
            t.text(),
            dropped
                .iter()
                .map(|d| (&d.text, d.reason))
                .collect::<Vec<_>>()
        );
        let kept: Vec<_> = parts
            .iter()
            .flat_map(|p| &p.words)
            .map(|w| &w.text)
            .collect();
        assert!(kept.is_empty(), "{name}: {kept:?} survived");
    }
}

#[test]
fn a_cancel_stops_whisper_inside_a_window_and_an_unfired_token_changes_nothing() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let model = WhisperModel::load(&model).unwrap();
    let u = stt_common::utterances();
    // 30 s of speech: one full window, well over a second of work.
    let mut audio = Vec::new();
    for x in u.iter().cycle() {
        if audio.len() >= 16_000 * 29 {
            break;
        }
        audio.extend_from_slice(&x.samples);
        audio.extend(std::iter::repeat_n(0.0f32, 4_800));
    }
    let opts = WhisperOptions {
        threads: 1,
        ..Default::default()
    };
    // Not fired: the same words as without a token.
    let plain = model
        .transcriber(opts.clone())
        .unwrap()
        .transcribe(&audio, &TranscribeOptions::default())
        .unwrap()
        .text();
    let cancel = omi_sync::cancel::Cancel::new();
    let mut engine = model.transcriber(opts).unwrap().with_cancel(cancel.clone());
    assert_eq!(
        engine
            .transcribe(&audio, &TranscribeOptions::default())
            .unwrap()
            .text(),
        plain
    );
    let firing = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        firing.cancel();
    });
    let r = engine.transcribe(&audio, &TranscribeOptions::default());
    t.join().unwrap();
    assert_eq!(r.unwrap_err(), omi_sync::stt::SttError::Cancelled);
}
