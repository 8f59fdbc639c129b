//! Where audio comes from: the pendant's storage formats and transports.
//!
//! - [`record`]: the 444-byte storage record and its safe payload parse.
//! - [`wal`]: the phone app's `.bin` backlog files.
//! - [`capture`]: a capture's frames placed on absolute time (runs).
//! - [`demo`]: the built-in demo backlog.
//!
//! This module reads and frames bytes; it never decodes audio.

pub mod capture;
pub mod demo;
pub mod record;
pub mod wal;
