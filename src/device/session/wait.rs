//! Waiting for notifications: in short slices with the cancel token checked
//! between them, and the INFO exchange every connection begins with.

use std::time::{Duration, Instant};

use super::{Interrupt, PullError};
use crate::cancel::Cancel;
use crate::device::link::{GattLink, LinkError};
use crate::device::ring::{Command, INFO_MIN_MTU, Info, Notification, Status};

/// The longest a single wait for a notification lasts before the cancel
/// token is checked again: a cancel stops a pull within about this long.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The next notification within `timeout`, asked for in slices of at most
/// [`WAIT_SLICE`]; `Ok(None)` if none came in time.
///
/// Time waited counts what the link said it waited: a link that answers
/// "nothing" at once (the simulated pendant simulates its waits) has still
/// waited its slice, so timeouts cost it no wall time.
pub(super) fn recv(
    link: &mut dyn GattLink,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Option<Vec<u8>>, Interrupt> {
    let started = Instant::now();
    let mut waited = Duration::ZERO;
    loop {
        if cancel.is_cancelled() {
            return Err(Interrupt::Cancelled);
        }
        let left = timeout.saturating_sub(waited.max(started.elapsed()));
        if left.is_zero() {
            return Ok(None);
        }
        let slice = left.min(WAIT_SLICE);
        match link.recv_notification(slice)? {
            Some(bytes) => return Ok(Some(bytes)),
            None => waited += slice,
        }
    }
}

/// Waits up to `timeout` for a notification that `want` accepts; others are
/// skipped. Nothing accepted in time is a drop naming `what`.
pub(super) fn wait_for<T>(
    link: &mut dyn GattLink,
    cancel: &Cancel,
    what: &str,
    timeout: Duration,
    mut want: impl FnMut(&Notification<'_>) -> Option<T>,
) -> Result<T, Interrupt> {
    let deadline = Instant::now() + timeout;
    let mut left = timeout;
    loop {
        let started = Instant::now();
        let Some(bytes) = recv(link, left, cancel)? else {
            return Err(Interrupt::Dropped(format!(
                "no {what} within {} ms",
                timeout.as_millis()
            )));
        };
        let n = Notification::decode(&bytes)
            .map_err(|e| Interrupt::Fatal(PullError::Protocol(e.to_string())))?;
        if let Some(t) = want(&n) {
            return Ok(t);
        }
        left = left
            .saturating_sub(started.elapsed())
            .min(deadline.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Err(Interrupt::Dropped(format!(
                "no {what} within {} ms",
                timeout.as_millis()
            )));
        }
    }
}

/// Sends INFO on a link whose MTU exchange agreed `mtu`, and waits for the
/// answer. A refusal with status 9 (or no answer) on an MTU below
/// [`INFO_MIN_MTU`] is [`PullError::MtuTooSmall`]; status 9 otherwise is
/// storage not ready (a drop: reconnecting retries it).
pub(super) fn info_exchange(
    link: &mut dyn GattLink,
    mtu: u16,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Info, Interrupt> {
    link.write_control(&Command::Info.encode())?;
    let answer = wait_for(link, cancel, "INFO", timeout, |n| match n {
        Notification::Info(i) => Some(Ok(*i)),
        Notification::Ack { status, .. } if !status.is_ok() => Some(Err(*status)),
        _ => None,
    });
    let small = mtu < INFO_MIN_MTU;
    match answer {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(Status::NOT_READY)) if small => Err(Interrupt::Fatal(PullError::MtuTooSmall {
            mtu,
            answered: true,
        })),
        Ok(Err(Status::NOT_READY)) => Err(Interrupt::Dropped(
            "INFO answered status 9 (storage not ready)".into(),
        )),
        Ok(Err(status)) => Err(Interrupt::Fatal(PullError::Device {
            command: "INFO",
            status,
        })),
        Err(Interrupt::Dropped(_)) if small => Err(Interrupt::Fatal(PullError::MtuTooSmall {
            mtu,
            answered: false,
        })),
        Err(e) => Err(e),
    }
}

/// Why INFO could not be read ([`read_info`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// The link failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// No answer in time, or the link dropped.
    #[error("{0}")]
    NoAnswer(String),
    /// The cancel token fired.
    #[error("cancelled")]
    Cancelled,
    /// The pendant refused INFO or answered something else.
    #[error(transparent)]
    Refused(PullError),
}

/// INFO, as a pull reads it, on a link whose MTU exchange agreed `mtu`
/// (negotiate it first with [`GattLink::request_mtu`]). Writes nothing but
/// the INFO command: a read-only status check uses it.
pub fn read_info(
    link: &mut dyn GattLink,
    mtu: u16,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Info, InfoError> {
    info_exchange(link, mtu, timeout, cancel).map_err(|e| match e {
        Interrupt::Dropped(why) => InfoError::NoAnswer(why),
        Interrupt::Cancelled => InfoError::Cancelled,
        Interrupt::Fatal(PullError::Link(e)) => InfoError::Link(e),
        Interrupt::Fatal(e) => InfoError::Refused(e),
    })
}
