//! Stopping long work: one token that every stage checks, and that wakes
//! whatever is sleeping on it.
//!
//! A job owns a [`Cancel`]; its clones share one flag. Long loops check
//! [`Cancel::is_cancelled`] (or [`Cancel::check`]) between units of work,
//! and every wait (a backoff, a rate limit, a reconnect) sleeps through
//! [`Cancel::sleep`] or a [`crate::clock::Clock`], which return at once when
//! the token fires. Cancelling never interrupts a write: a stage finishes the
//! write in hand (a capture file, a ledger transaction), then returns, so
//! what it leaves is consistent.
//!
//! ```
//! use std::time::Duration;
//! use omi_sync::cancel::Cancel;
//!
//! let cancel = Cancel::new();
//! let waker = cancel.clone();
//! let t = std::thread::spawn(move || waker.sleep(Duration::from_secs(3600)));
//! cancel.cancel();
//! assert!(t.join().unwrap().is_err(), "the hour-long sleep ended at once");
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A shared "stop now" flag with a wake-up for sleepers.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: Arc<AtomicBool>,
    lock: Mutex<()>,
    wake: Condvar,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The work stopped because its [`Cancel`] fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Cancel {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token: every check fails from now on and every sleeper wakes.
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.wake.notify_all();
    }

    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once the token has fired.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// The raw flag, for code that can only poll an atomic (a C callback
    /// such as whisper.cpp's abort hook).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.inner.flag.clone()
    }

    /// Sleeps for `duration`, or until the token fires (then `Err`).
    pub fn sleep(&self, duration: Duration) -> Result<(), Cancelled> {
        match Instant::now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline),
            // Longer than the clock can count: until cancelled.
            None => self.sleep_until(Instant::now() + Duration::from_secs(86_400 * 365)),
        }
    }

    /// Sleeps until `deadline`, or until the token fires (then `Err`).
    pub fn sleep_until(&self, deadline: Instant) -> Result<(), Cancelled> {
        let mut guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            self.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            guard = self
                .inner
                .wake
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_runs_its_course_unless_cancelled() {
        let c = Cancel::new();
        let t = Instant::now();
        c.sleep(Duration::from_millis(30)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(c.check().is_ok());
    }

    #[test]
    fn cancelling_wakes_every_sleeper_and_fails_every_check() {
        let c = Cancel::new();
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let t = Instant::now();
                    (c.sleep(Duration::from_secs(600)), t.elapsed())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        c.cancel();
        for s in sleepers {
            let (r, took) = s.join().unwrap();
            assert_eq!(r, Err(Cancelled));
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
        assert!(c.is_cancelled() && c.check().is_err());
        assert!(c.flag().load(Ordering::SeqCst));
        // A sleep after the cancel returns at once.
        assert_eq!(c.sleep(Duration::from_secs(600)), Err(Cancelled));
    }

    #[test]
    fn an_unrepresentable_sleep_is_still_cancellable() {
        let c = Cancel::new();
        let w = c.clone();
        let t = std::thread::spawn(move || w.sleep(Duration::MAX));
        std::thread::sleep(Duration::from_millis(10));
        c.cancel();
        assert_eq!(t.join().unwrap(), Err(Cancelled));
    }
}
