//! The captures section: what was captured, by source, format and clock,
//! with durations; undecodable frames; import problems with their file and
//! byte offset; duplicates; holes in what was pulled from a ring; time jumps
//! and times that cannot be right (in the future, before 2024). For a folder
//! of phone-app files, each file is checked as `import` would check it,
//! without storing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::card::EARLIEST_PLAUSIBLE_SECS;
use super::{Finding, Severity};
use crate::clock::UtcMillis;
use crate::engine::import::{ImportReport, collect_files, inspect_file};
use crate::engine::remedy::Remedy;
use crate::engine::snapshot::Snapshot;
use crate::store::{LedgerReader, StoreError};

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
