//! Work claimed by a running job, so two runs on one data directory (a TUI
//! session and a timer's `--auto`, two `transcribe`s) never do the same work
//! twice: analysing a capture, transcribing a segment (which costs money
//! with the cloud engines).
//!
//! A job claims items just before it works on them; [`Ledger::claim`] takes,
//! in one immediate transaction, every item no live claim of another holder
//! has, and returns what it took. A claim lapses at its expiry unless the
//! holder renews it ([`Ledger::renew_claims`]) or its process is gone (a
//! holder names its process: a claim of a pid that no longer runs is void,
//! so a run after a `kill -9` picks the work up at once), and is released
//! when the job ends ([`Ledger::release_claims`]).

use std::time::Duration;

use rusqlite::{Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;

/// How long a claim lives unless renewed.
pub const CLAIM_TTL: Duration = Duration::from_secs(300);

/// What kind of work a claim is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    /// Finding speech in a capture (items are capture ids).
    Analysis,
    /// Transcribing a segment (items are segment ids).
    Transcription,
}

impl WorkKind {
    fn as_str(self) -> &'static str {
        match self {
            WorkKind::Analysis => "analysis",
            WorkKind::Transcription => "transcription",
        }
    }
}

/// A live claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// On what.
    pub kind: WorkKind,
    /// The capture or segment id.
    pub item: i64,
    /// Who holds it.
    pub holder: String,
    /// When it lapses.
    pub expires_at: UtcMillis,
}

/// A holder name unique to this process and call: `pid N, run R`.
pub fn new_holder() -> String {
    format!("pid {}, run {:08x}", std::process::id(), fastrand::u32(..))
}

/// The pid a holder name starts with (`pid N, ...`).
fn holder_pid(holder: &str) -> Option<u32> {
    holder
        .strip_prefix("pid ")?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether a holder's process is known to be gone.
fn holder_is_gone(holder: &str) -> bool {
    holder_pid(holder).is_some_and(process_is_gone)
}

/// Whether process `pid` is known to be gone (Linux: no `/proc/PID`);
/// `false` where that cannot be known.
pub(crate) fn process_is_gone(pid: u32) -> bool {
    std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Ledger {
    /// Claims for `holder` every item of `items` that no live claim of
    /// another holder has (renewing those it holds already), until `now +
    /// ttl`; returns the items it now holds, in the order given.
    pub fn claim(
        &self,
        kind: WorkKind,
        items: &[i64],
        holder: &str,
        now: UtcMillis,
        ttl: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        let expires = now.plus_ms(ttl.as_millis() as i64);
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .ctx("cannot claim work")?;
        tx.execute("DELETE FROM claims WHERE expires_at_ms <= ?1", [now.0])
            .ctx("cannot expire claims")?;
        let others: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT DISTINCT holder FROM claims WHERE holder != ?1")
                .ctx("cannot read claims")?;
            stmt.query_map([holder], |r| r.get(0))
                .ctx("cannot read claims")?
                .collect::<Result<_, _>>()
                .ctx("cannot read claims")?
        };
        for gone in others.iter().filter(|h| holder_is_gone(h)) {
            tx.execute("DELETE FROM claims WHERE holder = ?1", [gone])
                .ctx("cannot void a dead run's claims")?;
        }
        let mut got = Vec::with_capacity(items.len());
        {
            let mut take = tx
                .prepare(
                    "INSERT INTO claims (kind, item, holder, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, item) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
                     WHERE claims.holder = excluded.holder",
                )
                .ctx("cannot claim work")?;
            for &item in items {
                if take
                    .execute(params![kind.as_str(), item, holder, expires.0])
                    .ctx("cannot claim work")?
                    > 0
                {
                    got.push(item);
                }
            }
        }
        tx.commit().ctx("cannot claim work")?;
        Ok(got)
    }

    /// Moves the expiry of every claim of `holder` to `now + ttl`.
    pub fn renew_claims(
        &self,
        holder: &str,
        now: UtcMillis,
        ttl: Duration,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE claims SET expires_at_ms = ?2 WHERE holder = ?1",
                params![holder, now.plus_ms(ttl.as_millis() as i64).0],
            )
            .ctx("cannot renew claims")
    }

    /// Releases `holder`'s claims on `items` (all of them with `None`).
    pub fn release_claims(
        &self,
        kind: WorkKind,
        holder: &str,
        items: Option<&[i64]>,
    ) -> Result<(), StoreError> {
        match items {
            None => self
                .conn
                .execute(
                    "DELETE FROM claims WHERE kind = ?1 AND holder = ?2",
                    params![kind.as_str(), holder],
                )
                .map(|_| ())
                .ctx("cannot release claims"),
            Some(items) => {
                for item in items {
                    self.conn
                        .execute(
                            "DELETE FROM claims WHERE kind = ?1 AND holder = ?2 AND item = ?3",
                            params![kind.as_str(), holder, item],
                        )
                        .ctx("cannot release claims")?;
                }
                Ok(())
            }
        }
    }
}

impl LedgerReader {
    /// Every claim not lapsed at `now`.
    pub fn claims(&self, now: UtcMillis) -> Result<Vec<Claim>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT kind, item, holder, expires_at_ms FROM claims
                 WHERE expires_at_ms > ?1 ORDER BY kind, item",
            )
            .ctx("cannot read claims")?;
        let rows = stmt
            .query_map([now.0], |r| {
                let kind: String = r.get(0)?;
                Ok(Claim {
                    kind: if kind == "analysis" {
                        WorkKind::Analysis
                    } else {
                        WorkKind::Transcription
                    },
                    item: r.get(1)?,
                    holder: r.get(2)?,
                    expires_at: UtcMillis(r.get(3)?),
                })
            })
            .ctx("cannot read claims")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot read claims")?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_claim_of_a_process_that_is_gone_is_void() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        let t = UtcMillis(1_000_000);
        let kind = WorkKind::Transcription;
        let me = new_holder();
        assert_eq!(holder_pid(&me), Some(std::process::id()));
        l.claim(kind, &[1], &me, t, TTL).unwrap();
        // A holder whose pid cannot exist (above the kernel's pid_max).
        l.claim(kind, &[2], "pid 4294967295, run 0", t, TTL)
            .unwrap();
        let other = "someone else";
        let got = l.claim(kind, &[1, 2], other, t, TTL).unwrap();
        if std::path::Path::new("/proc/self").exists() {
            assert_eq!(
                got,
                vec![2],
                "the dead run's claim is taken, the live one kept"
            );
        } else {
            assert!(got.is_empty());
        }
    }

    #[test]
    fn two_holders_never_share_an_item_until_a_claim_lapses_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ledger::open(dir.path()).unwrap();
        let b = Ledger::open(dir.path()).unwrap();
        let t = UtcMillis(1_000_000);
        let kind = WorkKind::Transcription;
        assert_eq!(
            a.claim(kind, &[1, 2, 3], "a", t, TTL).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(b.claim(kind, &[2, 3, 4], "b", t, TTL).unwrap(), vec![4]);
        // Claiming again renews; the other kind is separate.
        assert_eq!(a.claim(kind, &[1], "a", t, TTL).unwrap(), vec![1]);
        assert_eq!(
            b.claim(WorkKind::Analysis, &[1], "b", t, TTL).unwrap(),
            vec![1]
        );
        a.release_claims(kind, "a", Some(&[2])).unwrap();
        assert_eq!(b.claim(kind, &[2, 3], "b", t, TTL).unwrap(), vec![2]);
        // a stops renewing: after the TTL its claims lapse.
        let later = t.plus_ms(TTL.as_millis() as i64 + 1);
        assert_eq!(b.claim(kind, &[1, 3], "b", later, TTL).unwrap(), vec![1, 3]);
        let live: Vec<(i64, String)> = a
            .claims(later)
            .unwrap()
            .into_iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.item, c.holder))
            .collect();
        // b's own claims from `t` lapsed too: only the two just made live.
        assert_eq!(live, vec![(1, "b".into()), (3, "b".into())]);
        assert_eq!(b.renew_claims("b", later, TTL).unwrap(), 2);
        b.release_claims(kind, "b", None).unwrap();
        assert_eq!(a.claim(kind, &[1, 2], "a", later, TTL).unwrap(), vec![1, 2]);
    }
}
