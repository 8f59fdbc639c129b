//! `omi-sync pull`: a pendant's backlog (Bluetooth, simulated, or its card)
//! into the ledger, with the speech found in it.

use anyhow::anyhow;

use super::Context;
use super::device::pendant;
use crate::cli::PullArgs;
use crate::engine::analyze::AnalyzeReport;
use crate::engine::auto::Pulled;
use crate::engine::image::ImageSummary;
use crate::engine::jobs::{Job, PullFrom, PullRequest};
use crate::engine::pull::PullSummary;
use crate::engine::report::JobReport;
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::term::{DIM, WARN, duration, paint};

/// `omi-sync pull --device ID | --image PATH | --sim IMAGE [...]`
pub fn run(ctx: &Context, args: &PullArgs) -> CommandResult {
    let from = match (&args.image, pendant(&args.pendant)?) {
        (Some(path), _) => PullFrom::Image(path.clone()),
        (None, Some(p)) => PullFrom::Pendant(p),
        (None, None) => {
            return Err(Failure::usage(anyhow!(
                "name the pendant with --device ID, --image PATH or --sim IMAGE"
            )));
        }
    };
    if args.forensic && args.image.is_none() {
        return Err(Failure::usage(anyhow!(
            "--forensic reads a card: use it with --image PATH"
        )));
    }
    let req = PullRequest {
        from,
        keep_on_device: args.keep_on_device,
        forensic: args.forensic,
        name: args.name.clone(),
    };
    let JobReport::Pull(job) = ctx.run_job(Job::Pull(req), false)? else {
        unreachable!("a pull job reports a pull")
    };
    if ctx.out.json {
        ctx.out.print_json(&job);
    }
    match &job.pulled {
        Pulled::Image(summary) => {
            if !ctx.out.json {
                print_image(summary);
                print_vad(&job.vad);
            }
            Ok(if summary.lost_audio() {
                ExitCode::Partial
            } else if summary.stored.new_records == 0 {
                ExitCode::NothingToDo
            } else {
                ExitCode::Done
            })
        }
        Pulled::Pendant(summary) => {
            if !ctx.out.json {
                print_pull(summary, args.keep_on_device);
                print_vad(&job.vad);
            }
            match &summary.error {
                Some(e) => Err(Failure::new(
                    ExitCode::Temporary,
                    anyhow!(
                        "the pull from {} stopped: {e}. Everything that arrived is kept; run the same \
                         command again to continue",
                        summary.device
                    ),
                )),
                None if summary.stored.new_records == 0 => Ok(ExitCode::NothingToDo),
                None => Ok(ExitCode::Done),
            }
        }
    }
}

fn print_pull(s: &PullSummary, keep_on_device: bool) {
    let l = &s.link;
    let freed = match (keep_on_device, l.advanced_to) {
        (true, _) => "nothing freed on the pendant (--keep-on-device)".to_string(),
        (false, Some(seq)) => format!("the pendant freed everything before seq {seq}"),
        (false, None) => "nothing freed on the pendant".to_string(),
    };
    anstream::println!(
        "{}: {} records at {:.1} KB/s over {} connection(s) ({} drops, {} bytes re-sent); {freed}; \
         {} records still unread there.",
        s.device,
        l.records_received,
        l.kb_per_s,
        l.connections,
        l.drops,
        l.resent_bytes,
        l.unread_on_device
    );
    if let Some(d) = l.dropped_on_device.filter(|d| *d > 0) {
        anstream::println!(
            "  {} the pendant reports {d} records it overwrote before they were pulled",
            paint(WARN, "!")
        );
    }
}

fn print_image(s: &ImageSummary) {
    let r = &s.ring;
    anstream::println!(
        "{}: variant {} ring of {} slots, seqs {}..{}{}: {} records read, {} salvaged after the last metadata; {} new in the ledger.",
        s.origin,
        r.variant,
        r.slots,
        r.read_seq,
        r.write_seq,
        r.ring_id
            .as_ref()
            .map_or(String::new(), |id| format!(" (ring id {id})")),
        s.main_records,
        s.salvaged_records,
        s.stored.new_records
    );
    for n in &s.notes {
        anstream::println!("  {} {n}", paint(WARN, "!"));
    }
    for a in &s.anomalies {
        let at = a
            .sector
            .map_or_else(String::new, |sec| format!("sector {sec}: "));
        anstream::println!("  {} {at}{}", paint(WARN, "!"), a.message);
    }
    if let Some(finds) = &s.forensic {
        anstream::println!(
            "Forensic pass: {} batches outside the backlog (listed, not imported):",
            finds.len()
        );
        for f in finds {
            anstream::println!(
                "  slot {} (sector {}): seqs {}..{}, {} records, {}; {} already in the ledger",
                f.slot,
                f.sector,
                f.seqs[0],
                f.seqs[1],
                f.records,
                f.reason,
                f.in_ledger
            );
        }
    }
}

fn print_vad(vad: &AnalyzeReport) {
    if vad.captures > 0 {
        anstream::println!(
            "Found {} speech segments ({} of speech in {} of audio). Next: {}",
            vad.segments,
            duration(vad.speech_s),
            duration(vad.audio_s),
            paint(DIM, "omi-sync timeline")
        );
    }
}
