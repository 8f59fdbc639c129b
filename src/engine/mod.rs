//! The engine: runs the pipeline's stages over the ledger and reports events.
//!
//! Each stage reads its input from the ledger and writes its output back, so
//! any stage can be re-run or resumed. Frontends (the command line, `--auto`,
//! the TUI) call these functions and listen to [`Event`]s; none of them holds
//! pipeline logic.
//!
//! - [`import`]: phone-app `.bin` files and folders into captures.
//! - [`analyze`]: finding speech in captures (VAD) and storing segments.
//! - [`transcribe`]: speech segments to text, through the worker pool.
//! - [`push`]: conversations to the Omi cloud, exactly once (the outbox).
//! - [`job`]: the whole job without a person (`--auto`).

pub mod analyze;
pub mod events;
pub mod import;
pub mod job;
pub mod push;
pub mod transcribe;

pub use events::{Event, EventSink, Silent, Stage};
