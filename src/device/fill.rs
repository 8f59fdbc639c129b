//! How full a pendant's storage ring is, and when that needs attention: the
//! one rule (a warning from 80 %, a problem from 95 %, as the Omi app's
//! storage bar warns) that `diagnose`, `device status` and the TUI share.

use serde::{Deserialize, Serialize};

/// From this fill percentage on, the ring is worth pulling soon.
pub const WARN_PERCENT: f64 = 80.0;
/// From this fill percentage on, the ring is about to overwrite unread audio.
pub const PROBLEM_PERCENT: f64 = 95.0;

/// How a ring's fill level is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillLevel {
    /// Below [`WARN_PERCENT`].
    Ok,
    /// From [`WARN_PERCENT`] to below [`PROBLEM_PERCENT`]: pull soon.
    Warning,
    /// From [`PROBLEM_PERCENT`] on: the pendant will soon overwrite (or is
    /// overwriting) records nobody has pulled.
    Problem,
}

impl FillLevel {
    /// The level of a ring holding `used` unread records out of `capacity`
    /// (a ring with no capacity is judged empty).
    pub fn of(used: u64, capacity: u64) -> FillLevel {
        Self::of_percent(percent(used, capacity))
    }

    /// The level of a fill percentage (0-100).
    pub fn of_percent(percent: f64) -> FillLevel {
        if percent >= PROBLEM_PERCENT {
            FillLevel::Problem
        } else if percent >= WARN_PERCENT {
            FillLevel::Warning
        } else {
            FillLevel::Ok
        }
    }
}

/// `used` as a percentage of `capacity`, at most 100 (0 without capacity).
pub fn percent(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        (used as f64 * 100.0 / capacity as f64).min(100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_from_80_and_is_a_problem_from_95_percent() {
        assert_eq!(FillLevel::of(0, 1000), FillLevel::Ok);
        assert_eq!(FillLevel::of(799, 1000), FillLevel::Ok);
        assert_eq!(FillLevel::of(800, 1000), FillLevel::Warning);
        assert_eq!(FillLevel::of(949, 1000), FillLevel::Warning);
        assert_eq!(FillLevel::of(950, 1000), FillLevel::Problem);
        assert_eq!(FillLevel::of(2000, 1000), FillLevel::Problem);
        assert_eq!(FillLevel::of(5, 0), FillLevel::Ok);
        assert!(FillLevel::Problem > FillLevel::Warning && FillLevel::Warning > FillLevel::Ok);
    }

    #[test]
    fn percent_is_capped_and_safe_without_capacity() {
        assert_eq!(percent(50, 200), 25.0);
        assert_eq!(percent(300, 200), 100.0);
        assert_eq!(percent(1, 0), 0.0);
    }
}
