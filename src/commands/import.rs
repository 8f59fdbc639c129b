//! `omi-sync import` and `omi-sync vad`: bring audio in, find the speech.

use std::path::PathBuf;

use super::Context;
use crate::engine::analyze::AnalyzeReport;
use crate::engine::import::{FileStatus, ImportReport};
use crate::engine::jobs::Job;
use crate::engine::report::JobReport;
use crate::exit::{CommandResult, ExitCode};
use crate::term::{BAD, DIM, GOOD, WARN, duration, paint};
use crate::timeline::Domain;

/// `omi-sync import PATH...`
pub fn run(ctx: &Context, paths: Vec<PathBuf>) -> CommandResult {
    let JobReport::Import(report) = ctx.run_job(Job::Import { paths }, false)? else {
        unreachable!("an import job reports an import")
    };
    if ctx.out.json {
        ctx.out.print_json(&report);
    } else {
        print_import(&report.import, &report.vad);
    }
    Ok(import_exit_code(&report.import))
}

/// 3 when some input could not be used; 9 when there was nothing to import.
pub(super) fn import_exit_code(report: &ImportReport) -> ExitCode {
    let rejected = report
        .files
        .iter()
        .any(|f| f.status == FileStatus::Rejected);
    if !report.errors.is_empty() || rejected {
        ExitCode::Partial
    } else if report.files.is_empty() {
        ExitCode::NothingToDo
    } else {
        ExitCode::Done
    }
}

fn print_import(report: &ImportReport, analysis: &AnalyzeReport) {
    for e in &report.errors {
        anstream::println!("  {}  {e}", paint(BAD, "error   "));
    }
    for s in &report.skipped {
        anstream::println!("  {}  {s}", paint(WARN, "skipped "));
    }
    for f in &report.files {
        let name = f.path.file_name().map_or_else(
            || f.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match f.status {
            FileStatus::Rejected => anstream::println!(
                "  {}  {name}: {}",
                paint(BAD, "rejected"),
                f.error.as_deref().unwrap_or("")
            ),
            status => {
                let label = if status == FileStatus::Imported {
                    paint(GOOD, "imported")
                } else {
                    paint(DIM, "already ")
                };
                let clock = match f.clock {
                    Some(Domain::Wall) => "wall".to_string(),
                    Some(d) => paint(WARN, d.as_str()),
                    None => "?".to_string(),
                };
                anstream::println!(
                    "  {label}  {name}  {:>7}  {}  {}  {clock}",
                    duration(f.duration_s),
                    f.codec.as_deref().unwrap_or("?"),
                    f.start.as_deref().unwrap_or("?"),
                );
            }
        }
        for a in &f.anomalies {
            anstream::println!("            {} {a}", paint(WARN, "!"));
        }
    }
    let count = |s: FileStatus| report.files.iter().filter(|f| f.status == s).count();
    let audio: f64 = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Imported)
        .map(|f| f.duration_s)
        .sum();
    if report.files.is_empty() && report.errors.is_empty() {
        anstream::println!(
            "No .bin files found ({} other files skipped).",
            report.skipped_other_files
        );
        return;
    }
    anstream::println!(
        "{} files: {} imported ({} of audio), {} already imported, {} rejected{}.",
        report.files.len(),
        count(FileStatus::Imported),
        duration(audio),
        count(FileStatus::AlreadyImported),
        count(FileStatus::Rejected),
        if report.skipped_other_files > 0 {
            format!("; {} non-.bin files skipped", report.skipped_other_files)
        } else {
            String::new()
        }
    );
    if analysis.captures > 0 {
        anstream::println!(
            "Found {} speech segments ({} of speech in {} of audio). Next: {}",
            analysis.segments,
            duration(analysis.speech_s),
            duration(analysis.audio_s),
            paint(DIM, "omi-sync timeline")
        );
    }
}

/// `omi-sync vad [--rerun]`
pub fn vad(ctx: &Context, rerun: bool) -> CommandResult {
    let JobReport::Vad(report) = ctx.run_job(Job::Vad { rerun }, false)? else {
        unreachable!("a VAD job reports VAD")
    };
    if ctx.out.json {
        ctx.out.print_json(&report);
    } else if report.captures == 0 && report.failed == 0 {
        anstream::println!(
            "Every capture has been analysed already (use --rerun to analyse again)."
        );
    } else {
        anstream::println!(
            "Analysed {} captures: {} speech segments, {} of speech in {} of audio{}.",
            report.captures,
            report.segments,
            duration(report.speech_s),
            duration(report.audio_s),
            if report.failed > 0 {
                format!("; {} failed", report.failed)
            } else {
                String::new()
            }
        );
    }
    Ok(if report.failed > 0 {
        ExitCode::Partial
    } else if report.captures == 0 {
        ExitCode::NothingToDo
    } else {
        ExitCode::Done
    })
}
