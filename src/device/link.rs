//! The GATT link a BLE transfer talks through: [`GattLink`] for one
//! connection, [`Connector`] to make a new one after a drop.
//!
//! Deliberately small and synchronous, so the transfer logic
//! ([`crate::device::session`]) is plain code that runs the same against the
//! in-process simulated pendant ([`crate::device::sim`]) and a real radio.
//!
//! Implementing it with `btleplug` 0.13 (async, tokio): run the session on a
//! blocking thread (`tokio::task::spawn_blocking`) and hold a
//! `tokio::runtime::Handle` in the link.
//!
//! - `write_control` / `write_time`: `handle.block_on(peripheral.write(&ch,
//!   bytes, WriteType::WithResponse))` on the control characteristic
//!   ([`CONTROL_CHAR_UUID`](crate::device::ring::CONTROL_CHAR_UUID)) and the
//!   time characteristic.
//! - `read_status`: `handle.block_on(peripheral.read(&status_ch))`.
//! - `recv_notification`: after `subscribe(&control)`, spawn a task that
//!   forwards `peripheral.notifications()` values whose uuid is the control
//!   characteristic into a `std::sync::mpsc::sync_channel`; here call
//!   `recv_timeout` (timeout: `Ok(None)`; the sender dropped because the
//!   stream ended: `Err(LinkError::Disconnected)`). Also watch the adapter's
//!   `CentralEvent::DeviceDisconnected` for this peripheral and report it as
//!   [`LinkError::Disconnected`] from every call after it.
//! - `mtu`: the negotiated ATT MTU if the platform reports it; 23 (the BLE
//!   minimum) is a safe answer when it does not: the session does not depend
//!   on it, it only reports it.
//! - [`Connector::connect`]: scan, connect, `discover_services`, find the
//!   characteristics (missing ones are [`LinkError::Unsupported`]), subscribe.
//!
//! A disconnect is always [`LinkError::Disconnected`], distinct from every
//! other failure: the session reacts to it by reconnecting and resuming.

use std::time::Duration;

/// Why a link operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The connection is gone (dropped, or closed by either side).
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// The device lacks the storage service or a characteristic.
    #[error("the device does not offer {0}")]
    Unsupported(String),
    /// Anything else the transport reports (adapter errors, GATT errors).
    #[error("{0}")]
    Other(String),
}

impl LinkError {
    /// Whether this is a disconnect (the session reconnects and resumes).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, LinkError::Disconnected(_))
    }
}

/// One connection to a pendant's storage service.
pub trait GattLink {
    /// The negotiated ATT MTU (a DATA notification carries up to `MTU - 4`
    /// ring bytes).
    fn mtu(&self) -> u16;

    /// Writes a command to the control characteristic (with response).
    fn write_control(&mut self, command: &[u8]) -> Result<(), LinkError>;

    /// Writes the time-sync characteristic (4 bytes, u32 LE unix seconds).
    fn write_time(&mut self, value: [u8; 4]) -> Result<(), LinkError>;

    /// Reads the 16-byte status characteristic.
    fn read_status(&mut self) -> Result<Vec<u8>, LinkError>;

    /// The next notification from the control characteristic, waiting at
    /// most `timeout`; `Ok(None)` if none came in time.
    fn recv_notification(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, LinkError>;

    /// Closes the connection. Calling it twice is fine.
    fn disconnect(&mut self) -> Result<(), LinkError>;
}

/// Makes connections to one pendant: the first, and new ones after a drop.
pub trait Connector {
    /// A short name for the device (its address or name), used in the ledger
    /// as the `device` key and in messages.
    fn device_id(&self) -> String;

    /// Connects, discovers the storage service and subscribes to control.
    fn connect(&mut self) -> Result<Box<dyn GattLink>, LinkError>;
}
