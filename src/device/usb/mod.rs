//! The pendant's storage ring read straight from its card: a whole-device
//! image (`dd`) or the device node of a USB card reader (`ring-layout.md`).
//!
//! - [`layout`]: geometry, metadata records (variants A, B, C) and batch
//!   headers, parsed and encoded byte for byte.
//! - [`journal`]: which metadata record to trust, cross-checked against the
//!   batch headers.
//! - [`reader`]: the recovery procedure over `Read + Seek` (main range,
//!   salvage, forensic pass, anomalies with their sectors).
//! - [`writer`]: writing batches and metadata as the firmware does (used by
//!   the fixtures and the simulated pendant).
//! - [`fixture`]: byte-exact test images modelled on the firmware's host tests.
//!
//! Upstream firmware has no USB data path: "USB" here means a card reader.

pub mod fixture;
pub mod journal;
pub mod layout;
pub mod reader;
pub mod writer;

pub use layout::Variant;
pub use reader::{ImageAnomaly, ImageError, ImageReader, Part, Recovery};
