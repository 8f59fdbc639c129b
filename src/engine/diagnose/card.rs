//! The pendant-or-card section: a card image read as the recovery procedure
//! reads it (every ring anomaly with its sector, the fill level, records
//! recorded with the clock not set, times that cannot be right), and a
//! pendant in reach through its status and INFO reads (fill, unread,
//! dropped, clock, custody), and each pendant's last report as a data
//! directory's ledger keeps it (the same checks, with its age and the
//! clock skew estimate). Nothing is written to any of them.

use std::path::Path;
use std::time::Duration;

use super::chart::{Lane, Span};
use super::{Finding, Severity};
use crate::cancel::Cancel;
use crate::clock::UtcMillis;
use crate::device::fill::{self, FillLevel};
use crate::device::link::Connector;
use crate::device::record::{RECORD_BYTES, RecordTime};
use crate::device::usb::reader::{AnomalyKind, ForensicReason};
use crate::device::usb::{ImageReader, Part};
use crate::engine::image::SectorAnomaly;
use crate::engine::pull::device_status;
use crate::engine::remedy::Remedy;
use crate::store::{DeviceReport, Skew};

/// Records per second of audio (5 frames of 20 ms... 10 records a second).
const RECORDS_PER_SECOND: f64 = 10.0;
/// 2024-01-01T00:00:00Z: wall times before it cannot be the pendant's.
pub const EARLIEST_PLAUSIBLE_SECS: i64 = 1_704_067_200;
/// Two records whose times are at most this far apart are one recording.
const SAME_RECORDING_SECS: i64 = 2;

/// What reading an image found.
pub struct ImageFindings {
    /// Its lines.
    pub findings: Vec<Finding>,
    /// Its recordings, per clock, for the chart.
    pub lanes: Vec<Lane>,
}

/// Grows recordings from record times, one record at a time.
struct Coverage {
    lane: Lane,
    open: Option<(i64, i64)>,
}

impl Coverage {
    fn new(device: &str, estimated: bool) -> Self {
        Coverage {
            lane: Lane::new(device, estimated),
            open: None,
        }
    }

    fn add(&mut self, secs: i64) {
        match &mut self.open {
            Some((_, end)) if secs >= *end - 1 && secs <= *end + SAME_RECORDING_SECS => {
                *end = (*end).max(secs + 1)
            }
            _ => {
                self.close();
                self.open = Some((secs, secs + 1));
            }
        }
    }

    fn close(&mut self) {
        if let Some((s, e)) = self.open.take() {
            self.lane.recorded.push(Span {
                start_ms: s * 1000,
                end_ms: e * 1000,
            });
        }
    }

    fn finish(mut self) -> Lane {
        self.close();
        self.lane.find_holes();
        self.lane
    }
}

/// Records whose times cannot be right: the first's seq and sector, and how many.
#[derive(Default)]
struct Implausible {
    first: Option<(u64, u64)>,
    count: u64,
}

impl Implausible {
    fn add(&mut self, seq: u64, sector: u64) {
        self.first.get_or_insert((seq, sector));
        self.count += 1;
    }
}

/// The check name and severity of an image anomaly.
fn classify(kind: &AnomalyKind, loses_audio: bool) -> (&'static str, Severity) {
    let check = match kind {
        AnomalyKind::BatchCrcMismatch { .. } => "card.torn_batch",
        AnomalyKind::MissingRecords { .. } => "card.sequence_gap",
        AnomalyKind::ClockNotSet { .. } => "card.clock_not_set",
        AnomalyKind::Salvaged { .. } => "card.past_last_metadata",
        AnomalyKind::Dropped { .. } => "card.dropped",
        AnomalyKind::TruncatedImage { .. } | AnomalyKind::UnalignedSize { .. } => "card.image_size",
        AnomalyKind::EmptyRecord { .. } | AnomalyKind::BrokenFrameChain { .. } => {
            "card.torn_record"
        }
        AnomalyKind::SlotMismatch { .. } | AnomalyKind::ImplausibleHeader { .. } => {
            "card.batch_header"
        }
        AnomalyKind::MetadataRejected { .. }
        | AnomalyKind::MetadataInconsistent { .. }
        | AnomalyKind::MetadataStale(_)
        | AnomalyKind::SlotCountSearched { .. } => "card.metadata",
    };
    let severity = if loses_audio || matches!(kind, AnomalyKind::Dropped { .. }) {
        Severity::Problem
    } else {
        Severity::Warning
    };
    (check, severity)
}

/// The fill-level line for `used` of `capacity` records.
fn fill_finding(used: u64, capacity: u64, place: &str) -> Finding {
    let pct = fill::percent(used, capacity);
    let what = format!(
        "the ring is {pct:.1} % full: {used} of {capacity} records unread (about {} of audio)",
        crate::term::duration(used as f64 / RECORDS_PER_SECOND)
    );
    let f = match FillLevel::of(used, capacity) {
        FillLevel::Ok => return Finding::ok("card.fill", what).at(place),
        FillLevel::Warning => Finding::warning("card.fill", what),
        FillLevel::Problem => Finding::problem(
            "card.fill",
            format!("{what}: the pendant is about to overwrite audio nobody has pulled"),
        ),
    };
    f.at(place).fix(Remedy::PullPendant)
}

/// Reads the image or block device at `path` (only reads).
pub fn image(path: &Path) -> Result<ImageFindings, String> {
    let shown = path.display().to_string();
    let mut reader = ImageReader::open_path(path).map_err(|e| e.to_string())?;
    let scan = reader.scan().clone();
    let meta = scan.metadata;
    let mut findings =
        vec![Finding::ok(
        "card.ring",
        format!(
            "variant {} ring of {} slots ({} records), metadata generation {}, seqs {}..{}{}",
            meta.variant.as_str(),
            scan.slots,
            scan.capacity(),
            meta.generation,
            meta.read_seq,
            meta.write_seq,
            meta.ring_id.map_or_else(
                || ": no custody (no ring id)".to_string(),
                |id| format!(", custody ring id {id:#018x}")
            )
        ),
    )
    .at(format!("{shown}, metadata sector {}", scan.metadata_sector))];
    findings.push(fill_finding(
        meta.write_seq.saturating_sub(meta.read_seq),
        scan.capacity(),
        &shown,
    ));

    let (mut wall, mut uptime) = (Coverage::new(&shown, false), Coverage::new(&shown, true));
    let (mut future, mut early, mut unknown) = (
        Implausible::default(),
        Implausible::default(),
        Implausible::default(),
    );
    let latest = crate::clock::UtcMillis::now().as_secs() + 24 * 3600;
    let mut records = [0u64; 2];
    for (i, part) in [Part::Main, Part::Salvage].into_iter().enumerate() {
        for rec in reader.records(part) {
            let rec = rec.map_err(|e| e.to_string())?;
            records[i] += 1;
            let raw = u32::from_be_bytes([rec.bytes[0], rec.bytes[1], rec.bytes[2], rec.bytes[3]]);
            match RecordTime::classify(raw) {
                RecordTime::Wall(t) => {
                    let t = i64::from(t);
                    if t > latest {
                        future.add(rec.seq, rec.sector);
                    } else if t < EARLIEST_PLAUSIBLE_SECS {
                        early.add(rec.seq, rec.sector);
                    }
                    wall.add(t);
                }
                RecordTime::Uptime(t) => uptime.add(i64::from(t)),
                RecordTime::Unknown => unknown.add(rec.seq, rec.sector),
            }
        }
    }
    let total = records[0] + records[1];
    findings.push(Finding::ok(
        "card.records",
        format!(
            "{} records read ({} of audio, {} MB), {} of them salvaged after the last metadata",
            total,
            crate::term::duration(total as f64 / RECORDS_PER_SECOND),
            total * RECORD_BYTES as u64 / 1_000_000,
            records[1]
        ),
    ));
    for (set, check, what) in [
        (
            &future,
            "card.future_time",
            "stamped more than a day in the future",
        ),
        (&early, "card.early_time", "stamped before 2024"),
        (&unknown, "card.no_time", "with no time at all (0)"),
    ] {
        if let Some((seq, sector)) = set.first {
            findings.push(
                Finding::warning(check, format!("{} records {what}", set.count))
                    .at(format!("seq {seq}, sector {sector}"))
                    .fix(Remedy::ReviewTimeline),
            );
        }
    }

    for a in reader.anomalies() {
        let located = SectorAnomaly::from(a);
        let (check, severity) = classify(&a.kind, located.loses_audio);
        let mut f = Finding::new(severity, check, located.message);
        if let Some(s) = located.sector {
            f = f.at(format!("sector {s}"));
        }
        if matches!(a.kind, AnomalyKind::ClockNotSet { .. }) {
            f = f.fix(Remedy::ReviewTimeline);
        }
        findings.push(f);
    }
    for b in reader.forensic() {
        let what = match b.reason {
            ForensicReason::ForeignRing => "another ring's batch (a foreign lap)",
            ForensicReason::OlderLap => "an older lap (or data from before a CLEAR)",
            ForensicReason::Torn => "a torn batch outside the backlog",
            ForensicReason::SlotMismatch => "a batch in the wrong slot",
            ForensicReason::Uncommitted => "records written but never committed",
            ForensicReason::BelowReadSeq => continue,
        };
        findings.push(
            Finding::warning(
                "card.outside_backlog",
                format!(
                    "slot {} holds {what}: seqs {}..{}, generation {}; not part of the backlog",
                    b.slot, b.seqs.start, b.seqs.end, b.header.generation
                ),
            )
            .at(format!("sector {}", b.sector)),
        );
    }
    Ok(ImageFindings {
        findings,
        lanes: vec![wall.finish(), uptime.finish()],
    })
}

/// A ring's state as its pendant reported it.
struct RingState<'a> {
    /// Where (the device, and for a kept report its age).
    place: &'a str,
    /// Unread records.
    unread: u64,
    /// The seqs they span, `[start, end)`.
    seqs: (u64, u64),
    /// The ring's capacity in records.
    capacity: u64,
    /// Records overwritten or lost.
    dropped: u64,
    /// Whether the clock is set (status characteristic).
    clock_valid: Option<bool>,
}

/// The fill, unread, dropped and clock lines of a ring's state; `clock_set`
/// is what to say of a set clock.
fn ring_findings(s: &RingState<'_>, clock_set: &str) -> Vec<Finding> {
    let place = s.place;
    let mut out = vec![fill_finding(s.unread, s.capacity, place)];
    out.push(
        Finding::ok(
            "card.unread",
            format!(
                "seqs {}..{} unread (about {} of audio)",
                s.seqs.0,
                s.seqs.1,
                crate::term::duration(s.unread as f64 / RECORDS_PER_SECOND)
            ),
        )
        .at(place),
    );
    out.push(if s.dropped > 0 {
        Finding::problem(
            "card.dropped",
            format!(
                "the pendant overwrote or lost {} records before they were pulled",
                s.dropped
            ),
        )
        .at(place)
        .fix(Remedy::PullPendant)
    } else {
        Finding::ok("card.dropped", "no records dropped").at(place)
    });
    out.push(match s.clock_valid {
        Some(true) => Finding::ok("card.clock", clock_set).at(place),
        Some(false) => Finding::warning(
            "card.clock",
            "the pendant's clock is not set: what it records now gets estimated times",
        )
        .at(place)
        .fix(Remedy::PullPendant),
        None => Finding::ok(
            "card.clock",
            "the firmware does not say whether its clock is set",
        )
        .at(place),
    });
    out
}

/// A skew beyond this (in either direction, for certain) is worth a look.
const SKEW_WARN_MS: i64 = 60_000;

/// The lines on each pendant's last report as the ledger keeps it, seen at
/// `now`: the checks a pendant in reach gets, as of that pull, with its
/// age, and the clock skew estimate.
pub fn last_reports(reports: &[DeviceReport], now: UtcMillis) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in reports {
        let place = format!(
            "{}, last pull {} ({})",
            r.device,
            r.age(now),
            r.read_at.to_rfc3339()
        );
        let unread = r.unread();
        out.extend(ring_findings(
            &RingState {
                place: &place,
                unread,
                seqs: (r.info.write_seq.saturating_sub(unread), r.info.write_seq),
                capacity: u64::from(r.info.capacity),
                dropped: r.info.dropped,
                clock_valid: r.clock_valid(),
            },
            if r.clock_written {
                "the pendant's clock was set (the pull wrote this machine's time)"
            } else {
                "the pendant's clock was set"
            },
        ));
        let skew = r.skew();
        let what = format!("the pendant's clock against this machine's: {skew}");
        out.push(match skew {
            Skew::Estimate { lower_ms, upper_ms }
                if lower_ms > SKEW_WARN_MS || upper_ms < -SKEW_WARN_MS =>
            {
                Finding::warning(
                    "card.clock_skew",
                    format!("{what}: the records before that pull carry times off by as much"),
                )
                .at(place.as_str())
                .fix(Remedy::ReviewTimeline)
            }
            _ => Finding::ok("card.clock_skew", what).at(place.as_str()),
        });
    }
    out
}

/// Reads the pendant behind `conn`: status and INFO only (no time write,
/// no ADVANCE, no CLEAR).
pub fn pendant(conn: &mut dyn Connector, cancel: &Cancel) -> Result<Vec<Finding>, String> {
    let s = device_status(conn, Duration::from_secs(6), cancel)
        .map_err(|e| format!("cannot read the status of {}: {e}", conn.device_id()))?;
    let mut out = ring_findings(
        &RingState {
            place: &s.device,
            unread: s.unread_records,
            seqs: (s.read_seq, s.write_seq),
            capacity: s.capacity_records,
            dropped: s.dropped_records,
            clock_valid: s.clock_valid,
        },
        "the pendant's clock is set (INFO does not give its time, so its skew is not measured)",
    );
    out.push(Finding::ok(
        "card.custody",
        match &s.ring_id {
            Some(id) => format!("custody firmware: ring id {id}; MTU {}", s.mtu),
            None => format!("no custody support (ADVANCE by seq only); MTU {}", s.mtu),
        },
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::sample_device_report;

    fn by_check<'a>(found: &'a [Finding], check: &str) -> &'a Finding {
        found
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("{check} in {found:?}"))
    }

    #[test]
    fn a_kept_report_gets_the_pendants_checks_with_its_age_and_skew() {
        let mut r = sample_device_report();
        let later = r.read_at.plus_ms(3 * 3_600_000);
        let found = last_reports(std::slice::from_ref(&r), later);
        let fill = by_check(&found, "card.fill");
        assert_eq!(fill.severity, Severity::Warning, "85 % full");
        assert!(
            fill.place
                .as_deref()
                .unwrap()
                .contains("omi, last pull 3 h ago"),
            "{fill:?}"
        );
        assert_eq!(by_check(&found, "card.dropped").severity, Severity::Problem);
        assert_eq!(by_check(&found, "card.clock").severity, Severity::Ok);
        let skew = by_check(&found, "card.clock_skew");
        assert_eq!(skew.severity, Severity::Ok);
        assert!(skew.what.contains("estimate"), "{skew:?}");

        // A clock an hour ahead, not set now, the ring left nearly full.
        r.newest.as_mut().unwrap().wall_start = Some(r.connected_at.plus_ms(3_600_000));
        r.status.as_mut().unwrap().clock_valid = false;
        r.unread_after = Some(990);
        let found = last_reports(&[r], later);
        assert_eq!(by_check(&found, "card.fill").severity, Severity::Problem);
        assert_eq!(by_check(&found, "card.clock").severity, Severity::Warning);
        let skew = by_check(&found, "card.clock_skew");
        assert_eq!(skew.severity, Severity::Warning);
        assert_eq!(skew.fix, Some(Remedy::ReviewTimeline));
    }
}
