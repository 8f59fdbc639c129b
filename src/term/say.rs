//! The command line's words for what the engine reports in types: stage
//! reports, waits, link states, holds and remedies.
//!
//! The engine never words a sentence for a person; each frontend does, in
//! its own terms. These are the command line's: they name the command to
//! run where the engine only says what is needed.

use std::time::Duration;

use super::duration;
use crate::clock::{ClockTrust, UtcMillis};
use crate::engine::auto::Pulled;
use crate::engine::events::{LinkState, WaitReason};
use crate::engine::import::FileStatus;
use crate::engine::push::Hold;
use crate::engine::remedy::{KeyService, Remedy};
use crate::engine::report::StageReport;

/// `2025-06-02 09:00:02` (UTC).
pub fn wall(t: UtcMillis) -> String {
    let s = t.to_rfc3339();
    format!("{} {}", &s[..10], &s[11..19])
}

/// `09:00:02.120` (UTC).
pub fn clock_time(t: UtcMillis) -> String {
    let s = t.to_rfc3339();
    s[11..23].to_string()
}

/// "per hour", "per 30 min" or "per 4 s": a rate window in words.
pub fn per_window(window: Duration) -> String {
    match window.as_secs() {
        3600 => "per hour".to_string(),
        s if s % 3600 == 0 => format!("per {} h", s / 3600),
        s if s % 60 == 0 => format!("per {} min", s / 60),
        s => format!("per {s} s"),
    }
}

/// One line on what a stage did.
pub fn stage_report(report: &StageReport) -> String {
    match report {
        StageReport::Import(r) => {
            let count = |st: FileStatus| r.files.iter().filter(|f| f.status == st).count();
            format!(
                "{} new, {} already imported, {} rejected",
                count(FileStatus::Imported),
                count(FileStatus::AlreadyImported),
                count(FileStatus::Rejected)
            )
        }
        StageReport::Pull(p) => match p.as_ref() {
            Pulled::Pendant(s) => format!(
                "{} records ({:.1} MB) in {:.1} s: {} new, {} already in the ledger",
                s.link.records_received,
                s.link.records_received as f64 * 444.0 / 1e6,
                s.link.elapsed_s,
                s.stored.new_records,
                s.stored.already_stored + s.stored.duplicates
            ),
            Pulled::Image(s) => format!(
                "{} records read ({} salvaged): {} new, {} already in the ledger",
                s.main_records + s.salvaged_records,
                s.salvaged_records,
                s.stored.new_records,
                s.stored.already_stored + s.stored.duplicates
            ),
        },
        StageReport::Vad(r) => format!(
            "{} segments, {:.0} s of speech in {:.0} s of audio{}",
            r.segments,
            r.speech_s,
            r.audio_s,
            if r.audio_freed > 0 {
                format!(
                    " ({} captures left as they were: their audio was freed)",
                    r.audio_freed
                )
            } else {
                String::new()
            }
        ),
        StageReport::Transcribe(r) => {
            let mut s = format!(
                "{} segments ({:.0} s of speech) in {} windows: {} with words, {} silent",
                r.segments, r.speech_s, r.windows, r.speech, r.silent
            );
            if r.failed > 0 {
                s.push_str(&format!(", {} failed", r.failed));
            }
            if r.left_pending > 0 {
                s.push_str(&format!(", {} left for the next run", r.left_pending));
            }
            s.push_str(&format!(
                " ({:.1}x real time)",
                r.speech_s / r.elapsed_s.max(1e-3)
            ));
            s
        }
        StageReport::Download(d) => format!(
            "{} ({} MB, SHA-256 checked) at {}",
            d.name,
            d.size >> 20,
            d.path.display()
        ),
        StageReport::Cleanup(r) => format!(
            "{} {} capture{} ({}){}{}",
            if r.dry_run { "would free" } else { "freed" },
            r.freed.len(),
            if r.freed.len() == 1 { "" } else { "s" },
            bytes(r.bytes_freed),
            if r.failed.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} could not be deleted (tried again next run)",
                    r.failed.len()
                )
            },
            r.next_due
                .map(|t| format!("; next due {}", wall(t)))
                .unwrap_or_default()
        ),
        StageReport::Push(r) => format!(
            "{} created, {} replaced, {} rejected, {} being confirmed, {} still queued{}",
            r.created,
            r.deleted,
            r.rejected.len() + r.locked.len(),
            r.confirming,
            r.queued,
            r.next_attempt_at
                .map(|t| format!(" (next attempt at {})", wall(t)))
                .unwrap_or_default()
        ),
    }
}

/// A size in bytes, as people read it (`18.2 MB`).
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Why a stage waits, in words.
pub fn wait_reason(reason: &WaitReason) -> String {
    match reason {
        WaitReason::HourlyBudget { limit, window_s } => format!(
            "the cloud allows {limit} requests {}",
            per_window(Duration::from_secs(*window_s))
        ),
        WaitReason::ServerAsked { status } => format!("the cloud asked to wait ({status})"),
        WaitReason::Backoff { .. } => "waiting to retry".to_string(),
        WaitReason::Confirming => "waiting for the cloud to finish processing".to_string(),
        WaitReason::Busy { holder } => format!("another omi-sync run is busy ({holder})"),
    }
}

/// A pendant link's state, in words.
pub fn link_state(state: &LinkState) -> String {
    match state {
        LinkState::Connecting { attempt: 1 } => "connecting".to_string(),
        LinkState::Connecting { attempt } => format!("connecting (attempt {attempt})"),
        LinkState::Connected { mtu } => format!("connected (MTU {mtu})"),
        LinkState::Dropped { reason } => format!("link dropped ({reason}); what arrived is kept"),
        LinkState::Reconnecting { after_ms } => {
            format!("reconnecting in {}", duration(*after_ms as f64 / 1000.0))
        }
        LinkState::Closed => "disconnected".to_string(),
    }
}

/// What to do, as the command line says it.
pub fn remedy(remedy: &Remedy) -> String {
    match remedy {
        Remedy::GetModel { name } => format!(
            "fetch the model with `omi-sync models download {name}`, or point OMI_SYNC_MODEL at a ggml file"
        ),
        Remedy::ReplaceModel { path } => format!(
            "{} is not a usable Whisper model: download it again (`omi-sync models download`) or point OMI_SYNC_MODEL at another file",
            path.display()
        ),
        Remedy::ProvideKey { service } => key_hint(*service),
        Remedy::CheckKey { service, scope } => {
            let scope = scope
                .as_deref()
                .map(|s| format!(" and that it has the `{s}` scope"))
                .unwrap_or_default();
            match service {
                KeyService::Omi => format!("check the API key (`omi-sync login`){scope}"),
                other => format!("check the key: {}{scope}", key_hint(*other)),
            }
        }
        Remedy::FreeSpace { path } => format!(
            "free some space on the disk holding {}, then run the same command again",
            path.display()
        ),
        Remedy::FixPermissions { path } => format!(
            "make {} writable for you (or pass --data-dir somewhere that is)",
            path.display()
        ),
        Remedy::FixBluetooth => "check that a Bluetooth adapter is present and powered (`bluetoothctl show`) and that you may use it (the `bluetooth` group)".to_string(),
        Remedy::ReachPendant => "wake the pendant (press its button), bring it closer, and disconnect the phone app from it".to_string(),
        Remedy::RetryLater { at: Some(t) } => format!("run the same command again after {}", wall(*t)),
        Remedy::RetryLater { at: None } => "run the same command again later".to_string(),
        Remedy::FixSetting { key } => format!(
            "fix `{key}` in the config file (`omi-sync config` shows where it is)"
        ),
        Remedy::RebuildLedger { data_dir } => format!(
            "rebuild the ledger from the captures: `omi-sync --data-dir {} ledger rebuild`",
            data_dir.display()
        ),
        Remedy::Upgrade => "upgrade omi-sync".to_string(),
        Remedy::OtherEngine => "transcribe with --engine deepgram or --engine openai, or build omi-sync on this machine (cargo install --path .)".to_string(),
        Remedy::ApiGone => "the Omi cloud no longer offers this API: check for a newer omi-sync, or point --api-url at a server that has it".to_string(),
        Remedy::WaitForOtherRun { holder } => format!(
            "wait for the other run ({holder}) to finish, then run the same command again"
        ),
        Remedy::PullPendant => "pull the pendant's backlog now (`omi-sync pull --device ID`): what arrives is freed on the pendant and its clock is set".to_string(),
        Remedy::ReviewTimeline => "look at these conversations in `omi-sync review` (or `omi-sync timeline`): merge what was cut with `omi-sync merge`, check estimated times before pushing them with --allow-estimated-times".to_string(),
        Remedy::Transcribe => "run `omi-sync transcribe` (it retries failed segments once their cause is fixed)".to_string(),
        Remedy::Push { at: Some(t) } => format!("run `omi-sync push` after {}", wall(*t)),
        Remedy::Push { at: None } => "run `omi-sync push`".to_string(),
        Remedy::RetryRejected => "fix what the cloud said, then send them again with `omi-sync push --retry-rejected`".to_string(),
        Remedy::ReimportFile { path } => format!(
            "copy {} from the phone again (this copy is damaged) and `omi-sync import` the new one",
            path.display()
        ),
        Remedy::ResolveInCloud { cloud_id } => format!(
            "conversation {cloud_id} is locked in the Omi cloud: unlock it in the Omi app, then run `omi-sync push --retry-rejected`"
        ),
    }
}

fn key_hint(service: KeyService) -> String {
    match service {
        KeyService::Omi => {
            "store your Omi developer key with `omi-sync login`, or set OMI_API_KEY".to_string()
        }
        KeyService::Deepgram => {
            crate::stt::engine::missing_key_message(crate::stt::engine::EngineKind::Deepgram)
        }
        KeyService::Openai => {
            crate::stt::engine::missing_key_message(crate::stt::engine::EngineKind::Openai)
        }
    }
}

/// The plain words for a storage failure a remedy is about (a full disk, a
/// path that cannot be written), naming the path; `None` for other remedies.
pub fn storage_problem(remedy: &Remedy, data_dir: &std::path::Path) -> Option<String> {
    let what = |path: &std::path::Path| {
        if path == data_dir {
            format!("the data directory {}", path.display())
        } else {
            path.display().to_string()
        }
    };
    match remedy {
        Remedy::FreeSpace { path } => Some(format!("the disk holding {} is full", what(path))),
        Remedy::FixPermissions { path } => Some(format!(
            "{} is read-only (or not writable by you)",
            what(path)
        )),
        _ => None,
    }
}

/// Why a conversation is not pushed yet, and what to do.
pub fn hold(hold: &Hold) -> String {
    match hold {
        Hold::EstimatedTime { clock } => format!(
            "held: its times are estimated ({}); review, then push with --allow-estimated-times",
            match clock {
                ClockTrust::Uptime => "the pendant's clock was not set when it recorded",
                _ =>
                    "its file name carries no time, so its start was estimated from when the file was written; check it in `omi-sync timeline`",
            }
        ),
        Hold::WaitingForTranscription { pending } => {
            format!("waiting: {pending} segment(s) not transcribed yet (omi-sync transcribe)")
        }
        Hold::TranscriptionFailed { failed } => {
            format!(
                "held: transcription failed for {failed} segment(s); `omi-sync segments` says why (a capture whose audio is gone needs its original imported again), then run omi-sync transcribe"
            )
        }
        Hold::NoText => "nothing to send: no words were found in it".to_string(),
        Hold::Invalid { message } => format!("cannot be sent: {message}"),
        Hold::OverlapsVanished { session_id } => format!(
            "held: it overlaps a pushed conversation whose segments vanished ({}…); decide              about that one first (omi-sync push --forget-vanished or --replace-vanished)",
            session_id.get(..16).unwrap_or(session_id)
        ),
    }
}
