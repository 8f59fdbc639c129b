//! The GATT link a BLE transfer talks through: [`GattLink`] for one
//! connection, [`Connector`] to make a new one after a drop.
//!
//! Deliberately small and synchronous, so the transfer logic
//! ([`crate::device::session`]) is plain code that runs the same against the
//! in-process simulated pendant ([`crate::device::sim`]) and a real radio.
//!
//! [`crate::device::ble`] implements it with `btleplug` on a tokio runtime
//! that runs on its own thread, so these calls block only the caller and
//! work from any thread, including one inside another tokio runtime.
//!
//! Every wait is bounded and can be stopped: [`Connector::connect`] takes the
//! pull's [`Cancel`] (connecting and scanning can take many seconds), and
//! [`GattLink::recv_notification`] is called with short timeouts by the
//! session, which checks the token between them. A connect or a call given
//! up because the token fired is [`LinkError::Cancelled`].
//!
//! The MTU is negotiated before INFO ([`GattLink::request_mtu`]): the
//! firmware answers INFO only at an ATT MTU of at least
//! [`INFO_MIN_MTU`](crate::device::ring::INFO_MIN_MTU).
//!
//! A disconnect is always [`LinkError::Disconnected`], distinct from every
//! other failure: the session reacts to it by reconnecting and resuming.

use std::time::Duration;

use crate::cancel::Cancel;

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
    /// The pull's cancel token fired while this was waiting.
    #[error("cancelled")]
    Cancelled,
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

    /// Asks for an ATT MTU of `want` bytes and returns the MTU agreed.
    /// Platforms that exchange the MTU on their own when they connect (BlueZ
    /// asks for 517) need not do anything: the default reports [`mtu`](Self::mtu).
    fn request_mtu(&mut self, want: u16) -> Result<u16, LinkError> {
        let _ = want;
        Ok(self.mtu())
    }

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
    /// Gives up with [`LinkError::Cancelled`] soon after `cancel` fires.
    fn connect(&mut self, cancel: &Cancel) -> Result<Box<dyn GattLink>, LinkError>;
}
