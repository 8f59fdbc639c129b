//! The captures section: what was captured, by source, format and clock,
//! with durations; undecodable frames; import problems with their file and
//! byte offset; duplicates; holes in what was pulled from a ring; time jumps
//! and times that cannot be right (in the future, before 2024); the same
//! audio held by two captures from two sources ([`same_audio`]). For a
//! folder of phone-app files, each file is checked as `import` would check
//! it, without storing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::card::EARLIEST_PLAUSIBLE_SECS;
use super::{Finding, Severity};
use crate::clock::UtcMillis;
use crate::device::fingerprint::{Fingerprinter, Shared, shared};
use crate::engine::import::{ImportReport, collect_files, inspect_file};
use crate::engine::remedy::Remedy;
use crate::engine::snapshot::Snapshot;
use crate::store::{CaptureRow, LedgerReader, RunRow, StoreError};
use crate::timeline::SegmentStatus;

/// At most this many pairs of captures sharing audio (the most shared) get
/// their own lines and entries in the JSON report's `shared_audio`; one more
/// line says how many others there are (a backlog made of one recording
/// copied many times would otherwise make thousands).
const SHARED_PAIRS_SHOWN: usize = 20;

/// A recording that starts this much before the previous one of the same
/// device ended is a time jump.
const JUMP_MS: i64 = 2_000;

/// What a folder of phone-app files holds.
pub struct PhoneFiles {
    /// Its lines.
    pub findings: Vec<Finding>,
    /// The files looked at (to be pseudonymised).
    pub files: Vec<PathBuf>,
    /// The devices their names give (to be pseudonymised).
    pub devices: Vec<String>,
}

/// Checks every phone-app file in `path` (a folder, walked as `import`
/// walks it, or one file).
pub fn phone_files(path: &Path, now: UtcMillis) -> Result<PhoneFiles, String> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let mut walk = ImportReport::default();
    let files = collect_files(&[path.to_path_buf()], &mut walk);
    let mut findings = Vec::new();
    for e in &walk.errors {
        findings.push(Finding::problem("captures.unreadable", e.clone()));
    }
    let mut devices = Vec::new();
    let mut by_hash: BTreeMap<String, Vec<&PathBuf>> = BTreeMap::new();
    let (mut total_s, mut good) = (0.0, 0usize);
    for f in &files {
        let shown = f.display().to_string();
        match inspect_file(f, now) {
            Ok(i) => {
                good += 1;
                total_s += i.duration_s;
                devices.push(i.meta.device.clone());
                by_hash.entry(i.sha256.clone()).or_default().push(f);
                for a in &i.anomalies {
                    let place = match a.offset {
                        Some(o) => format!("{shown}, byte {o}"),
                        None => shown.clone(),
                    };
                    let damaged = a.message.contains("truncated")
                        || a.message.contains("ends the audio")
                        || a.message.contains("is over");
                    let f = Finding::warning("captures.file", a.message.clone()).at(place);
                    findings.push(if damaged {
                        f.fix(Remedy::ReimportFile {
                            path: PathBuf::from(&shown),
                        })
                    } else {
                        f
                    });
                }
                if !i.meta.clock.is_wall() {
                    findings.push(
                        Finding::warning(
                            "captures.estimated_time",
                            format!(
                                "no usable time in the name: its {} of audio get an estimated time",
                                crate::term::duration(i.duration_s)
                            ),
                        )
                        .at(shown.clone())
                        .fix(Remedy::ReviewTimeline),
                    );
                }
                findings.extend(implausible(i.start, now, &shown));
            }
            Err(e) => findings.push(
                Finding::problem("captures.unusable", format!("would not be imported: {e}"))
                    .at(shown.clone())
                    .fix(Remedy::ReimportFile { path: f.clone() }),
            ),
        }
    }
    for same in by_hash.values().filter(|v| v.len() > 1) {
        findings.push(
            Finding::warning(
                "captures.duplicate",
                format!(
                    "{} files hold the same audio; it is imported once",
                    same.len()
                ),
            )
            .at(same
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")),
        );
    }
    findings.insert(
        0,
        Finding::ok(
            "captures.phone_files",
            format!(
                "{} phone-app file(s), {good} readable, {} of audio",
                files.len(),
                crate::term::duration(total_s)
            ),
        )
        .at(path.display().to_string()),
    );
    Ok(PhoneFiles {
        findings,
        files,
        devices,
    })
}

/// Warnings for a start time in the future or before 2024.
fn implausible(start: UtcMillis, now: UtcMillis, place: &str) -> Option<Finding> {
    let what = if start.0 > now.0 + 24 * 3600 * 1000 {
        "in the future"
    } else if start.as_secs() < EARLIEST_PLAUSIBLE_SECS {
        "before 2024"
    } else {
        return None;
    };
    Some(
        Finding::warning(
            "captures.implausible_time",
            format!(
                "its time ({}) is {what}: the clock was wrong",
                start.to_rfc3339()
            ),
        )
        .at(place.to_string())
        .fix(Remedy::ReviewTimeline),
    )
}

/// Where a capture came from, in a word.
fn source_kind(origin: &str) -> &str {
    match origin.split_once(':') {
        Some((k @ ("image" | "ble" | "sim"), _)) => k,
        _ if origin == "demo" => "demo",
        _ => "phone-app file",
    }
}

/// The captures a data directory's ledger holds, and what is odd about them.
pub fn ledger(
    reader: &LedgerReader,
    snap: &Snapshot,
    now: UtcMillis,
) -> Result<Vec<Finding>, StoreError> {
    let captures = reader.captures()?;
    let mut inventory: BTreeMap<(String, String, String), (usize, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    for c in &captures {
        let runs = reader.runs(c.id)?;
        let samples: u64 = runs.iter().map(|r| r.run.samples).sum();
        let e = inventory
            .entry((
                source_kind(&c.meta.origin).to_string(),
                c.meta.format.as_str().to_string(),
                c.meta.clock.as_str().to_string(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += samples;
        let bad: u64 = runs.iter().map(|r| r.bad_frames).sum();
        if bad > 0 {
            out.push(
                Finding::warning(
                    "captures.undecodable_frames",
                    format!("{bad} frame(s) could not be decoded (silence in their place)"),
                )
                .at(format!("capture {} ({})", c.id, c.meta.file_name)),
            );
        }
        if c.analyzed_at.is_none() {
            out.push(
                Finding::warning(
                    "captures.not_analyzed",
                    "speech has not been looked for in it yet (VAD)",
                )
                .at(format!("capture {} ({})", c.id, c.meta.file_name)),
            );
        }
    }
    let rate = f64::from(crate::audio::TARGET_RATE);
    let lines: Vec<String> = inventory
        .iter()
        .map(|((kind, format, clock), (n, samples))| {
            format!(
                "{kind} ({format}, clock {clock}): {n} capture(s), {}",
                crate::term::duration(*samples as f64 / rate)
            )
        })
        .collect();
    let total: u64 = inventory.values().map(|v| v.1).sum();
    out.insert(
        0,
        Finding::ok(
            "captures.inventory",
            format!(
                "{} capture(s), {} of audio",
                captures.len(),
                crate::term::duration(total as f64 / rate)
            ),
        )
        .detail(lines),
    );

    for a in reader.anomalies(None)? {
        let place = match (a.capture_id, a.offset) {
            (Some(id), Some(o)) => format!("{} (capture {id}), byte {o}", a.origin),
            (Some(id), None) => format!("{} (capture {id})", a.origin),
            (None, Some(o)) => format!("{}, byte {o}", a.origin),
            (None, None) => a.origin.clone(),
        };
        let rejected = a.capture_id.is_none();
        let f = Finding::new(
            if rejected {
                Severity::Problem
            } else {
                Severity::Warning
            },
            if rejected {
                "captures.unusable"
            } else {
                "captures.import"
            },
            a.message.clone(),
        )
        .at(place);
        let is_file = !a.origin.contains(':') && a.origin.ends_with(".bin");
        out.push(
            if is_file && (rejected || a.message.contains("truncated")) {
                f.fix(Remedy::ReimportFile {
                    path: PathBuf::from(&a.origin),
                })
            } else {
                f
            },
        );
    }

    // Holes in what was pulled from each ring: seqs between two spans of a stream.
    for ring in &snap.rings {
        for stream in reader.ring_streams(&ring.device)? {
            let mut spans = reader.ring_spans(stream)?;
            spans.sort_by_key(|s| s.seqs.start);
            for w in spans.windows(2) {
                if w[1].seqs.start > w[0].seqs.end {
                    let missing = w[1].seqs.start - w[0].seqs.end;
                    out.push(
                        Finding::warning(
                            "captures.recording_hole",
                            format!(
                                "records {}..{} ({missing}, about {} of audio) of the ring never reached the ledger",
                                w[0].seqs.end,
                                w[1].seqs.start,
                                crate::term::duration(missing as f64 / 10.0)
                            ),
                        )
                        .at(format!(
                            "device {}, stream {stream}, between captures {} and {}",
                            ring.device, w[0].capture_id, w[1].capture_id
                        )),
                    );
                }
            }
        }
    }

    // Time jumps and implausible times, per device, on the wall clock.
    let mut last_end: BTreeMap<&str, UtcMillis> = BTreeMap::new();
    for r in snap.recorded.iter().filter(|r| r.clock.is_wall()) {
        if let Some(prev) = last_end.get(r.device.as_str())
            && r.start.0 + JUMP_MS < prev.0
        {
            out.push(
                Finding::warning(
                    "captures.time_jump",
                    format!(
                        "a recording starts at {}, {} before the previous one ended: the clock jumped back",
                        r.start.to_rfc3339(),
                        crate::term::duration(prev.since(r.start) as f64 / 1000.0)
                    ),
                )
                .at(format!("device {}", r.device))
                .fix(Remedy::ReviewTimeline),
            );
        }
        let e = last_end.entry(r.device.as_str()).or_insert(r.end);
        if r.end.0 > e.0 {
            *e = r.end;
        }
        out.extend(implausible(r.start, now, &format!("device {}", r.device)));
    }
    Ok(out)
}

/// One capture of a pair holding the same audio, as the JSON report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedCapture {
    /// The capture's ledger id.
    pub capture: i64,
    /// Where it came from: `image`, `ble`, `sim`, `phone-app file`, `demo`.
    pub kind: String,
    /// Its file name.
    pub file: String,
    /// The device it is filed under.
    pub device: String,
    /// Where the shared audio starts in it, RFC 3339 UTC.
    pub start: String,
    /// Where it ends.
    pub end: String,
}

/// Two captures holding the same audio (`shared_audio` in the JSON report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedAudio {
    /// The two captures.
    pub captures: Vec<SharedCapture>,
    /// Seconds of audio they share.
    pub shared_s: f64,
    /// Whether both copies have speech on the timeline, so a push would
    /// send it twice.
    pub pushed_twice: bool,
}

/// What [`same_audio`] found.
pub struct SameAudio {
    /// Its lines.
    pub findings: Vec<Finding>,
    /// The [`SHARED_PAIRS_SHOWN`] pairs sharing the most, most first.
    pub pairs: Vec<SharedAudio>,
}

/// When frame `ordinal` of a capture with these runs starts (an ordinal
/// one past a run's last frame: when that run ends), if a run holds it.
fn frame_time(runs: &[RunRow], ordinal: u64) -> Option<UtcMillis> {
    let r = runs.iter().find(|r| {
        ordinal >= r.run.first_frame && ordinal <= r.run.first_frame + r.run.frame_count
    })?;
    let per_frame = r.run.samples / r.run.frame_count.max(1);
    Some(r.run.time_at((ordinal - r.run.first_frame) * per_frame))
}

/// Captures in the ledger that hold the same audio (the phone app's files
/// and the card's records of one recording), found by their frames
/// ([`crate::device::fingerprint`]); each file is read a chunk at a time.
/// Captures whose audio was freed are left out.
pub fn same_audio(reader: &LedgerReader) -> Result<SameAudio, StoreError> {
    let captures = reader.captures()?;
    let mut prints = Vec::with_capacity(captures.len());
    let mut looked = Vec::with_capacity(captures.len());
    let mut unread = 0usize;
    for c in &captures {
        let path = reader.data_dir().join(&c.stored_path);
        let mut fp = Fingerprinter::new();
        match std::fs::File::open(&path).and_then(|f| fp.read(c.meta.format, f)) {
            Ok(_) => {
                prints.push(fp.finish());
                looked.push(c);
            }
            Err(_) => unread += 1,
        }
    }
    let found = shared(&prints);
    let segments = reader.segments()?;
    let mut pairs = Vec::new();
    let mut findings = Vec::new();
    for s in &found {
        if pairs.len() == SHARED_PAIRS_SHOWN {
            break;
        }
        let (a, b) = (looked[s.a], looked[s.b]);
        let Some((pair, speech)) = describe_pair(reader, s, a, b, &segments)? else {
            continue;
        };
        findings.extend(pair_findings(&pair, speech, a, b));
        pairs.push(pair);
    }
    if found.len() > pairs.len() && pairs.len() == SHARED_PAIRS_SHOWN {
        findings.push(
            Finding::warning(
                "captures.same_audio",
                format!(
                    "and {} more pair(s) of captures hold the same audio (the {SHARED_PAIRS_SHOWN} \
                     sharing the most are listed)",
                    found.len() - pairs.len()
                ),
            )
            .fix(Remedy::ReviewTimeline),
        );
    }
    if pairs.is_empty() {
        findings.push(Finding::ok(
            "captures.same_audio",
            format!(
                "no two of {} capture(s) hold the same audio{}",
                looked.len(),
                if unread > 0 {
                    format!(" ({unread} whose audio is gone were not compared)")
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(SameAudio { findings, pairs })
}

/// Segments of `capture` with speech (or still waiting for text) inside
/// `[from, to)`: what the timeline would push from it there.
fn speech_in(
    segments: &[crate::store::SegmentRow],
    capture: i64,
    from: UtcMillis,
    to: UtcMillis,
) -> usize {
    segments
        .iter()
        .filter(|s| {
            s.capture_id == capture
                && matches!(s.status, SegmentStatus::Speech | SegmentStatus::Pending)
                && s.found.start < to
                && s.found.end > from
        })
        .count()
}

fn describe_pair(
    reader: &LedgerReader,
    s: &Shared,
    a: &CaptureRow,
    b: &CaptureRow,
    segments: &[crate::store::SegmentRow],
) -> Result<Option<(SharedAudio, [usize; 2])>, StoreError> {
    let side = |c: &CaptureRow,
                frames: (u64, u64)|
     -> Result<Option<(SharedCapture, UtcMillis, UtcMillis)>, StoreError> {
        let runs = reader.runs(c.id)?;
        let (Some(start), Some(end)) = (frame_time(&runs, frames.0), frame_time(&runs, frames.1))
        else {
            return Ok(None);
        };
        Ok(Some((
            SharedCapture {
                capture: c.id,
                kind: source_kind(&c.meta.origin).to_string(),
                file: c.meta.file_name.clone(),
                device: c.meta.device.clone(),
                start: start.to_rfc3339(),
                end: end.to_rfc3339(),
            },
            start,
            end,
        )))
    };
    let (Some((ca, a0, a1)), Some((cb, b0, b1))) = (side(a, s.a_frames)?, side(b, s.b_frames)?)
    else {
        return Ok(None);
    };
    let shared_s = (a1.since(a0).min(b1.since(b0)) as f64 / 1000.0).max(0.0);
    let speech = [
        speech_in(segments, a.id, a0, a1),
        speech_in(segments, b.id, b0, b1),
    ];
    Ok(Some((
        SharedAudio {
            captures: vec![ca, cb],
            shared_s,
            pushed_twice: speech[0] > 0 && speech[1] > 0,
        },
        speech,
    )))
}

fn capture_line(c: &SharedCapture) -> String {
    format!(
        "capture {} ({}, {}, device {}, {} to {})",
        c.capture, c.kind, c.file, c.device, c.start, c.end
    )
}

/// The lines for one pair (`speech`: each copy's segments with speech in
/// the shared stretch): a warning that the audio is held twice, and a
/// problem when both copies' speech is on the timeline (pushed twice).
fn pair_findings(
    pair: &SharedAudio,
    speech: [usize; 2],
    a: &CaptureRow,
    b: &CaptureRow,
) -> Vec<Finding> {
    let (x, y) = (&pair.captures[0], &pair.captures[1]);
    let place = format!("capture {}, capture {}", x.capture, y.capture);
    let amount = crate::term::duration(pair.shared_s);
    let keep = "keep one copy: start a new data directory and import only one source (the card's \
                records carry the pendant's own time for every record, the phone app's files \
                only one start time each), or, before pushing, merge or leave out the copy on \
                the timeline";
    let mut out = vec![
        Finding::warning(
            "captures.same_audio",
            format!(
                "{} and {} hold the same {amount} of audio: one recording imported from two sources{}",
                capture_line(x),
                capture_line(y),
                if pair.pushed_twice {
                    ""
                } else {
                    "; only one copy has speech on the timeline, so it is pushed once"
                }
            ),
        )
        .at(place.clone())
        .fix(Remedy::ReviewTimeline)
        .detail([keep.to_string()]),
    ];
    if pair.pushed_twice {
        let how = if a.meta.device == b.meta.device {
            format!(
                "inside the same conversations of device {}, every sentence twice",
                a.meta.device
            )
        } else {
            format!(
                "as separate conversations of devices {} and {} (different devices never share one)",
                a.meta.device, b.meta.device
            )
        };
        out.push(
            Finding::problem(
                "captures.pushed_twice",
                format!(
                    "the timeline holds this speech twice, {how}: a push would send it twice \
                     (nothing in the engine recognises two copies of one recording)"
                ),
            )
            .at(place)
            .fix(Remedy::ReviewTimeline)
            .detail([
                format!(
                    "in the shared stretch, capture {} has {} segment(s) with speech (or waiting \
                     for text), capture {} has {}",
                    a.id, speech[0], b.id, speech[1]
                ),
                keep.to_string(),
            ]),
        );
    }
    out
}
