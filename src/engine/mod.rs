//! The engine: runs the pipeline's stages over the ledger and reports events.
//!
//! Each stage reads its input from the ledger and writes its output back, so
//! any stage can be re-run or resumed. Frontends (the command line, `--auto`,
//! the TUI) call these functions and listen to [`Event`]s; none of them holds
//! pipeline logic.
//!
//! - [`import`]: phone-app `.bin` files and folders into captures.
//! - [`pull`]: a pendant's ring over BLE (or the simulated pendant) into the ledger.
//! - [`pendant`]: which pendant to talk to (Bluetooth or simulated).
//! - [`image`]: a pendant's card image or block device into the ledger.
//! - [`analyze`]: finding speech in captures (VAD) and storing segments.
//! - [`follow`]: analysis and transcription running alongside a pull.
//! - [`transcribe`]: speech segments to text, through the worker pool.
//! - [`push`]: conversations to the Omi cloud, exactly once (the outbox).
//! - [`job`]: the whole job without a person (`--auto`).
//! - [`streams`]: ring captures placed on time as the streams they were pulled in.
//! - [`export`]: a segment's or a conversation's audio, to play or as a WAV file.
//! - [`diagnose`]: the read-only support report on a user's data, card, files or pendant.
//!
//! What a running job hands each stage is a [`Ctx`]: where its [`events`]
//! go, its stop token, its clock. What stages and jobs report is typed
//! ([`report`]), and a failure says what a person can do about it
//! ([`remedy`]).

pub mod analyze;
pub mod auto;
pub mod ctx;
pub mod diagnose;
pub mod edit;
pub mod events;
pub mod export;
pub mod follow;
pub mod image;
pub mod import;
pub mod janitor;
pub mod jobs;
pub mod lead_in;
pub mod overview;
pub mod pendant;
pub mod pull;
pub mod push;
pub mod remedy;
pub mod report;
pub mod snapshot;
pub mod streams;
pub mod transcribe;
pub mod workspace;

pub use ctx::Ctx;
pub use events::{Envelope, Event, EventSink, JobId, Silent, Stage};
