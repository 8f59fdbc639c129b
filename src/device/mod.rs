//! Where audio comes from: the pendant's storage formats and transports.
//!
//! - [`record`]: the 444-byte storage record and its safe payload parse.
//! - [`wal`]: the phone app's `.bin` backlog files.
//! - [`capture`]: a capture's frames placed on absolute time (runs).
//! - [`placement`]: ring records placed on time across the captures of a stream.
//! - [`fingerprint`]: the same audio in two captures, found by its Opus frames.
//! - [`demo`]: the built-in demo backlog.
//! - [`ring`]: the BLE storage protocol codec (commands, notifications, reassembly).
//! - [`link`]: the GATT link a BLE transfer talks through.
//! - [`ble`]: that link over Bluetooth with btleplug (scan, connect, GATT).
//! - [`session`]: the BLE transfer itself (resume, durable sink, ADVANCE).
//! - [`sim`]: a simulated pendant serving a storage image over the real protocol.
//! - [`usb`]: the storage ring read from a card image or block device.
//! - [`fill`]: how full a ring is, and from when that needs attention.
//!
//! This module reads and frames bytes; it never decodes audio.

pub mod ble;
pub mod capture;
pub mod demo;
pub mod fill;
pub mod fingerprint;
pub mod link;
pub mod placement;
pub mod record;
pub mod ring;
pub mod session;
pub mod sim;
pub mod usb;
pub mod wal;
pub mod wal_read;
