//! The command line: every command, flag and its help text.
//!
//! Parsing only: what each command does lives in [`crate::commands`].

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Pull the Omi pendant's offline backlog, find the speech, review it as a timeline, and push it to the Omi cloud exactly once.";

const LONG_ABOUT: &str = "\
omi-sync pulls the audio your Omi pendant recorded offline (the phone app's .bin files, \
the pendant's storage card, or Bluetooth), finds the speech in it with Silero VAD, lays it \
out as a chronological timeline of conversations (a new one after 120 s of silence, as the \
Omi cloud does), lets you merge and split conversations, and only then sends them.

Everything it learns is kept in a ledger in its data directory, so every step can be \
re-run, resumed after a crash, or inspected.";

const AFTER_HELP: &str = "\
Examples:
  omi-sync --auto --source demo        Run the whole job on the built-in demo backlog
  omi-sync import ~/Downloads/omi/     Import a folder of the phone app's .bin files
  omi-sync devices                     Find pendants in Bluetooth range
  omi-sync pull --device AA:BB:CC:DD:EE:FF   Pull the pendant's backlog over Bluetooth
  omi-sync models download tiny.en     Fetch the local Whisper model
  omi-sync transcribe                  Turn the speech found into text
  omi-sync timeline                    Show the conversations found so far
  omi-sync merge 3fa9c2 81d0e4         Join two conversations (ids from `timeline`)
  omi-sync split 42                    Start a new conversation at segment 42
  omi-sync undo                        Take back the last merge or split
  omi-sync review                      Look, listen, merge and split in the terminal
  omi-sync export --conversation 3fa9c2   Write a conversation's speech as a WAV file
  omi-sync push --dry-run              Show exactly what would be sent to the cloud
  omi-sync push                        Send it (key from OMI_API_KEY or `omi-sync login`)

Exit codes: 0 done, 1 failed, 2 usage, 3 done but some inputs unusable,
5 temporary failure (retry later), 7 fatal (needs a person), 9 nothing to do.

Environment: OMI_API_KEY, OMI_API_URL, OMI_SYNC_DATA_DIR, OMI_SYNC_CONFIG, OMI_SYNC_MODEL,
DEEPGRAM_API_KEY, OPENAI_API_KEY, NO_COLOR, RUST_LOG.";

/// The `omi-sync` command line.
#[derive(Debug, Parser)]
#[command(
    name = "omi-sync",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Settings every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Run the whole job without a person (for cron and systemd timers):
    /// import, find speech, transcribe, lay out the timeline, push. Resumes
    /// whatever an earlier run left; one run at a time per data directory.
    #[arg(long)]
    pub auto: bool,

    /// With --auto: where the backlog comes from: `demo` (the built-in demo),
    /// a phone-app .bin file or folder, `image:PATH` (the pendant's card or
    /// its image), `device:ID` (the pendant over Bluetooth) or `sim:PATH`
    /// (the simulated pendant serving an image) [default:
    /// `[auto] source` in the config].
    #[arg(long, value_name = "SOURCE", requires = "auto")]
    pub source: Option<String>,

    /// With --auto and a `sim:PATH` source: faults the simulated pendant
    /// plays (see `omi-sync pull --help`), e.g. `delay-ms=2,drop-every=500`.
    #[arg(long = "sim-faults", value_name = "SPEC", requires = "auto")]
    pub auto_sim_faults: Option<String>,

    /// With --auto: how to push.
    #[command(flatten)]
    pub push: PushArgs,

    /// The command to run (without one: a summary of the ledger).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where the ledger and captured audio live [default: the platform data dir,
    /// e.g. ~/.local/share/omi-sync].
    #[arg(long, global = true, value_name = "DIR", env = "OMI_SYNC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The config file [default: the platform config dir, e.g. ~/.config/omi-sync/config.toml].
    #[arg(long, global = true, value_name = "FILE", env = "OMI_SYNC_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// When to use colour (also honours NO_COLOR).
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    /// The Omi API base URL [default: `[cloud] api_url` in the config, or https://api.omi.me].
    #[arg(long, global = true, value_name = "URL", env = "OMI_API_URL")]
    pub api_url: Option<String>,

    /// Say less: no progress bars, only errors and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say more: -v for details, -vv for debugging.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How to push (for `push` and `--auto`).
#[derive(Debug, Clone, Default, Args)]
pub struct PushArgs {
    /// Print exactly the requests that would be sent (key redacted), and send nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Wait through the cloud's rate limit and retries until everything is pushed,
    /// instead of stopping with work queued (exit 5) and saying when to come back.
    #[arg(long)]
    pub wait: bool,

    /// Also push conversations whose times are estimated (recorded while the
    /// pendant's clock was not set). Review them first: `omi-sync timeline`.
    #[arg(long)]
    pub allow_estimated_times: bool,

    /// Send refused and locked conversations again (after fixing what the
    /// cloud said, or unlocking them in the Omi app). Refusals that were not
    /// the conversation's fault (a redirect, a proxy's 404) are re-queued
    /// on their own.
    #[arg(long)]
    pub retry_rejected: bool,

    /// Conversations already in the cloud whose segments vanished here (a
    /// VAD re-run found no speech there, a capture was lost): keep their
    /// cloud copies as they are and stop tracking them. Without this (or
    /// --replace-vanished) they are held and nothing is sent for them.
    #[arg(long, conflicts_with = "replace_vanished")]
    pub forget_vanished: bool,

    /// Conversations already in the cloud whose segments vanished here:
    /// delete their cloud copies and push what the timeline has there now.
    /// Check with --dry-run first.
    #[arg(long)]
    pub replace_vanished: bool,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When writing to a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import phone-app .bin backlog files or folders, and find the speech in them.
    ///
    /// Each file is copied into the ledger (importing the same file twice does
    /// nothing), checked (name, timestamp, frames), and prints what was found:
    /// duration, codec, start time, clock trust, and any anomalies. A bad file
    /// never stops the others.
    Import {
        /// Files or folders (folders are searched recursively for .bin files).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },

    /// List the speech segments VAD found, with their times and status.
    Segments,

    /// Show the conversations: speech grouped by time, with your merges and splits.
    ///
    /// With --json prints one object:
    /// {"conversations":[{"id","started_at","finished_at","clock","segments":[{"id","start","end","status","text"}]}]}
    Timeline,

    /// Join two conversations (and any between them) into one.
    Merge {
        /// A conversation id (or a unique prefix), from `omi-sync timeline`.
        #[arg(value_name = "CONV_A")]
        a: String,
        /// The other conversation.
        #[arg(value_name = "CONV_B")]
        b: String,
    },

    /// Start a new conversation at a segment (also undoes a merge there).
    Split {
        /// A segment id, from `omi-sync timeline` or `omi-sync segments`.
        #[arg(value_name = "SEGMENT_ID")]
        segment: i64,
    },

    /// Take back the last merge or split.
    Undo,

    /// Re-apply the last merge or split that was undone.
    Redo,

    /// Turn speech segments into text (only those not transcribed yet).
    ///
    /// Segments are packed per conversation into windows of up to 30 s and
    /// transcribed in parallel; each result is stored as it lands, so an
    /// interrupted run resumes where it stopped. The Whisper model is found
    /// at --model, then OMI_SYNC_MODEL, then the data dir's models/ folder
    /// (`omi-sync models download tiny.en` puts it there).
    Transcribe(TranscribeArgs),

    /// Write a segment's or a conversation's audio as a WAV file (16 kHz mono).
    ///
    /// A conversation is written as its speech in time order, each silence
    /// between segments kept up to one second, as the review TUI plays it.
    #[command(group(ArgGroup::new("what").required(true).args(["segment", "conversation"])))]
    Export {
        /// A segment id, from `omi-sync segments` or `omi-sync timeline`.
        #[arg(long, value_name = "SEGMENT_ID")]
        segment: Option<i64>,
        /// A conversation id (or a unique prefix), from `omi-sync timeline`.
        #[arg(long, value_name = "CONV")]
        conversation: Option<String>,
        /// The file to write [default: segment-ID.wav or conversation-ID.wav here].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Review the backlog in the terminal: the timeline, conversations,
    /// playback, merge, split, undo, push (also `omi-sync` alone on a terminal).
    Review,

    /// List, download or verify the Whisper models.
    Models {
        /// What to do.
        #[command(subcommand)]
        action: ModelsAction,
    },

    /// Push the transcribed conversations to the Omi cloud, exactly once.
    ///
    /// Each conversation is sent with a client_session_id derived from its
    /// segments, so retries, crashes and re-runs never make duplicates. A
    /// conversation you merged or split after it was pushed replaces its cloud
    /// copy (delete, then create). Conversations with estimated times are held
    /// unless --allow-estimated-times. At most 25 are created per hour (the
    /// cloud's limit): the rest wait in the outbox for the next run (or --wait).
    /// The API key comes from OMI_API_KEY or the OS keyring (`omi-sync login`).
    Push {
        /// How to push.
        #[command(flatten)]
        args: PushArgs,
    },

    /// Store your Omi developer API key (omi_dev_…) in the OS keyring.
    ///
    /// The key is read from standard input (typed without echo on a terminal),
    /// never from the command line. Without a keyring service (a headless
    /// machine), set OMI_API_KEY in the environment instead.
    Login,

    /// Remove the stored API key from the OS keyring.
    Logout,

    /// Find speech again in imported audio (after changing VAD settings).
    Vad {
        /// Re-run over every capture, not only those not analysed yet.
        #[arg(long)]
        rerun: bool,
    },

    /// Show where the config file, data and log live, or print an example config or its schema.
    Config {
        /// Print a complete example config file with every default.
        #[arg(long, conflicts_with = "schema")]
        example: bool,
        /// Print the JSON Schema of the config file (for editors and checkers).
        #[arg(long)]
        schema: bool,
    },

    /// List the Omi pendants in Bluetooth range.
    ///
    /// Scans for pendants advertising the storage service and prints each
    /// one's id (its address), name and signal strength. Use the id with
    /// `omi-sync pull --device ID`. Wake the pendant first (press its button)
    /// and disconnect the phone app from it: a pendant talks to one host at a time.
    Devices {
        /// How long to scan, in seconds.
        #[arg(long, default_value_t = 8, value_name = "SECS")]
        scan: u64,
    },

    /// Pull the pendant's offline backlog into the ledger and find the speech in it.
    #[command(long_about = PULL_ABOUT, after_help = PULL_AFTER_HELP)]
    Pull(PullArgs),

    /// A read-only report for support: what a data directory, card image,
    /// folder of phone-app files or pendant holds, what is wrong, where, and
    /// what to do.
    #[command(long_about = DIAGNOSE_ABOUT, after_help = DIAGNOSE_AFTER_HELP)]
    Diagnose(DiagnoseArgs),

    /// What local audio is kept, why, and when it will be freed.
    ///
    /// A capture's audio is kept until every conversation it feeds is
    /// confirmed in the Omi cloud, then for `[storage] keep_days` (default
    /// 30; 0 frees it once confirmed, "never" keeps it). Every `--auto` run
    /// frees what is due; `storage prune` does it now. Freeing deletes the
    /// audio file only: transcripts, the timeline and the cloud are unchanged.
    Storage {
        /// What to do (default: show).
        #[command(subcommand)]
        action: Option<StorageCommand>,
    },

    /// Repair the ledger: rebuild it from the captured audio when it is lost.
    ///
    /// omi-sync refuses to start when the ledger is missing, empty or
    /// damaged while captured audio is in the data directory (exit 7).
    /// `ledger rebuild` keeps the old ledger's files aside (renamed, never
    /// deleted), records every capture again from its bytes and the card
    /// written beside it, and finds the speech again. Transcripts, merges,
    /// splits and the push record lived only in the ledger: transcribe
    /// again, and check the timeline before pushing.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        action: LedgerCommand,
    },

    /// Look at a pendant without changing anything on it.
    Device {
        /// What to look at.
        #[command(subcommand)]
        command: DeviceCommand,
    },

    /// Print a shell completion script (e.g. `omi-sync completions bash > ~/.local/share/bash-completion/completions/omi-sync`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Write a man page for every command into a directory (for packagers).
    #[command(hide = true)]
    Man {
        /// Where to write `omi-sync.1`, `omi-sync-import.1`, ... (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

const PULL_ABOUT: &str = "\
Pull the pendant's offline backlog into the ledger and find the speech in it.

From a pendant over Bluetooth (--device), from its storage card or an image of it \
(--image), or from the simulated pendant serving an image file (--sim), which speaks the \
same byte protocol as the pendant and is how the Bluetooth path is tested.

Over Bluetooth, records are written to the ledger and fsync'd before the pendant is told \
it may free them (ADVANCE), so a dropped link or a killed process loses nothing: the next \
pull resumes where the ledger ends, and records delivered again are not stored twice. \
--keep-on-device never frees anything. A card is only ever read.

The new audio is analysed at once: `omi-sync segments` and `omi-sync timeline` show it.";

const PULL_AFTER_HELP: &str = "\
Examples:
  omi-sync pull --device AA:BB:CC:DD:EE:FF          Pull and free what arrived
  omi-sync pull --device Omi --keep-on-device       Copy, leave everything on the pendant
  omi-sync pull --image /dev/sdb --forensic         Read the card; also list older data on it
  omi-sync pull --sim ring.img --sim-faults drop-every=4096,mtu=23

--sim-faults SPEC: comma-separated items, `key` or `key=value`:
  mtu=N                      ATT MTU 23..517 (default 247); DATA carries N-4 bytes
  delay-ms=N                 wait N ms before each notification (a slow link)
  drop-every=N               drop the link every N DATA bytes on a connection
  drop-at=N                  drop once when N DATA bytes went out in total (repeatable)
  drop-random=N, seed=S      drop at random, on average every N DATA bytes
  drop-on-advance[=K]        drop the link when the K-th ADVANCE arrives, losing it
  stall-after=N              go silent once N DATA bytes went out
  busy-first-read[=K]        answer the first K READs with status 9 (storage not ready)
  cleared-between-sessions[=M]  CLEAR the ring (new ring id) and record M records before
                             every connection but the first
  clock-not-set=A..B         records A..B were recorded without a clock
  no-custody                 old firmware: no ring id, no custody
  live-mark-every=N          a LIVE_MARK after every N DATA notifications

Exit codes: 0 pulled, 3 some audio on the card was unreadable, 5 the link failed \
(what arrived is kept; run again), 7 Bluetooth is unusable on this host or the ledger \
failed, 9 nothing new.";

const DIAGNOSE_ABOUT: &str = "\
A read-only report for support staff untangling a user's backlog.

Give any combination of sources: --data-dir (a data directory, even one copied from another \
machine, made read-only, or from an older omi-sync), --image (the pendant's card or an image \
of it), --wal (a folder of the phone app's .bin files), --device or --sim (a pendant in reach: \
only its status and INFO are read). Without a source, the data directory in use is diagnosed.

Nothing is changed: the ledger is read through a private copy, images and files are only read, \
a pendant gets no time write, ADVANCE or CLEAR, nothing is pushed and the cloud is not contacted.

Each check is one line (ok, warning or problem) with what was found, where (file and byte \
offset, sector, segment or conversation id), and the fix; the findings come first, worst \
first. -v adds the detail. By default the report is redacted: device ids and file names \
become stable pseudonyms (the same id always gives the same one), the home directory is ~, \
there is no transcript text and never the key.";

const DIAGNOSE_AFTER_HELP: &str = "\
Examples:
  omi-sync diagnose                                   The data directory in use
  omi-sync --data-dir ./user-copy diagnose --html report.html
  omi-sync diagnose --image card.img --json           A card image, as JSON
  omi-sync diagnose --wal ~/Downloads/omi/ -v         The phone app's files, with detail
  omi-sync diagnose --sim ring.img                    The simulated pendant (status and INFO only)

Exit codes: 0 nothing needs attention, 3 problems found (listed), 7 a source could not be read.
The JSON shape (schema_version 1) is documented in README.md and docs/diagnose.schema.json.";

/// `omi-sync diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// The pendant's storage card (a block device such as /dev/sdb) or an
    /// image of it. Only read, never written.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,

    /// A folder (or one file) of the phone app's .bin files. Only read.
    #[arg(long, value_name = "DIR")]
    pub wal: Option<PathBuf>,

    /// A pendant in reach (status and INFO reads only).
    #[command(flatten)]
    pub pendant: PendantArgs,

    /// Also write the report as one self-contained HTML file with a timeline chart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Include transcript text (left out by default).
    #[arg(long)]
    pub include_transcripts: bool,

    /// Show device ids, file names and paths as they are (for your own
    /// eyes; the key is never shown).
    #[arg(long)]
    pub no_redact: bool,
}

/// Which pendant to talk to: `--device` or `--sim` (one of them; `pull`
/// also takes `--image`).
#[derive(Debug, Args)]
pub struct PendantArgs {
    /// The pendant over Bluetooth: its id from `omi-sync devices` (the
    /// address) or its advertised name.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,

    /// The simulated pendant, serving the ring in this storage image file
    /// (freeing records writes new metadata into the file, as the pendant
    /// writes its card).
    #[arg(long, value_name = "IMAGE")]
    pub sim: Option<PathBuf>,

    /// Faults for the simulated pendant, with --sim (see `omi-sync pull --help`).
    #[arg(long, value_name = "SPEC")]
    pub sim_faults: Option<String>,

    /// How long to look for a Bluetooth pendant before giving up, in seconds.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub scan: u64,
}

/// `omi-sync pull`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("from").required(true).args(["device", "image", "sim"])))]
pub struct PullArgs {
    /// The pendant to pull from.
    #[command(flatten)]
    pub pendant: PendantArgs,

    /// The pendant's storage card (a block device such as /dev/sdb) or an
    /// image of it. Only read, never written.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,

    /// Copy only: never tell the pendant to free records (no ADVANCE, no CLEAR).
    #[arg(long)]
    pub keep_on_device: bool,

    /// With --image: also list what else is still on the card (records
    /// already freed, older laps, other rings). Listed only, never imported.
    #[arg(long)]
    pub forensic: bool,

    /// The name the pendant goes by in the ledger [default: its Bluetooth
    /// id, `sim:IMAGE`, or `image:PATH`]. Give a card and the pendant it
    /// came from the same name, and records pulled both ways are stored once.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// What `omi-sync storage` can do.
#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Free the local audio that is due now.
    Prune {
        /// List what would be freed, and free nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What `omi-sync ledger` can do.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Make a new ledger from the captures (only when the ledger is lost).
    Rebuild,
}

/// What `omi-sync device` can look at.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// How full the pendant's storage is: fill level, unread records (and
    /// about how much audio they hold), dropped records, whether its clock is set.
    ///
    /// Reads the status characteristic and INFO; writes nothing that changes
    /// the pendant.
    #[command(group(ArgGroup::new("from").required(true).args(["device", "sim"])))]
    Status {
        /// The pendant.
        #[command(flatten)]
        pendant: PendantArgs,
    },
}

/// How `transcribe` (and `--auto`) transcribes; each flag overrides `[stt]`
/// in the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct TranscribeArgs {
    /// The engine [default: whisper, or `engine` under [stt]].
    #[arg(long, value_enum)]
    pub engine: Option<crate::stt::engine::EngineKind>,
    /// Parallel workers [default: cores / threads for whisper, 4 for cloud engines].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// CPU threads per Whisper worker [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// A ggml Whisper model file [default: OMI_SYNC_MODEL, then the data dir's models/].
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Transcribe this conversation again (its id or a unique prefix, from
    /// `omi-sync timeline`), even though it has its text; if it was pushed,
    /// the next push replaces the cloud copy.
    #[arg(long, value_name = "CONV")]
    pub again: Option<String>,
}

/// `omi-sync models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Show the known models, their sizes, and which are installed.
    List,
    /// Download a model into the data dir (resumes a partial download,
    /// checks the SHA-256).
    Download {
        /// The model, e.g. `tiny.en`, `base.en`, `small.en` (see `models list`).
        #[arg(value_name = "NAME")]
        name: String,
        /// Fetch from this mirror of whisper.cpp's model repository instead
        /// [default: `model_mirror` under [stt], else Hugging Face].
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
    /// Check installed models' size and SHA-256 against the table.
    Verify {
        /// One model [default: every installed one].
        #[arg(value_name = "NAME")]
        name: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn auto_with_source_parses_and_global_flags_go_anywhere() {
        let c = Cli::try_parse_from(["omi-sync", "--auto", "--source", "demo", "--data-dir", "/d"])
            .unwrap();
        assert!(c.auto);
        assert_eq!(c.source.as_deref(), Some("demo"));
        let c =
            Cli::try_parse_from(["omi-sync", "timeline", "--json", "--data-dir", "/d"]).unwrap();
        assert!(c.global.json);
        assert!(matches!(c.command, Some(Command::Timeline)));
    }

    #[test]
    fn transcribe_and_models_parse() {
        let c = Cli::try_parse_from([
            "omi-sync",
            "transcribe",
            "--engine",
            "openai",
            "--workers",
            "3",
            "--threads",
            "2",
        ])
        .unwrap();
        let Some(Command::Transcribe(a)) = c.command else {
            panic!("not transcribe")
        };
        assert_eq!(a.workers, Some(3));
        assert_eq!(a.threads, Some(2));
        assert!(Cli::try_parse_from(["omi-sync", "transcribe", "--workers", "0"]).is_err());
        assert!(Cli::try_parse_from(["omi-sync", "models", "download"]).is_err());
        assert!(Cli::try_parse_from(["omi-sync", "models", "verify"]).is_ok());
    }

    #[test]
    fn export_needs_one_target_and_transcribe_takes_again() {
        assert!(Cli::try_parse_from(["omi-sync", "export"]).is_err());
        assert!(
            Cli::try_parse_from([
                "omi-sync",
                "export",
                "--segment",
                "3",
                "--conversation",
                "ab"
            ])
            .is_err()
        );
        let c =
            Cli::try_parse_from(["omi-sync", "export", "--segment", "3", "-o", "x.wav"]).unwrap();
        assert!(matches!(
            c.command,
            Some(Command::Export {
                segment: Some(3),
                ..
            })
        ));
        let c = Cli::try_parse_from(["omi-sync", "transcribe", "--again", "3fa9"]).unwrap();
        let Some(Command::Transcribe(a)) = c.command else {
            panic!("not transcribe")
        };
        assert_eq!(a.again.as_deref(), Some("3fa9"));
        assert!(matches!(
            Cli::try_parse_from(["omi-sync", "review"]).unwrap().command,
            Some(Command::Review)
        ));
    }

    #[test]
    fn source_needs_auto_and_import_needs_paths() {
        assert!(Cli::try_parse_from(["omi-sync", "--source", "demo"]).is_err());
        assert!(Cli::try_parse_from(["omi-sync", "import"]).is_err());
    }

    #[test]
    fn pull_needs_exactly_one_source() {
        assert!(Cli::try_parse_from(["omi-sync", "pull"]).is_err());
        assert!(
            Cli::try_parse_from(["omi-sync", "pull", "--device", "a", "--sim", "r.img"]).is_err()
        );
        let c = Cli::try_parse_from([
            "omi-sync",
            "pull",
            "--sim",
            "r.img",
            "--sim-faults",
            "mtu=23",
            "--keep-on-device",
        ])
        .unwrap();
        let Some(Command::Pull(p)) = c.command else {
            panic!("not pull");
        };
        assert!(p.keep_on_device);
        assert_eq!(p.pendant.sim_faults.as_deref(), Some("mtu=23"));
        assert!(Cli::try_parse_from(["omi-sync", "device", "status"]).is_err());
        assert!(
            Cli::try_parse_from(["omi-sync", "device", "status", "--image", "x"]).is_err(),
            "status reads a pendant, not a card"
        );
        assert!(Cli::try_parse_from(["omi-sync", "device", "status", "--device", "a"]).is_ok());
    }

    #[test]
    fn global_flags_work_before_and_after_the_command() {
        let c =
            Cli::try_parse_from(["omi-sync", "--data-dir", "/d", "--json", "timeline"]).unwrap();
        assert!(c.global.json);
        assert_eq!(
            c.global.data_dir.as_deref(),
            Some(std::path::Path::new("/d"))
        );
    }
}
