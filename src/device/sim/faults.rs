//! The fault spec of a simulated pendant: how it misbehaves, parsed from a
//! comma-separated string (the grammar is in [`super`]'s docs).

use std::ops::Range;
use std::time::Duration;

use crate::device::ring::DEFAULT_ATT_MTU;

/// A parse error in a fault spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec item `{item}`: {reason}")]
pub struct FaultSpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The faults a simulated pendant shows (see the module docs for the grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// The largest ATT MTU the pendant agrees to.
    pub mtu: u16,
    /// Refuse the MTU exchange: links stay at the BLE default of 23.
    pub no_mtu_exchange: bool,
    /// Delay before each notification.
    pub delay: Duration,
    /// At most this many DATA bytes a second.
    pub rate: Option<u64>,
    /// Drop every N DATA bytes on a connection.
    pub drop_every: Option<u64>,
    /// Drop once when the total DATA bytes reach each of these.
    pub drop_at: Vec<u64>,
    /// Random drops, on average every N DATA bytes.
    pub drop_random: Option<u64>,
    /// Seed for random drops.
    pub seed: u64,
    /// Drop when the K-th ADVANCE arrives.
    pub drop_on_advance: Option<u32>,
    /// Stall once the total DATA bytes reach N.
    pub stall_after: Option<u64>,
    /// Answer the first K READs with status 9.
    pub busy_reads: u32,
    /// Clear and record M records before every connection but the first.
    pub cleared_between_sessions: Option<u64>,
    /// Serve these seqs as clock-not-set (bit 31).
    pub clock_not_set: Option<Range<u64>>,
    /// Serve these seqs with timestamp 0 (clock not set, newest firmware).
    pub clock_zero: Option<Range<u64>>,
    /// Refuse custody.
    pub no_custody: bool,
    /// LIVE_MARK after every N DATA notifications.
    pub live_mark_every: Option<u64>,
    /// DONE carries the CRC-32 of the transfer's DATA bytes.
    pub done_crc: bool,
    /// Flip the DATA byte at each of these total offsets on its way out.
    pub corrupt_at: Vec<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            mtu: 247,
            no_mtu_exchange: false,
            delay: Duration::ZERO,
            rate: None,
            drop_every: None,
            drop_at: Vec::new(),
            drop_random: None,
            seed: 1,
            drop_on_advance: None,
            stall_after: None,
            busy_reads: 0,
            cleared_between_sessions: None,
            clock_not_set: None,
            clock_zero: None,
            no_custody: false,
            live_mark_every: None,
            done_crc: false,
            corrupt_at: Vec::new(),
        }
    }
}

/// Every key the grammar knows, for the error message.
const KEYS: &str = "mtu, no-mtu-exchange, delay-ms, rate, drop-every, drop-at, drop-random, seed, \
                    drop-on-advance, stall-after, busy-first-read, cleared-between-sessions, \
                    clock-not-set, clock-zero, no-custody, live-mark-every, done-crc, corrupt-at";

impl Faults {
    /// Parses a fault spec (see the module docs).
    pub fn parse(spec: &str) -> Result<Faults, FaultSpecError> {
        let mut f = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let v = Value { item, value };
            match key {
                "mtu" => {
                    let n = v.num()?;
                    if !(DEFAULT_ATT_MTU as u64..=517).contains(&n) {
                        return Err(v.err("MTU must be 23..=517"));
                    }
                    f.mtu = n as u16;
                }
                "no-mtu-exchange" => f.no_mtu_exchange = v.flag()?,
                "delay-ms" => f.delay = Duration::from_millis(v.num()?),
                "rate" => f.rate = Some(v.positive()?),
                "drop-every" => f.drop_every = Some(v.positive()?),
                "drop-at" => f.drop_at.push(v.num()?),
                "drop-random" => f.drop_random = Some(v.positive()?),
                "seed" => f.seed = v.num()?,
                "drop-on-advance" => f.drop_on_advance = Some(v.positive_or(1)? as u32),
                "stall-after" => f.stall_after = Some(v.num()?),
                "busy-first-read" => f.busy_reads = v.num_or(1)? as u32,
                "cleared-between-sessions" => f.cleared_between_sessions = Some(v.num_or(100)?),
                "clock-not-set" => f.clock_not_set = Some(v.range()?),
                "clock-zero" => f.clock_zero = Some(v.range()?),
                "no-custody" => f.no_custody = v.flag()?,
                "live-mark-every" => f.live_mark_every = Some(v.positive()?),
                "done-crc" => f.done_crc = v.flag()?,
                "corrupt-at" => f.corrupt_at.push(v.num()?),
                _ => return Err(v.err(&format!("unknown fault (known: {KEYS})"))),
            }
        }
        Ok(f)
    }
}

/// One item's value, read the ways the grammar allows.
struct Value<'a> {
    item: &'a str,
    value: Option<&'a str>,
}

impl Value<'_> {
    fn err(&self, reason: &str) -> FaultSpecError {
        FaultSpecError {
            item: self.item.to_string(),
            reason: reason.to_string(),
        }
    }

    fn num(&self) -> Result<u64, FaultSpecError> {
        let v = self
            .value
            .ok_or_else(|| self.err("needs a value, e.g. `key=100`"))?;
        v.parse::<u64>()
            .map_err(|_| self.err(&format!("`{v}` is not a whole number")))
    }

    fn num_or(&self, default: u64) -> Result<u64, FaultSpecError> {
        match self.value {
            None => Ok(default),
            Some(_) => self.num(),
        }
    }

    fn positive(&self) -> Result<u64, FaultSpecError> {
        self.at_least_one(self.num()?)
    }

    fn positive_or(&self, default: u64) -> Result<u64, FaultSpecError> {
        self.at_least_one(self.num_or(default)?)
    }

    fn at_least_one(&self, n: u64) -> Result<u64, FaultSpecError> {
        if n == 0 {
            Err(self.err("must be at least 1"))
        } else {
            Ok(n)
        }
    }

    fn flag(&self) -> Result<bool, FaultSpecError> {
        match self.value {
            None => Ok(true),
            Some(_) => Err(self.err("takes no value")),
        }
    }

    fn range(&self) -> Result<Range<u64>, FaultSpecError> {
        let v = self
            .value
            .ok_or_else(|| self.err("needs a range, e.g. `100..200`"))?;
        let (a, b) = v
            .split_once("..")
            .ok_or_else(|| self.err("expected a range `A..B`"))?;
        let a: u64 = a
            .parse()
            .map_err(|_| self.err("range start is not a number"))?;
        let b: u64 = b
            .parse()
            .map_err(|_| self.err("range end is not a number"))?;
        if a > b {
            return Err(self.err("range start is after its end"));
        }
        Ok(a..b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let f = Faults::parse(
            "drop-every=4096,mtu=64,delay-ms=5,busy-first-read,cleared-between-sessions,clock-not-set=100..200",
        )
        .unwrap();
        assert_eq!(f.drop_every, Some(4096));
        assert_eq!(f.mtu, 64);
        assert_eq!(f.delay, Duration::from_millis(5));
        assert_eq!(f.busy_reads, 1);
        assert_eq!(f.cleared_between_sessions, Some(100));
        assert_eq!(f.clock_not_set, Some(100..200));
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let f = Faults::parse("drop-at=10, drop-at=20 ,no-custody").unwrap();
        assert_eq!(f.drop_at, vec![10, 20]);
        assert!(f.no_custody);
    }

    #[test]
    fn parses_the_newest_firmware_items() {
        let f = Faults::parse(
            "rate=5000,done-crc,corrupt-at=7,corrupt-at=900,no-mtu-exchange,clock-zero=3..9",
        )
        .unwrap();
        assert_eq!(f.rate, Some(5000));
        assert!(f.done_crc && f.no_mtu_exchange);
        assert_eq!(f.corrupt_at, vec![7, 900]);
        assert_eq!(f.clock_zero, Some(3..9));
    }

    #[test]
    fn spec_errors_are_clear() {
        let e = Faults::parse("mtu=9").unwrap_err();
        assert_eq!(
            e.to_string(),
            "fault spec item `mtu=9`: MTU must be 23..=517"
        );
        let e = Faults::parse("drop-every=x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "fault spec item `drop-every=x`: `x` is not a whole number"
        );
        let e = Faults::parse("warp-drive").unwrap_err().to_string();
        assert!(e.contains("unknown fault") && e.contains("rate"), "{e}");
        assert!(Faults::parse("clock-not-set=5").is_err());
        assert!(Faults::parse("clock-zero=9..5").is_err());
        assert!(Faults::parse("drop-every").is_err());
        assert!(Faults::parse("no-custody=1").is_err());
        assert!(Faults::parse("done-crc=yes").is_err());
        assert!(Faults::parse("drop-every=0").is_err());
        assert_eq!(
            Faults::parse("rate=0").unwrap_err().to_string(),
            "fault spec item `rate=0`: must be at least 1"
        );
    }
}
