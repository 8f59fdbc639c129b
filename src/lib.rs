//! omi-sync: the Omi pendant's offline backlog, from the device to the cloud.
//!
//! The pendant records for hours without a phone. omi-sync pulls that backlog
//! (BLE, a storage image, or the phone app's `.bin` files), finds the speech
//! in it with Silero VAD, transcribes it, lays it out as a chronological
//! timeline of conversations that a person can merge and split, and pushes
//! the conversations to the Omi cloud exactly once.
//!
//! The crate is one engine with thin frontends. Data flows one way, through
//! the ledger ([`store`]):
//!
//! ```text
//! device ─▶ store (raw captures) ─▶ audio ─▶ vad ─▶ segments ─▶ timeline
//! ```
//!
//! The [`timeline`] is a pure function of the segments, their transcripts and
//! the person's edits, so it does not depend on the order in which parallel
//! work finishes.

pub mod audio;
pub mod cancel;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod cpu;
pub mod device;
pub mod disk;
pub mod engine;
pub mod exit;
pub mod fsnode;
pub mod http;
pub mod notify;
pub mod runlog;
pub mod store;
pub mod stt;
pub mod term;
pub mod timeline;
pub mod tui;
pub mod vad;
