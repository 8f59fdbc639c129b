//! How many requests we may send: the client's own count of the cloud's
//! hourly budget per key.
//!
//! The cloud allows 25 requests per hour per developer key in **fixed
//! clock-hour windows** (`dev:conversations`, `omi-facts.md` §5), charged
//! before the body is validated and shared by creates, DELETEs and PATCHes:
//! a refused create and a delete each use one. Reads have budgets of their
//! own (upstream's `dev:conversation_detail_read`, 60 per hour), so the
//! confirmation GETs are counted in a second window ([`Limiter::reads`]).
//!
//! omi-sync counts every request it sends ([`KeyWindow::charge`], before
//! the request leaves, so a crash cannot lose a count), reads the server's
//! `X-RateLimit-Remaining` / `X-RateLimit-Reset` when an answer has them
//! ([`KeyWindow::observe`]: the lower count wins), and honours a block from
//! a 429 or 503 ([`KeyWindow::block_until`]). A request whose answer came
//! after a window boundary may have been counted on either side, so it
//! counts on both.
//!
//! Everything is pure logic over an explicit `now` on serializable state,
//! which the push engine keeps in the ledger so the count holds across runs.
//! Keys are named by their [`KeyFingerprint`], never by the key. A budget of
//! zero allows nothing, ever: [`KeyWindow::next_allowed_at`] is `None`, so
//! no caller can sleep waiting for it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::UtcMillis;
use crate::cloud::credentials::KeyFingerprint;

/// The cloud's budget: 25 requests per hour per key.
pub const DEFAULT_MAX_PER_WINDOW: u32 = 25;
/// The cloud's budget for reading one conversation: 60 per hour per key.
pub const DEFAULT_READS_PER_WINDOW: u32 = 60;
/// One hour.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// At most this many charges are kept per key, whatever the window.
const MAX_KEPT: usize = 10_000;

/// A budget: at most `max_per_window` requests in each fixed window of
/// `window` (windows start at whole multiples of it since 1970, so hour
/// windows start on the clock hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed in one window (0 allows none).
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
    /// The read budget's default (60 per hour).
    pub fn reads() -> Self {
        RateLimit {
            max_per_window: DEFAULT_READS_PER_WINDOW,
            window: DEFAULT_WINDOW,
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The start of the window holding `t`.
    pub fn window_start(&self, t: UtcMillis) -> UtcMillis {
        UtcMillis(t.0 - t.0.rem_euclid(self.window_ms()))
    }

    /// The start of the window after the one holding `t`.
    pub fn next_window(&self, t: UtcMillis) -> UtcMillis {
        self.window_start(t).plus_ms(self.window_ms())
    }
}

/// One request counted against the budget: when it was sent and when its
/// answer came (the same until it came). The server counted it somewhere
/// in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// When it left.
    pub sent: UtcMillis,
    /// When its answer came (or it gave up waiting).
    pub answered: UtcMillis,
}

/// What the server last said about the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCount {
    /// Requests left, by the server's count, when it answered.
    pub remaining: u32,
    /// When it answered.
    pub as_of: UtcMillis,
    /// When its window resets (the count no longer applies after).
    pub resets_at: UtcMillis,
}

/// One key's history: its recent requests, the server's last word, and a
/// block from a 429 or 503.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWindow {
    /// Recent requests, oldest first.
    #[serde(default)]
    pub charges: Vec<Charge>,
    /// The server's count, from `X-RateLimit-*`.
    #[serde(default)]
    pub server: Option<ServerCount>,
    /// No request before this (from `Retry-After`).
    #[serde(default)]
    pub blocked_until: Option<UtcMillis>,
}

impl KeyWindow {
    /// An empty history.
    pub fn new() -> Self {
        KeyWindow::default()
    }

    /// Requests counted in the window holding `now` (a request straddling a
    /// boundary counts in both windows).
    pub fn used(&self, limit: &RateLimit, now: UtcMillis) -> u32 {
        let start = limit.window_start(now);
        let end = limit.next_window(now);
        let n = self
            .charges
            .iter()
            .filter(|c| c.answered >= start && c.sent < end)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Requests left at `now`: the lower of our count and the server's
    /// (ignoring a block).
    pub fn remaining(&self, limit: &RateLimit, now: UtcMillis) -> u32 {
        let ours = limit.max_per_window.saturating_sub(self.used(limit, now));
        match self.server_remaining(now) {
            Some(theirs) => ours.min(theirs),
            None => ours,
        }
    }

    /// The server's count at `now`, less what was sent after it answered.
    fn server_remaining(&self, now: UtcMillis) -> Option<u32> {
        let s = self.server.filter(|s| now < s.resets_at)?;
        let since = self.charges.iter().filter(|c| c.sent > s.as_of).count();
        Some(
            s.remaining
                .saturating_sub(u32::try_from(since).unwrap_or(u32::MAX)),
        )
    }

    /// The earliest time (`>= now`) a request is allowed: `now` if it is
    /// allowed now, else when the window (ours or the server's) turns over,
    /// or when a block ends, whichever is later. `None` when the budget is
    /// zero: nothing will ever be allowed.
    pub fn next_allowed_at(&self, limit: &RateLimit, now: UtcMillis) -> Option<UtcMillis> {
        if limit.max_per_window == 0 {
            return None;
        }
        let mut at = now.max(self.blocked_until.unwrap_or(now));
        // Each step moves `at` forward to a window or server reset; a few
        // steps settle it (the loop is bounded all the same).
        for _ in 0..4 {
            let ours = limit.max_per_window.saturating_sub(self.used(limit, at));
            if ours == 0 {
                at = limit.next_window(at);
                continue;
            }
            if self.server_remaining(at) == Some(0) {
                at = self.server.map_or(at, |s| s.resets_at.max(at));
                continue;
            }
            return Some(at);
        }
        Some(at)
    }

    /// Whether a request is allowed at `now`.
    pub fn allowed_now(&self, limit: &RateLimit, now: UtcMillis) -> bool {
        self.next_allowed_at(limit, now) == Some(now)
    }

    /// Counts a request about to be sent at `now`, and forgets what no
    /// longer counts.
    pub fn charge(&mut self, limit: &RateLimit, now: UtcMillis) {
        let at = self.charges.partition_point(|c| c.sent <= now);
        self.charges.insert(
            at,
            Charge {
                sent: now,
                answered: now,
            },
        );
        self.prune(limit, now);
    }

    /// Records when the answer to the request sent at `sent` came.
    pub fn answered(&mut self, sent: UtcMillis, answered: UtcMillis) {
        if let Some(c) = self.charges.iter_mut().rev().find(|c| c.sent == sent) {
            c.answered = answered.max(sent);
        }
    }

    /// Takes in the server's count: `remaining` requests left as of `as_of`,
    /// its window resetting at `resets_at` (when it said; else at the end of
    /// our window).
    pub fn observe(
        &mut self,
        limit: &RateLimit,
        remaining: u32,
        as_of: UtcMillis,
        resets_at: Option<UtcMillis>,
    ) {
        self.server = Some(ServerCount {
            remaining,
            as_of,
            resets_at: resets_at.unwrap_or_else(|| limit.next_window(as_of)),
        });
    }

    /// Records a server block (a 429 or 503): no request before `until`. An
    /// earlier block never shortens a later one.
    pub fn block_until(&mut self, until: UtcMillis) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Drops requests of past windows, a server count past its reset and a
    /// block that has ended.
    pub fn prune(&mut self, limit: &RateLimit, now: UtcMillis) {
        let start = limit.window_start(now);
        self.charges.retain(|c| c.answered >= start);
        if self.charges.len() > MAX_KEPT {
            let cut = self.charges.len() - MAX_KEPT;
            self.charges.drain(..cut);
        }
        if self.server.is_some_and(|s| s.resets_at <= now) {
            self.server = None;
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    /// When the last of `n` more requests could go, starting at `from`, if
    /// every answer is good. `None` when the budget is zero.
    pub fn all_sent_by(&self, limit: &RateLimit, from: UtcMillis, n: usize) -> Option<UtcMillis> {
        let mut w = self.clone();
        let mut at = from;
        for _ in 0..n {
            at = w.next_allowed_at(limit, at)?;
            w.charge(limit, at);
        }
        Some(at)
    }
}

/// The windows of every key used, by fingerprint: one for writes (creates,
/// deletes) and one for reads (confirmations). Serializable as one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limiter {
    /// Creates and deletes, per key.
    #[serde(default)]
    pub writes: BTreeMap<KeyFingerprint, KeyWindow>,
    /// Reads of one conversation, per key.
    #[serde(default)]
    pub reads: BTreeMap<KeyFingerprint, KeyWindow>,
}

/// The first version's state: create times per key, a sliding window.
#[derive(Deserialize)]
struct LegacyWindow {
    #[serde(default)]
    pushes: Vec<UtcMillis>,
    #[serde(default)]
    blocked_until: Option<UtcMillis>,
}

impl Limiter {
    /// No history.
    pub fn new() -> Self {
        Limiter::default()
    }

    /// Reads stored state: this version's, or the first version's (a map of
    /// key to create times), whose creates still count. Unreadable state is
    /// `None`.
    pub fn from_json(text: &str) -> Option<Self> {
        if let Ok(l) = serde_json::from_str::<Limiter>(text)
            && (!l.writes.is_empty() || !l.reads.is_empty() || text.contains("\"writes\""))
        {
            return Some(l);
        }
        let legacy: BTreeMap<KeyFingerprint, LegacyWindow> = serde_json::from_str(text).ok()?;
        let writes = legacy
            .into_iter()
            .map(|(k, w)| {
                let charges = w
                    .pushes
                    .into_iter()
                    .map(|t| Charge {
                        sent: t,
                        answered: t,
                    })
                    .collect();
                (
                    k,
                    KeyWindow {
                        charges,
                        server: None,
                        blocked_until: w.blocked_until,
                    },
                )
            })
            .collect();
        Some(Limiter {
            writes,
            reads: BTreeMap::new(),
        })
    }

    /// The state as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One key's write window (empty if unknown).
    pub fn writes(&mut self, key: &KeyFingerprint) -> &mut KeyWindow {
        self.writes.entry(key.clone()).or_default()
    }

    /// One key's read window (empty if unknown).
    pub fn reads(&mut self, key: &KeyFingerprint) -> &mut KeyWindow {
        self.reads.entry(key.clone()).or_default()
    }

    /// Prunes every key and forgets keys with nothing left.
    pub fn prune(&mut self, writes: &RateLimit, reads: &RateLimit, now: UtcMillis) {
        for (map, limit) in [(&mut self.writes, writes), (&mut self.reads, reads)] {
            for w in map.values_mut() {
                w.prune(limit, now);
            }
            map.retain(|_, w| *w != KeyWindow::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-29T16:00:00Z: on a clock hour.
    const HOUR: UtcMillis = UtcMillis(1_716_998_400_000);
    const MIN: i64 = 60_000;

    fn small() -> RateLimit {
        RateLimit {
            max_per_window: 3,
            window: Duration::from_secs(600),
        }
    }

    #[test]
    fn windows_are_fixed_on_the_clock() {
        let l = RateLimit::default();
        assert_eq!(l.window_start(HOUR.plus_ms(59 * MIN)), HOUR);
        assert_eq!(
            l.next_window(HOUR.plus_ms(59 * MIN)),
            HOUR.plus_ms(60 * MIN)
        );
        assert_eq!(l.window_start(HOUR), HOUR);
    }

    #[test]
    fn the_budget_resets_on_the_hour_not_an_hour_after_the_first() {
        let l = RateLimit::default();
        let mut w = KeyWindow::new();
        // 25 requests late in the hour: the next may go at the top of the
        // hour, not 60 minutes after the first.
        for i in 0..25 {
            let t = HOUR.plus_ms(50 * MIN + i * 1000);
            assert!(w.allowed_now(&l, t), "{i}");
            w.charge(&l, t);
        }
        let now = HOUR.plus_ms(51 * MIN);
        assert_eq!(w.remaining(&l, now), 0);
        assert_eq!(w.next_allowed_at(&l, now), Some(HOUR.plus_ms(60 * MIN)));
        assert_eq!(w.remaining(&l, HOUR.plus_ms(60 * MIN)), 25);
    }

    #[test]
    fn a_request_answered_after_the_boundary_counts_on_both_sides() {
        let l = small();
        let mut w = KeyWindow::new();
        let sent = HOUR.plus_ms(9 * MIN + 50_000);
        w.charge(&l, sent);
        w.answered(sent, HOUR.plus_ms(10 * MIN + 5_000));
        assert_eq!(w.used(&l, HOUR.plus_ms(9 * MIN + 55_000)), 1);
        assert_eq!(w.used(&l, HOUR.plus_ms(11 * MIN)), 1);
        assert_eq!(w.used(&l, HOUR.plus_ms(21 * MIN)), 0);
    }

    #[test]
    fn the_servers_lower_count_wins_until_its_reset() {
        let l = small();
        let mut w = KeyWindow::new();
        w.charge(&l, HOUR);
        // Another client of the same key used the rest.
        w.observe(&l, 0, HOUR, Some(HOUR.plus_ms(7 * MIN)));
        assert_eq!(w.remaining(&l, HOUR.plus_ms(MIN)), 0);
        assert_eq!(
            w.next_allowed_at(&l, HOUR.plus_ms(MIN)),
            Some(HOUR.plus_ms(7 * MIN))
        );
        // A request sent after the server's answer comes off its count too.
        w.observe(&l, 2, HOUR.plus_ms(2 * MIN), None);
        w.charge(&l, HOUR.plus_ms(3 * MIN));
        assert_eq!(w.remaining(&l, HOUR.plus_ms(4 * MIN)), 1);
        // After its reset only our count applies.
        assert_eq!(w.remaining(&l, HOUR.plus_ms(11 * MIN)), 3);
    }

    #[test]
    fn a_block_wins_when_later_and_never_shortens() {
        let l = small();
        let mut w = KeyWindow::new();
        w.block_until(HOUR.plus_ms(5 * MIN));
        w.block_until(HOUR.plus_ms(2 * MIN));
        assert_eq!(w.next_allowed_at(&l, HOUR), Some(HOUR.plus_ms(5 * MIN)));
        w.prune(&l, HOUR.plus_ms(6 * MIN));
        assert_eq!(w.blocked_until, None);
    }

    #[test]
    fn a_zero_budget_allows_nothing_ever() {
        let l = RateLimit {
            max_per_window: 0,
            window: DEFAULT_WINDOW,
        };
        let w = KeyWindow::new();
        assert_eq!(w.next_allowed_at(&l, HOUR), None);
        assert_eq!(w.all_sent_by(&l, HOUR, 3), None);
        assert!(!w.allowed_now(&l, HOUR));
    }

    #[test]
    fn all_sent_by_walks_the_windows() {
        let l = small();
        let w = KeyWindow::new();
        // 3 per 10 minutes: the 7th goes in the third window.
        assert_eq!(w.all_sent_by(&l, HOUR, 7), Some(HOUR.plus_ms(20 * MIN)));
    }

    #[test]
    fn limiter_is_per_key_serializes_without_keys_and_reads_the_old_form() {
        let l = small();
        let a = KeyFingerprint::of("omi_dev_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let b = KeyFingerprint::of("omi_dev_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        let mut lim = Limiter::new();
        for i in 0..3 {
            lim.writes(&a).charge(&l, HOUR.plus_ms(i));
        }
        assert!(!lim.writes(&a).allowed_now(&l, HOUR.plus_ms(10)));
        assert!(lim.writes(&b).allowed_now(&l, HOUR.plus_ms(10)));
        assert!(lim.reads(&a).allowed_now(&l, HOUR.plus_ms(10)));
        let json = lim.to_json();
        assert!(!json.contains("omi_dev_"));
        assert!(json.contains(a.as_str()));
        let back = Limiter::from_json(&json).unwrap();
        assert_eq!(back.writes[&a].charges.len(), 3);

        let old = format!(
            r#"{{"{a}":{{"pushes":[{},{}],"blocked_until":null}}}}"#,
            HOUR.0,
            HOUR.0 + 5
        );
        let migrated = Limiter::from_json(&old).unwrap();
        assert_eq!(migrated.writes[&a].charges.len(), 2);
        assert!(Limiter::from_json("garbage").is_none());
        assert_eq!(Limiter::from_json("{}"), Some(Limiter::new()));

        let mut pruned = back;
        pruned.prune(&l, &l, HOUR.plus_ms(60 * MIN));
        assert!(pruned.writes.is_empty() && pruned.reads.is_empty());
    }
}
