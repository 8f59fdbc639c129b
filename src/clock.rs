//! Absolute time and how far it can be trusted.
//!
//! Every instant omi-sync shows or sends is a UTC millisecond count since the
//! Unix epoch ([`UtcMillis`]) paired with a [`ClockTrust`] that says where it
//! came from. The pendant's clock is not always set: audio recorded before the
//! phone set it carries seconds-since-boot, and its wall time can only be
//! estimated. That trust travels with the audio to the timeline (where it is a
//! conversation boundary) and to the cloud (where estimated times are held for
//! review).
//!
//! The engine reads the time and sleeps through one [`Clock`]: the system's
//! ([`SystemClock`]), or a [`ManualClock`] that tests move by hand, so a run
//! that waits an hour for the cloud's rate limit can be tested in
//! microseconds. Every sleep also wakes when its [`Cancel`] fires.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cancel::{Cancel, Cancelled};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UtcMillis(pub i64);

/// 2024-01-01T00:00:00Z: nothing an Omi pendant recorded is older (the cloud
/// refuses earlier backlog timestamps).
pub const EARLIEST_PLAUSIBLE: UtcMillis = UtcMillis(1_704_067_200_000);

impl UtcMillis {
    /// The current wall-clock time. Tests and reproducible runs can pin it with
    /// the `OMI_SYNC_NOW` environment variable (RFC 3339 or Unix seconds).
    pub fn now() -> Self {
        if let Some(pinned) = std::env::var("OMI_SYNC_NOW")
            .ok()
            .and_then(|v| Self::parse_flexible(&v))
        {
            return pinned;
        }
        let now = OffsetDateTime::now_utc();
        UtcMillis((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// From whole Unix seconds.
    pub fn from_secs(secs: i64) -> Self {
        UtcMillis(secs.saturating_mul(1000))
    }

    /// Whole Unix seconds (floor).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus `ms` milliseconds.
    pub fn plus_ms(self, ms: i64) -> Self {
        UtcMillis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: UtcMillis) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2024-05-29T16:26:40.000Z`.
    pub fn to_rfc3339(self) -> String {
        match OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000) {
            Ok(t) => {
                let base = t
                    .replace_nanosecond(0)
                    .ok()
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_default();
                // `base` ends in "Z"; insert the milliseconds before it.
                let stem = base.trim_end_matches('Z');
                format!("{stem}.{:03}Z", self.0.rem_euclid(1000))
            }
            Err(_) => format!("(out of range: {} ms)", self.0),
        }
    }

    /// Parses RFC 3339, or a plain integer of Unix seconds.
    pub fn parse_flexible(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<i64>() {
            return Some(Self::from_secs(secs));
        }
        let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        Some(UtcMillis((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl fmt::Display for UtcMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Serde for a [`UtcMillis`] as RFC 3339 text (`#[serde(with = "rfc3339")]`),
/// where a reader expects a date rather than a count of milliseconds.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::UtcMillis;

    /// Writes `2024-05-29T16:26:40.123Z`.
    pub fn serialize<S: Serializer>(t: &UtcMillis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    /// Reads RFC 3339 text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UtcMillis, D::Error> {
        let text = String::deserialize(d)?;
        UtcMillis::parse_flexible(&text)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text}")))
    }

    /// The same for an optional time (`null` when there is none).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::UtcMillis;

        /// Writes the time as RFC 3339 text, or `null`.
        pub fn serialize<S: Serializer>(t: &Option<UtcMillis>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Reads RFC 3339 text or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UtcMillis>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] UtcMillis);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
        }
    }
}

/// Where the engine reads the time and how it waits.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> UtcMillis;

    /// Waits until `until` (at once if it has passed), or until `cancel`
    /// fires (then `Err`).
    fn sleep_until(&self, until: UtcMillis, cancel: &Cancel) -> Result<(), Cancelled>;

    /// Waits for `duration`, or until `cancel` fires.
    fn sleep(&self, duration: Duration, cancel: &Cancel) -> Result<(), Cancelled> {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.sleep_until(self.now().plus_ms(ms), cancel)
    }
}

/// The system clock ([`UtcMillis::now`], which honours `OMI_SYNC_NOW`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UtcMillis {
        UtcMillis::now()
    }

    fn sleep_until(&self, until: UtcMillis, cancel: &Cancel) -> Result<(), Cancelled> {
        let ms = until.since(self.now());
        if ms <= 0 {
            return cancel.check();
        }
        cancel.sleep(Duration::from_millis(ms as u64))
    }
}

/// A clock that moves only when told to, or when something sleeps on it
/// (the sleep jumps the clock to its deadline and returns at once): for
/// tests and simulations of long waits.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<UtcMillis>,
    slept: Mutex<Vec<UtcMillis>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: UtcMillis) -> Self {
        ManualClock {
            now: Mutex::new(start),
            slept: Mutex::new(Vec::new()),
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.plus_ms(ms.max(0));
    }

    /// The deadline of every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<UtcMillis> {
        self.slept.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UtcMillis {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, until: UtcMillis, cancel: &Cancel) -> Result<(), Cancelled> {
        cancel.check()?;
        self.slept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(until);
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = (*now).max(until);
        Ok(())
    }
}

/// Where a timestamp came from, and so how far it can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockTrust {
    /// A real wall clock: the pendant's after the phone set it, or the phone's
    /// own (phone-app `.bin` names).
    Wall,
    /// The pendant's clock was not set (bit 31 of the record timestamp, or a
    /// value below 1 700 000 000): seconds since boot. Wall time is estimated.
    Uptime,
    /// No usable timestamp at all (zero). Wall time is estimated.
    Unknown,
}

impl ClockTrust {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockTrust::Wall => "wall",
            ClockTrust::Uptime => "uptime",
            ClockTrust::Unknown => "unknown",
        }
    }

    /// Parses the ledger name back.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "wall" => Some(ClockTrust::Wall),
            "uptime" => Some(ClockTrust::Uptime),
            "unknown" => Some(ClockTrust::Unknown),
            _ => None,
        }
    }

    /// Whether times with this trust are wall-clock facts or estimates.
    pub fn is_wall(self) -> bool {
        self == ClockTrust::Wall
    }

    /// The two-valued form users and scripts see: `wall` or `estimated`.
    pub fn shown(self) -> &'static str {
        if self.is_wall() { "wall" } else { "estimated" }
    }
}

impl fmt::Display for ClockTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_millis_and_z() {
        assert_eq!(
            UtcMillis(1_717_000_000_123).to_rfc3339(),
            "2024-05-29T16:26:40.123Z"
        );
        assert_eq!(UtcMillis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parse_round_trips() {
        let t = UtcMillis(1_717_000_000_123);
        assert_eq!(UtcMillis::parse_flexible(&t.to_rfc3339()), Some(t));
        assert_eq!(
            UtcMillis::parse_flexible("1717000000"),
            Some(UtcMillis(1_717_000_000_000))
        );
        assert_eq!(UtcMillis::parse_flexible("yesterday"), None);
    }

    #[test]
    fn earliest_plausible_is_2024() {
        assert_eq!(EARLIEST_PLAUSIBLE.to_rfc3339(), "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_manual_clock_jumps_to_each_deadline_and_a_cancel_stops_it() {
        let c = ManualClock::new(UtcMillis(1_000));
        let cancel = Cancel::new();
        c.sleep(Duration::from_secs(3600), &cancel).unwrap();
        assert_eq!(c.now(), UtcMillis(3_601_000));
        c.sleep_until(UtcMillis(5), &cancel).unwrap();
        assert_eq!(
            c.now(),
            UtcMillis(3_601_000),
            "a past deadline does not move it back"
        );
        c.advance(9);
        assert_eq!(c.now(), UtcMillis(3_601_009));
        cancel.cancel();
        assert_eq!(c.sleep(Duration::from_secs(1), &cancel), Err(Cancelled));
        assert_eq!(c.sleeps(), vec![UtcMillis(3_601_000), UtcMillis(5)]);
    }

    #[test]
    fn the_system_clock_sleep_wakes_on_cancel() {
        let cancel = Cancel::new();
        let w = cancel.clone();
        let t = std::thread::spawn(move || {
            SystemClock.sleep_until(UtcMillis::now().plus_ms(3_600_000), &w)
        });
        std::thread::sleep(Duration::from_millis(10));
        cancel.cancel();
        assert_eq!(t.join().unwrap(), Err(Cancelled));
    }

    #[test]
    fn rfc3339_serde_round_trips() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "rfc3339")]
            at: UtcMillis,
        }
        let t = T {
            at: UtcMillis(1_717_000_000_123),
        };
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, r#"{"at":"2024-05-29T16:26:40.123Z"}"#);
        assert_eq!(serde_json::from_str::<T>(&j).unwrap(), t);
        assert!(serde_json::from_str::<T>(r#"{"at":"noon"}"#).is_err());
    }

    #[test]
    fn trust_names_round_trip() {
        for t in [ClockTrust::Wall, ClockTrust::Uptime, ClockTrust::Unknown] {
            assert_eq!(ClockTrust::parse(t.as_str()), Some(t));
        }
        assert_eq!(ClockTrust::Uptime.shown(), "estimated");
    }
}
