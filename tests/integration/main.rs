//! omi-sync's integration tests, in one binary.
//!
//! Every file beside this one is a module of one test binary (as ripgrep's
//! `tests/tests.rs` does), so whisper.cpp, libopus, SQLite and the contract
//! server are linked once instead of once per file. The shared pieces:
//!
//! - [`common`]: a sandboxed data directory and the real `omi-sync` binary,
//!   demo files, storage images built from the demo's speech.
//! - [`support`]: the Omi API contract server over loopback and its fixtures.
//! - [`stt_common`]: the real Whisper model and the espeak-ng/Opus fixtures.
//!
//! Run one area with a filter: `cargo test --test integration cloud_`,
//! `cargo test --test integration push::`.

mod common;
mod stt_common;
mod support;

mod again;
mod cancel;
mod cloud_api;
mod cloud_contract;
mod cloud_payload;
mod cloud_retry;
mod cloud_secrets;
mod concurrency;
mod config_files;
mod contiguous;
mod cpu_baseline;
mod device_fuzz;
mod device_image;
mod device_pull;
mod device_report;
mod device_session;
mod device_sim;
mod diagnose;
mod diagnose_audit;
mod edit;
mod full_disk;
mod import;
mod import_hostile;
mod keyring_real;
mod kill_campaign;
mod ledger_rebuild;
mod messages;
mod notify;
mod overlap;
mod packaging;
mod parser_fuzz;
mod pull_drops;
mod push;
mod push_counts;
mod review;
mod ring_capture;
mod run_log;
mod storage;
mod stt_fixtures;
mod stt_http;
mod stt_models;
mod stt_pipeline;
mod stt_whisper;
mod vad_parity;
