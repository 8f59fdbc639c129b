//! Times as the user lived them: UTC instants shown in the local time zone.
//!
//! The zone is read once when the TUI starts ([`Zone::system`]: `TZ` first,
//! as a zone name, a path or a POSIX rule, then `/etc/localtime`), and
//! applied per instant, so a backlog that crosses a daylight-saving change
//! shows each conversation at the offset it was recorded under. jiff does
//! this without the C library's `localtime_r`, which is unsound to call
//! while other threads run (the TUI always has some).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::clock::UtcMillis;

/// A time zone to show times in.
#[derive(Debug, Clone)]
pub struct Zone {
    tz: TimeZone,
}

impl Zone {
    /// The system's zone (`TZ`, else `/etc/localtime`, else UTC).
    pub fn system() -> Zone {
        Zone {
            tz: TimeZone::try_system().unwrap_or(TimeZone::UTC),
        }
    }

    /// UTC (tests, and where no zone can be found).
    pub fn utc() -> Zone {
        Zone { tz: TimeZone::UTC }
    }

    /// A POSIX `TZ` rule such as `CET-1CEST,M3.5.0,M10.5.0/3` (tests).
    pub fn posix(rule: &str) -> Option<Zone> {
        TimeZone::posix(rule).ok().map(|tz| Zone { tz })
    }

    /// The zone's name as a person reads it (`Europe/Berlin`, or the offset now).
    pub fn name(&self) -> String {
        self.tz.iana_name().map_or_else(
            || self.tz.to_offset(Timestamp::now()).to_string(),
            str::to_string,
        )
    }

    fn local(&self, t: UtcMillis) -> DateTime {
        let ts = Timestamp::from_millisecond(t.0).unwrap_or(Timestamp::UNIX_EPOCH);
        self.tz.to_offset(ts).to_datetime(ts)
    }

    /// `09:00:02`
    pub fn clock(&self, t: UtcMillis) -> String {
        let d = self.local(t);
        format!("{:02}:{:02}:{:02}", d.hour(), d.minute(), d.second())
    }

    /// `09:00`
    pub fn hm(&self, t: UtcMillis) -> String {
        let d = self.local(t);
        format!("{:02}:{:02}", d.hour(), d.minute())
    }

    /// `2025-06-02`
    pub fn date(&self, t: UtcMillis) -> String {
        let d = self.local(t);
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }

    /// `06-02 09:00:02`
    pub fn short(&self, t: UtcMillis) -> String {
        let d = self.local(t);
        format!(
            "{:02}-{:02} {:02}:{:02}:{:02}",
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )
    }

    /// `2025-06-02 09:00:02`
    pub fn full(&self, t: UtcMillis) -> String {
        format!("{} {}", self.date(t), self.clock(t))
    }

    /// The local time of day of `t`, in ms since local midnight (where the
    /// axis puts its day marks).
    pub fn ms_into_day(&self, t: UtcMillis) -> i64 {
        let d = self.local(t);
        ((i64::from(d.hour()) * 60 + i64::from(d.minute())) * 60 + i64::from(d.second())) * 1000
            + t.0.rem_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instant_gets_its_own_offset_across_a_dst_change() {
        let berlin = Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2025-03-30 00:30 UTC is 01:30 CET; 02:30 UTC is 04:30 CEST.
        let before = UtcMillis(1_743_294_600_000);
        let after = before.plus_ms(2 * 3_600_000);
        assert_eq!(berlin.full(before), "2025-03-30 01:30:00");
        assert_eq!(berlin.full(after), "2025-03-30 04:30:00");
        assert_eq!(Zone::utc().full(before), "2025-03-30 00:30:00");
        assert_eq!(berlin.ms_into_day(before), 5_400_000);
        assert_eq!(berlin.short(after), "03-30 04:30:00");
    }
}
