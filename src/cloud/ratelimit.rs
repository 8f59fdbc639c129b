//! How fast we may create conversations: a client-side limiter per API key.
//!
//! The cloud allows 25 conversation creations per hour per developer key
//! (`omi-facts.md` §5) and answers 429 beyond that. Rather than run into it,
//! omi-sync keeps its own sliding window over the times of its past creates,
//! plus a "blocked until" from the last 429, and waits until
//! [`KeyWindow::next_allowed_at`] before sending.
//!
//! Everything is pure logic over an explicit `now` on serializable state: the
//! outbox persists it in the ledger (as JSON or as rows) so the limit holds
//! across runs, crashes and cron invocations. Keys are named by their
//! [`KeyFingerprint`], never by the key.
//!
//! What to [`record`](KeyWindow::record): every create request that may have
//! reached the server (anything but a failure to connect), since the server
//! may count it even when the answer was lost.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::UtcMillis;
use crate::cloud::credentials::KeyFingerprint;

/// The cloud's default: 25 creations per hour per key.
pub const DEFAULT_MAX_PER_WINDOW: u32 = 25;
/// One hour.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// At most this many timestamps are kept per key, whatever the window.
const MAX_KEPT: usize = 10_000;

/// A limit: at most `max_per_window` creations in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Creations allowed in one window (0 blocks everything).
    pub max_per_window: u32,
    /// The window's length.
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max_per_window: DEFAULT_MAX_PER_WINDOW,
            window: DEFAULT_WINDOW,
        }
    }
}

impl RateLimit {
    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }
}

/// One key's history: recent creations and a server-imposed block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWindow {
    /// Times of recent creations, oldest first.
    #[serde(default)]
    pub pushes: Vec<UtcMillis>,
    /// No creation before this (from a 429's `Retry-After`).
    #[serde(default)]
    pub blocked_until: Option<UtcMillis>,
}

impl KeyWindow {
    /// An empty history.
    pub fn new() -> Self {
        KeyWindow::default()
    }

    /// Creations that still count at `now` (including any stamped later than
    /// `now`, should the clock have gone back).
    fn in_window<'a>(
        &'a self,
        limit: &RateLimit,
        now: UtcMillis,
    ) -> impl Iterator<Item = UtcMillis> + 'a {
        let horizon = now.plus_ms(-limit.window_ms());
        self.pushes.iter().copied().filter(move |t| *t > horizon)
    }

    /// How many more creations the window allows at `now` (ignoring a block).
    pub fn remaining(&self, limit: &RateLimit, now: UtcMillis) -> u32 {
        let used = self.in_window(limit, now).count();
        (limit.max_per_window as usize).saturating_sub(used) as u32
    }

    /// The earliest time (`>= now`) a creation is allowed: `now` if it is
    /// allowed now, else when the oldest counted creation leaves the window,
    /// or when a server block ends, whichever is later. With a limit of 0,
    /// `UtcMillis(i64::MAX)`.
    pub fn next_allowed_at(&self, limit: &RateLimit, now: UtcMillis) -> UtcMillis {
        let mut at = now;
        if let Some(b) = self.blocked_until {
            at = at.max(b);
        }
        if limit.max_per_window == 0 {
            return UtcMillis(i64::MAX);
        }
        let mut counted: Vec<UtcMillis> = self.in_window(limit, now).collect();
        counted.sort_unstable();
        let max = limit.max_per_window as usize;
        if counted.len() >= max {
            // After this one expires, max - 1 remain.
            let expiring = counted[counted.len() - max];
            at = at.max(expiring.plus_ms(limit.window_ms()));
        }
        at
    }

    /// Whether a creation is allowed at `now`.
    pub fn allowed_now(&self, limit: &RateLimit, now: UtcMillis) -> bool {
        self.next_allowed_at(limit, now) <= now
    }

    /// Records a creation request sent at `now`, and forgets what no longer
    /// counts.
    pub fn record(&mut self, limit: &RateLimit, now: UtcMillis) {
        let at = self.pushes.partition_point(|t| *t <= now);
        self.pushes.insert(at, now);
        self.prune(limit, now);
    }

    /// Moves a creation recorded at `sent` to `answered`, when its answer
    /// came: the server counted it somewhere in between, so the later time
    /// is the safe one to count the window from.
    pub fn restamp(&mut self, sent: UtcMillis, answered: UtcMillis) {
        if let Some(i) = self.pushes.iter().position(|t| *t == sent) {
            self.pushes.remove(i);
            let at = self.pushes.partition_point(|t| *t <= answered);
            self.pushes.insert(at, answered.max(sent));
        }
    }

    /// Records a server block (a 429): no creation before `until`. An earlier
    /// block never shortens a later one.
    pub fn block_until(&mut self, until: UtcMillis) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Drops creations that left the window and a block that has ended.
    pub fn prune(&mut self, limit: &RateLimit, now: UtcMillis) {
        let horizon = now.plus_ms(-limit.window_ms());
        self.pushes.retain(|t| *t > horizon);
        if self.pushes.len() > MAX_KEPT {
            let cut = self.pushes.len() - MAX_KEPT;
            self.pushes.drain(..cut);
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }
}

/// Windows for every key used, by fingerprint. Serializable as one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Limiter {
    keys: BTreeMap<KeyFingerprint, KeyWindow>,
}

impl Limiter {
    /// No history.
    pub fn new() -> Self {
        Limiter::default()
    }

    /// One key's window (empty if unknown).
    pub fn window(&self, key: &KeyFingerprint) -> KeyWindow {
        self.keys.get(key).cloned().unwrap_or_default()
    }

    /// One key's window, to change.
    pub fn window_mut(&mut self, key: &KeyFingerprint) -> &mut KeyWindow {
        self.keys.entry(key.clone()).or_default()
    }

    /// See [`KeyWindow::next_allowed_at`].
    pub fn next_allowed_at(
        &self,
        key: &KeyFingerprint,
        limit: &RateLimit,
        now: UtcMillis,
    ) -> UtcMillis {
        self.keys
            .get(key)
            .map_or(KeyWindow::default().next_allowed_at(limit, now), |w| {
                w.next_allowed_at(limit, now)
            })
    }

    /// See [`KeyWindow::record`].
    pub fn record(&mut self, key: &KeyFingerprint, limit: &RateLimit, now: UtcMillis) {
        self.window_mut(key).record(limit, now);
    }

    /// See [`KeyWindow::restamp`].
    pub fn restamp(&mut self, key: &KeyFingerprint, sent: UtcMillis, answered: UtcMillis) {
        self.window_mut(key).restamp(sent, answered);
    }

    /// See [`KeyWindow::block_until`].
    pub fn block_until(&mut self, key: &KeyFingerprint, until: UtcMillis) {
        self.window_mut(key).block_until(until);
    }

    /// Prunes every key and forgets keys with nothing left.
    pub fn prune(&mut self, limit: &RateLimit, now: UtcMillis) {
        for w in self.keys.values_mut() {
            w.prune(limit, now);
        }
        self.keys
            .retain(|_, w| !w.pushes.is_empty() || w.blocked_until.is_some());
    }

    /// The fingerprints with history.
    pub fn keys(&self) -> impl Iterator<Item = &KeyFingerprint> {
        self.keys.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UtcMillis = UtcMillis(1_717_000_000_000);
    const MIN: i64 = 60_000;

    #[test]
    fn a_restamped_creation_counts_from_its_answer() {
        let limit = RateLimit {
            max_per_window: 1,
            window: std::time::Duration::from_secs(60),
        };
        let mut w = KeyWindow::default();
        w.record(&limit, T);
        w.restamp(T, T.plus_ms(5_000));
        assert_eq!(
            w.next_allowed_at(&limit, T.plus_ms(MIN)),
            T.plus_ms(MIN + 5_000)
        );
        // An unknown send time changes nothing.
        w.restamp(T, T.plus_ms(9_000));
        assert_eq!(
            w.next_allowed_at(&limit, T.plus_ms(MIN)),
            T.plus_ms(MIN + 5_000)
        );
    }

    fn small() -> RateLimit {
        RateLimit {
            max_per_window: 3,
            window: Duration::from_secs(600),
        }
    }

    #[test]
    fn allows_up_to_the_limit_then_waits_for_the_oldest() {
        let l = small();
        let mut w = KeyWindow::new();
        for i in 0..3 {
            let now = T.plus_ms(i * MIN);
            assert!(w.allowed_now(&l, now));
            w.record(&l, now);
        }
        let now = T.plus_ms(3 * MIN);
        assert!(!w.allowed_now(&l, now));
        assert_eq!(w.remaining(&l, now), 0);
        assert_eq!(w.next_allowed_at(&l, now), T.plus_ms(10 * MIN));
        // Exactly when the first leaves the window, one slot opens.
        let later = T.plus_ms(10 * MIN);
        assert!(w.allowed_now(&l, later));
        assert_eq!(w.remaining(&l, later), 1);
    }

    #[test]
    fn default_is_25_per_hour() {
        let l = RateLimit::default();
        let mut w = KeyWindow::new();
        for i in 0..25 {
            w.record(&l, T.plus_ms(i * 1000));
        }
        assert_eq!(
            w.next_allowed_at(&l, T.plus_ms(30_000)),
            T.plus_ms(3_600_000)
        );
    }

    #[test]
    fn server_block_wins_when_later() {
        let l = small();
        let mut w = KeyWindow::new();
        w.block_until(T.plus_ms(5 * MIN));
        w.block_until(T.plus_ms(2 * MIN)); // never shortens
        assert_eq!(w.next_allowed_at(&l, T), T.plus_ms(5 * MIN));
        assert!(w.allowed_now(&l, T.plus_ms(5 * MIN)));
        w.prune(&l, T.plus_ms(6 * MIN));
        assert_eq!(w.blocked_until, None);
    }

    #[test]
    fn clock_going_back_is_conservative() {
        let l = small();
        let mut w = KeyWindow::new();
        for i in 0..3 {
            w.record(&l, T.plus_ms(i));
        }
        // "now" is an hour before the stamps: they still count.
        let back = T.plus_ms(-60 * MIN);
        assert!(!w.allowed_now(&l, back));
        assert_eq!(w.next_allowed_at(&l, back), T.plus_ms(10 * MIN));
    }

    #[test]
    fn out_of_order_records_stay_sorted_and_prune() {
        let l = small();
        let mut w = KeyWindow::new();
        w.record(&l, T.plus_ms(2 * MIN));
        w.record(&l, T.plus_ms(MIN));
        assert_eq!(w.pushes, vec![T.plus_ms(MIN), T.plus_ms(2 * MIN)]);
        // At 11 min the push at 1 min has left the 10-min window; 2 min has not.
        w.record(&l, T.plus_ms(11 * MIN));
        assert_eq!(w.pushes, vec![T.plus_ms(2 * MIN), T.plus_ms(11 * MIN)]);
    }

    #[test]
    fn zero_limit_blocks_forever() {
        let l = RateLimit {
            max_per_window: 0,
            window: DEFAULT_WINDOW,
        };
        assert_eq!(KeyWindow::new().next_allowed_at(&l, T), UtcMillis(i64::MAX));
    }

    #[test]
    fn limiter_is_per_key_and_serializes_without_keys() {
        let l = small();
        let a = KeyFingerprint::of("omi_dev_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let b = KeyFingerprint::of("omi_dev_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        let mut lim = Limiter::new();
        for i in 0..3 {
            lim.record(&a, &l, T.plus_ms(i));
        }
        assert!(lim.next_allowed_at(&a, &l, T.plus_ms(10)) > T.plus_ms(10));
        assert_eq!(lim.next_allowed_at(&b, &l, T.plus_ms(10)), T.plus_ms(10));
        lim.block_until(&b, T.plus_ms(MIN));

        let json = serde_json::to_string(&lim).unwrap();
        assert!(!json.contains("omi_dev_"));
        assert!(json.contains(a.as_str()));
        let back: Limiter = serde_json::from_str(&json).unwrap();
        assert_eq!(back, lim);
        assert_eq!(back.window(&a).pushes.len(), 3);

        let mut pruned = back;
        pruned.prune(&l, T.plus_ms(60 * MIN));
        assert_eq!(pruned.keys().count(), 0);
    }
}
