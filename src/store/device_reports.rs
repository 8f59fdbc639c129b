//! Each device's last report: what a pendant said about itself the last
//! time a pull connected to it (INFO and the status characteristic), when,
//! and the newest record that pull brought, kept so the TUI and `diagnose`
//! can show a pendant's fill level, unread and dropped records, clock and
//! clock skew without the pendant in reach.
//!
//! The pendant's clock cannot be read (the time-sync characteristic is
//! write-only), so its skew is estimated from the newest record pulled
//! ([`DeviceReport::skew`]): a pendant writes records as it records, so the
//! end of its newest record, on its clock, is at most the pendant's time at
//! the connect. That gives a lower bound on the skew always, and an upper
//! bound only if it was recording up to the connect, which is assumed only
//! when the record ends close to the connect; otherwise no estimate is
//! given, with the reason.

use std::fmt;

use rusqlite::OptionalExtension;

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;
use crate::device::fill::{self, FillLevel};
use crate::device::ring::{CustodyCaps, CustodyInfo, Info, StorageStatus};

/// A record's newest frame can lag the pendant's clock by up to one batch of
/// 36 records (about 100 ms each) not yet committed, plus the 1 s resolution
/// of record timestamps.
pub const SKEW_SLACK_MS: i64 = 36 * 100 + 1000;
/// A newest record ending more than this before the connect (on the two
/// clocks) is taken as a pendant that had stopped recording, not as a clock
/// that far behind: no skew is estimated from it.
pub const RECORDING_AT_CONNECT_MS: i64 = 5 * 60 * 1000;

/// The newest record a pull brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewestRecord {
    /// Its seq.
    pub seq: u64,
    /// Its start on the pendant's wall clock (`None` when it was stamped
    /// with the clock not set).
    pub wall_start: Option<UtcMillis>,
    /// The audio it holds, ms (20 ms a frame).
    pub duration_ms: i64,
    /// When it was stored here (this machine's clock).
    pub received_at: UtcMillis,
}

/// What a pendant last said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// The device key.
    pub device: String,
    /// Where the pull came from (`ble:ID`, `sim:PATH`).
    pub origin: String,
    /// When INFO was read (this machine's clock).
    pub read_at: UtcMillis,
    /// When the connection that read it was made (this machine's clock).
    pub connected_at: UtcMillis,
    /// INFO: seqs, capacity, dropped, packet size, custody.
    pub info: Info,
    /// The status characteristic, when it could be read.
    pub status: Option<StorageStatus>,
    /// The pull wrote this machine's time to the pendant before reading
    /// the status (so its clock is set from then on).
    pub clock_written: bool,
    /// Whether the firmware's DONE carries a CRC-32 (the newest firmware
    /// line), if a READ finished.
    pub done_crc: Option<bool>,
    /// Records still unread on the pendant when the pull ended.
    pub unread_after: Option<u64>,
    /// The newest record the pull brought, if it brought any.
    pub newest: Option<NewestRecord>,
}

/// How far the pendant's clock was from this machine's at the connect
/// (pendant minus here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    /// At least `lower_ms` (always true), and at most `upper_ms` if the
    /// pendant was recording up to the connect.
    Estimate {
        /// The lower bound, ms.
        lower_ms: i64,
        /// The upper bound, ms.
        upper_ms: i64,
    },
    /// No estimate.
    Unknown(NoSkew),
}

/// Why no skew is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSkew {
    /// The pull brought no records.
    NoRecords,
    /// The newest record was stamped with the clock not set.
    NotWallClock,
    /// The pull stopped before the pendant's newest record.
    NotNewest,
    /// The newest record ends this long before the connect: the pendant had
    /// most likely stopped recording (its clock is at most this far behind).
    StoppedBefore {
        /// How long before, ms.
        ms: i64,
    },
}

impl fmt::Display for NoSkew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoSkew::NoRecords => write!(f, "no records came in the last pull"),
            NoSkew::NotWallClock => {
                write!(f, "its newest record was stamped with the clock not set")
            }
            NoSkew::NotNewest => write!(f, "the last pull stopped before its newest record"),
            NoSkew::StoppedBefore { ms } => write!(
                f,
                "its newest record ends {} before the connect, so it was not recording up to it \
                 (its clock is at most that far behind)",
                crate::term::duration(*ms as f64 / 1000.0)
            ),
        }
    }
}

impl NoSkew {
    /// A few words on why, for a narrow screen.
    pub fn brief(&self) -> &'static str {
        match self {
            NoSkew::NoRecords => "no new records",
            NoSkew::NotWallClock => "records without a set clock",
            NoSkew::NotNewest => "the pull stopped early",
            NoSkew::StoppedBefore { .. } => "not recording at the connect",
        }
    }
}

fn signed_s(ms: i64) -> String {
    format!(
        "{}{:.1} s",
        if ms < 0 { "-" } else { "+" },
        ms.abs() as f64 / 1000.0
    )
}

impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skew::Estimate { lower_ms, upper_ms } => write!(
                f,
                "about {} ± {:.1} s (an estimate from its newest record, assuming it was recording \
                 up to the connect; at least {} in any case)",
                signed_s((lower_ms + upper_ms) / 2),
                (upper_ms - lower_ms) as f64 / 2000.0,
                signed_s(*lower_ms)
            ),
            Skew::Unknown(why) => write!(f, "not estimated: {why}"),
        }
    }
}

impl Skew {
    /// The estimate in a few words, for a narrow screen: `~+1.3 s ± 2.3 s
    /// (estimate)`, or `none (why)`.
    pub fn brief(&self) -> String {
        match self {
            Skew::Estimate { lower_ms, upper_ms } => format!(
                "~{} ± {:.1} s (estimate)",
                signed_s((lower_ms + upper_ms) / 2),
                (upper_ms - lower_ms) as f64 / 2000.0
            ),
            Skew::Unknown(why) => format!("none ({})", why.brief()),
        }
    }
}

impl DeviceReport {
    /// Records unread on the pendant as it was left (after the pull's
    /// ADVANCE), or as INFO said.
    pub fn unread(&self) -> u64 {
        self.unread_after.unwrap_or_else(|| self.info.unread())
    }

    /// How full the ring was left, 0-100.
    pub fn fill_percent(&self) -> f64 {
        fill::percent(self.unread(), u64::from(self.info.capacity))
    }

    /// How that fill level is judged.
    pub fn fill_level(&self) -> FillLevel {
        FillLevel::of(self.unread(), u64::from(self.info.capacity))
    }

    /// Whether the pendant's clock was set, from the status characteristic.
    pub fn clock_valid(&self) -> Option<bool> {
        self.status.map(|s| s.clock_valid)
    }

    /// The clock skew estimate (see the module docs).
    pub fn skew(&self) -> Skew {
        let Some(newest) = self.newest else {
            return Skew::Unknown(NoSkew::NoRecords);
        };
        let Some(start) = newest.wall_start else {
            return Skew::Unknown(NoSkew::NotWallClock);
        };
        if newest.seq.saturating_add(1) != self.info.write_seq {
            return Skew::Unknown(NoSkew::NotNewest);
        }
        let lower_ms = start.plus_ms(newest.duration_ms).since(self.connected_at);
        if lower_ms < -RECORDING_AT_CONNECT_MS {
            return Skew::Unknown(NoSkew::StoppedBefore { ms: -lower_ms });
        }
        Skew::Estimate {
            lower_ms,
            upper_ms: lower_ms.saturating_add(SKEW_SLACK_MS),
        }
    }

    /// How long before `now` it was read, as a person says it: `3 h ago`.
    pub fn age(&self, now: UtcMillis) -> String {
        let s = now.since(self.read_at).max(0) / 1000;
        match s {
            0..60 => "just now".to_string(),
            60..3600 => format!("{} min ago", s / 60),
            3600..172_800 => format!("{} h ago", s / 3600),
            _ => format!("{} days ago", s / 86_400),
        }
    }
}

const COLUMNS: &str = "device, origin, read_at_ms, connected_at_ms, read_seq, write_seq, capacity, \
     dropped, packet_bytes, custody_caps, custody_version, ring_id, used_bytes, unread_packets, \
     free_bytes, clock_valid, clock_written, done_crc, unread_after, newest_seq, \
     newest_wall_start_ms, newest_duration_ms, newest_received_at_ms";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceReport> {
    let u64_at = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    let opt_u32 = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v as u32));
    let custody = match (
        r.get::<_, Option<i64>>(9)?,
        r.get::<_, Option<i64>>(10)?,
        r.get::<_, Option<i64>>(11)?,
    ) {
        (Some(caps), Some(version), Some(ring_id)) => Some(CustodyInfo {
            caps: CustodyCaps(caps as u8),
            version: version as u8,
            ring_id: ring_id as u64,
        }),
        _ => None,
    };
    let status = match (opt_u32(12)?, opt_u32(13)?, opt_u32(14)?, r.get(15)?) {
        (Some(used_bytes), Some(unread_packets), Some(free_bytes), Some(clock_valid)) => {
            Some(StorageStatus {
                used_bytes,
                unread_packets,
                free_bytes,
                clock_valid,
            })
        }
        _ => None,
    };
    let newest = match r.get::<_, Option<i64>>(19)? {
        Some(seq) => Some(NewestRecord {
            seq: seq as u64,
            wall_start: r.get::<_, Option<i64>>(20)?.map(UtcMillis),
            duration_ms: r.get::<_, Option<i64>>(21)?.unwrap_or(0),
            received_at: UtcMillis(r.get::<_, Option<i64>>(22)?.unwrap_or(0)),
        }),
        None => None,
    };
    Ok(DeviceReport {
        device: r.get(0)?,
        origin: r.get(1)?,
        read_at: UtcMillis(r.get(2)?),
        connected_at: UtcMillis(r.get(3)?),
        info: Info {
            read_seq: u64_at(4)?,
            write_seq: u64_at(5)?,
            capacity: r.get::<_, i64>(6)? as u32,
            dropped: u64_at(7)?,
            packet_bytes: r.get::<_, i64>(8)? as u16,
            custody,
        },
        status,
        clock_written: r.get(16)?,
        done_crc: r.get(17)?,
        unread_after: r.get::<_, Option<i64>>(18)?.map(|v| v as u64),
        newest,
    })
}

impl LedgerReader {
    /// Whether this ledger's schema has the reports (a copy of an older
    /// data directory read as it is may not).
    fn has_device_reports(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'device_reports'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .ctx("cannot read the schema")
    }

    /// Every device's last report, by device.
    pub fn device_reports(&self) -> Result<Vec<DeviceReport>, StoreError> {
        if !self.has_device_reports()? {
            return Ok(Vec::new());
        }
        let what = "cannot read the device reports";
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM device_reports ORDER BY device"
            ))
            .ctx(what)?;
        let rows = stmt
            .query_map([], from_row)
            .ctx(what)?
            .collect::<Result<Vec<_>, _>>()
            .ctx(what)?;
        Ok(rows)
    }

    /// `device`'s last report, if a pull ever read one.
    pub fn device_report(&self, device: &str) -> Result<Option<DeviceReport>, StoreError> {
        Ok(self
            .device_reports()?
            .into_iter()
            .find(|r| r.device == device))
    }
}

impl Ledger {
    /// Keeps `report` as its device's last (replacing the one before).
    pub fn set_device_report(&self, report: &DeviceReport) -> Result<(), StoreError> {
        let i = &report.info;
        let c = i.custody;
        let s = report.status;
        let n = report.newest;
        self.conn
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO device_reports ({COLUMNS}) VALUES
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                      ?18, ?19, ?20, ?21, ?22, ?23)"
                ),
                rusqlite::params![
                    report.device,
                    report.origin,
                    report.read_at.0,
                    report.connected_at.0,
                    i.read_seq as i64,
                    i.write_seq as i64,
                    i64::from(i.capacity),
                    i.dropped as i64,
                    i64::from(i.packet_bytes),
                    c.map(|c| i64::from(c.caps.0)),
                    c.map(|c| i64::from(c.version)),
                    c.map(|c| c.ring_id as i64),
                    s.map(|s| i64::from(s.used_bytes)),
                    s.map(|s| i64::from(s.unread_packets)),
                    s.map(|s| i64::from(s.free_bytes)),
                    s.map(|s| s.clock_valid),
                    report.clock_written,
                    report.done_crc,
                    report.unread_after.map(|v| v as i64),
                    n.map(|n| n.seq as i64),
                    n.and_then(|n| n.wall_start).map(|t| t.0),
                    n.map(|n| n.duration_ms),
                    n.map(|n| n.received_at.0),
                ],
            )
            .ctx("cannot keep the device report")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::sample_device_report as sample;

    #[test]
    fn a_report_reads_back_as_kept_and_the_next_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        assert!(l.device_reports().unwrap().is_empty());
        let mut r = sample();
        l.set_device_report(&r).unwrap();
        let mut other = sample();
        other.device = "b".into();
        other.status = None;
        other.newest = None;
        other.info.custody = None;
        l.set_device_report(&other).unwrap();
        assert_eq!(l.device_reports().unwrap(), vec![other.clone(), r.clone()]);
        r.unread_after = Some(0);
        r.newest.as_mut().unwrap().wall_start = None;
        l.set_device_report(&r).unwrap();
        let reader = LedgerReader::open(dir.path()).unwrap();
        assert_eq!(reader.device_report("omi").unwrap(), Some(r));
        assert_eq!(reader.device_report("none").unwrap(), None);
    }

    #[test]
    fn fill_is_judged_on_what_was_left_unread() {
        let mut r = sample();
        assert_eq!(r.fill_level(), FillLevel::Warning);
        assert_eq!(r.fill_percent(), 85.0);
        r.unread_after = Some(960);
        assert_eq!(r.fill_level(), FillLevel::Problem);
        r.unread_after = Some(0);
        assert_eq!(r.fill_level(), FillLevel::Ok);
    }

    #[test]
    fn skew_is_estimated_only_from_the_newest_wall_clock_record_near_the_connect() {
        let mut r = sample();
        // The newest record ends 0.5 s before the connect.
        assert_eq!(
            r.skew(),
            Skew::Estimate {
                lower_ms: -500,
                upper_ms: -500 + SKEW_SLACK_MS
            }
        );
        let shown = r.skew().to_string();
        assert!(
            shown.contains("estimate") && shown.contains("at least -0.5 s"),
            "{shown}"
        );
        assert_eq!(r.skew().brief(), "~+1.8 s ± 2.3 s (estimate)");
        // A pendant clock an hour ahead.
        r.newest.as_mut().unwrap().wall_start = Some(r.connected_at.plus_ms(3_600_000));
        assert!(matches!(r.skew(), Skew::Estimate { lower_ms, .. } if lower_ms == 3_600_100));
        // Ended ten minutes before the connect: stopped recording.
        r.newest.as_mut().unwrap().wall_start = Some(r.connected_at.plus_ms(-600_100));
        assert_eq!(
            r.skew(),
            Skew::Unknown(NoSkew::StoppedBefore { ms: 600_000 })
        );
        assert!(r.skew().to_string().contains("10m00s before the connect"));
        r.info.write_seq = 990;
        assert_eq!(r.skew(), Skew::Unknown(NoSkew::NotNewest));
        r.newest.as_mut().unwrap().wall_start = None;
        assert_eq!(r.skew(), Skew::Unknown(NoSkew::NotWallClock));
        r.newest = None;
        assert_eq!(r.skew(), Skew::Unknown(NoSkew::NoRecords));
        assert_eq!(r.skew().brief(), "none (no new records)");
    }

    #[test]
    fn ages_read_naturally() {
        let r = sample();
        assert_eq!(r.age(r.read_at.plus_ms(30_000)), "just now");
        assert_eq!(r.age(r.read_at.plus_ms(5 * 60_000)), "5 min ago");
        assert_eq!(r.age(r.read_at.plus_ms(3 * 3_600_000 + 5)), "3 h ago");
        assert_eq!(r.age(r.read_at.plus_ms(3 * 86_400_000)), "3 days ago");
        assert_eq!(r.age(r.read_at.plus_ms(-5000)), "just now");
    }
}
