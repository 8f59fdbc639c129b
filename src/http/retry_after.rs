//! The one `Retry-After` parser: the cloud client, the push engine and the
//! speech engines all read the header through [`RetryAfter::parse`].

use std::time::Duration;

use crate::clock::UtcMillis;

/// The longest wait a header may ask for that is taken literally (about 31
/// years); anything longer is cut to it.
const MAX_DELAY_S: f64 = 1e9;

/// What a `Retry-After` header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Seconds to wait, counted from when the answer came.
    Delay(Duration),
    /// An HTTP-date: wait until then.
    At(UtcMillis),
}

impl RetryAfter {
    /// Parses a `Retry-After` value: delta-seconds (`120`, also a decimal
    /// such as `1.5`, which some servers send) or an HTTP-date (IMF-fixdate,
    /// and the obsolete RFC 850 and asctime forms). Negative, empty or
    /// unreadable values are `None`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let secs: f64 = value.parse().ok()?;
            if !secs.is_finite() || secs < 0.0 {
                return None;
            }
            return Some(RetryAfter::Delay(Duration::from_secs_f64(
                secs.min(MAX_DELAY_S),
            )));
        }
        let t = httpdate::parse_http_date(value).ok()?;
        let ms = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).ok()?,
            Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
        };
        Some(RetryAfter::At(UtcMillis(ms)))
    }

    /// The instant it names, counting a delay from `now`.
    pub fn resolve(&self, now: UtcMillis) -> UtcMillis {
        match *self {
            RetryAfter::Delay(d) => now.plus_ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            RetryAfter::At(t) => t,
        }
    }

    /// How long to wait from `now` (zero for a date in the past).
    pub fn wait_from(&self, now: UtcMillis) -> Duration {
        Duration::from_millis(self.resolve(now).since(now).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UtcMillis = UtcMillis(1_717_000_000_000);

    #[test]
    fn parses_every_form() {
        assert_eq!(
            RetryAfter::parse(" 120 "),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            RetryAfter::parse("1.5"),
            Some(RetryAfter::Delay(Duration::from_millis(1500)))
        );
        for date in [
            "Wed, 29 May 2024 16:26:40 GMT",
            "Wednesday, 29-May-24 16:26:40 GMT",
            "Wed May 29 16:26:40 2024",
        ] {
            assert_eq!(RetryAfter::parse(date), Some(RetryAfter::At(NOW)), "{date}");
        }
        assert_eq!(
            RetryAfter::parse("99999999999999999999999"),
            Some(RetryAfter::Delay(Duration::from_secs_f64(MAX_DELAY_S)))
        );
        for bad in ["", "-5", "1.2.3", ".", "soon", "Wed, 32 May 2024", "5 s"] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolves_and_waits_from_now() {
        let d = RetryAfter::Delay(Duration::from_secs(3));
        assert_eq!(d.resolve(NOW), NOW.plus_ms(3000));
        assert_eq!(d.wait_from(NOW), Duration::from_secs(3));
        let past = RetryAfter::At(UtcMillis(5));
        assert_eq!(past.resolve(NOW), UtcMillis(5));
        assert_eq!(past.wait_from(NOW), Duration::ZERO);
        let later = RetryAfter::At(NOW.plus_ms(2500));
        assert_eq!(later.wait_from(NOW), Duration::from_millis(2500));
    }
}
