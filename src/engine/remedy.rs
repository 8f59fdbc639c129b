//! What a person can do about a failure, as a type.
//!
//! The engine never tells the user to type a command: a failure carries a
//! [`Remedy`] saying what is needed (a model, a key, disk space, ...), and
//! each frontend says how in its own terms (the command line names the
//! command to run, the TUI the key to press, `diagnose` the fix to give).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::clock::UtcMillis;

/// A service whose key omi-sync uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyService {
    /// The Omi cloud (developer key `omi_dev_…`).
    Omi,
    /// Deepgram speech to text.
    Deepgram,
    /// An OpenAI-compatible speech to text server.
    Openai,
}

/// What a person can do to get past a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "remedy", rename_all = "snake_case")]
pub enum Remedy {
    /// A Whisper model is needed (by its name in the models table).
    GetModel {
        /// The model's name, e.g. `tiny.en`.
        name: String,
    },
    /// The model file is there but unusable: replace it.
    ReplaceModel {
        /// The file.
        path: PathBuf,
    },
    /// A key for this service must be provided.
    ProvideKey {
        /// Which service.
        service: KeyService,
    },
    /// The service refused the key: check it, and its scopes.
    CheckKey {
        /// Which service.
        service: KeyService,
        /// A scope it needs and lacks, when known.
        scope: Option<String>,
    },
    /// The disk holding this path is full.
    FreeSpace {
        /// The path being written.
        path: PathBuf,
    },
    /// This path cannot be written (permissions, read-only file system).
    FixPermissions {
        /// The path.
        path: PathBuf,
    },
    /// Bluetooth is unusable on this host (no adapter, no permission, no BlueZ).
    FixBluetooth,
    /// The pendant could not be reached: wake it, bring it closer, free it
    /// from the phone app.
    ReachPendant,
    /// Trying again later will do (at this time, when known).
    RetryLater {
        /// Not before this.
        at: Option<UtcMillis>,
    },
    /// A setting is wrong.
    FixSetting {
        /// Its key, e.g. `vad.threshold`.
        key: String,
    },
    /// The ledger is missing or damaged while captures are there: rebuild
    /// it from the captures.
    RebuildLedger {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// The ledger was written by a newer omi-sync.
    Upgrade,
    /// The cloud no longer offers the route omi-sync uses.
    ApiGone,
    /// Another run holds what this one needs; it will be free when that ends.
    WaitForOtherRun {
        /// Who holds it, as it says.
        holder: String,
    },
    /// This processor cannot run the local Whisper build: use a cloud
    /// engine, or a build made on this machine.
    OtherEngine,
    /// The pendant's ring is filling up, or its clock is not set: pull it
    /// (a pull frees what arrived and sets the clock).
    PullPendant,
    /// Look at these conversations on the timeline (merge what was cut,
    /// check estimated times before they are pushed).
    ReviewTimeline,
    /// Speech is waiting for text, or failed: transcribe (again).
    Transcribe,
    /// Conversations wait in the outbox: push (not before `at`, when known).
    Push {
        /// Not before this.
        at: Option<UtcMillis>,
    },
    /// The cloud refused conversations: fix what it said, then send them again.
    RetryRejected,
    /// A phone-app file is damaged here: copy it from the phone again and
    /// import the new copy.
    ReimportFile {
        /// The damaged file.
        path: PathBuf,
    },
    /// Something in the cloud needs a person there (a locked conversation).
    ResolveInCloud {
        /// The cloud conversation.
        cloud_id: String,
    },
}
