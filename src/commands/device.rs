//! `omi-sync devices` and `omi-sync device status`: finding pendants and
//! looking at one without changing it.

use std::time::Duration;

use anyhow::anyhow;

use super::Context;
use crate::cli::PendantArgs;
use crate::device::ble::{Ble, BleError};
use crate::device::session::InfoError;
use crate::engine::pendant::{Pendant, PendantError};
use crate::engine::pull::device_status;
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::term::{DIM, WARN, duration, paint};

/// The pendant the flags name (`--device` or `--sim`), if one.
/// `--sim-faults` without `--sim` is a usage error.
pub(super) fn pendant(args: &PendantArgs) -> Result<Option<Pendant>, Failure> {
    if args.sim_faults.is_some() && args.sim.is_none() {
        return Err(Failure::usage(anyhow!(
            "--sim-faults only applies to the simulated pendant: add --sim IMAGE"
        )));
    }
    if let Some(id) = &args.device {
        return Ok(Some(Pendant::Bluetooth {
            id: id.clone(),
            scan: Duration::from_secs(args.scan),
        }));
    }
    Ok(args.sim.as_ref().map(|image| Pendant::Sim {
        image: image.clone(),
        faults: args.sim_faults.clone().unwrap_or_default(),
    }))
}

/// The exit code for a pendant that could not be reached: 2 for a bad
/// request, 5 when trying later can help, 7 when the host needs fixing.
pub(super) fn pendant_failure(e: PendantError) -> Failure {
    let code = if e.is_usage() {
        ExitCode::Usage
    } else if e.is_temporary() {
        ExitCode::Temporary
    } else {
        ExitCode::Fatal
    };
    Failure::new(code, e)
}

fn ble_failure(e: BleError) -> Failure {
    pendant_failure(PendantError::Bluetooth(e))
}

/// `omi-sync devices [--scan SECS]`
pub fn devices(ctx: &Context, scan_secs: u64) -> CommandResult {
    let ble = Ble::open().map_err(ble_failure)?;
    ctx.out.note(format!(
        "Scanning for pendants for {scan_secs} s (wake yours by pressing its button)..."
    ));
    let found = ble
        .scan(Duration::from_secs(scan_secs))
        .map_err(ble_failure)?;
    if ctx.out.json {
        ctx.out.print_json(&serde_json::json!({ "devices": found }));
    } else if found.is_empty() {
        anstream::println!(
            "No pendant found. Wake it (press its button), bring it closer, and disconnect the phone app from it."
        );
    } else {
        for d in &found {
            anstream::println!(
                "  {}  {:<16}  {}",
                d.id,
                d.name.as_deref().unwrap_or("(no name)"),
                d.rssi
                    .map_or_else(|| "? dBm".to_string(), |r| format!("{r} dBm"))
            );
        }
        anstream::println!(
            "Next: {}",
            paint(DIM, format!("omi-sync pull --device {}", found[0].id))
        );
    }
    Ok(if found.is_empty() {
        ExitCode::NothingToDo
    } else {
        ExitCode::Done
    })
}

/// `omi-sync device status --device ID | --sim IMAGE`
pub fn status(ctx: &Context, args: &PendantArgs) -> CommandResult {
    let pendant = pendant(args)?.ok_or_else(|| {
        Failure::usage(anyhow!("name the pendant with --device ID or --sim IMAGE"))
    })?;
    let mut connector = pendant.connector().map_err(pendant_failure)?;
    let status =
        device_status(connector.as_mut(), Duration::from_secs(6), &ctx.cancel).map_err(|e| {
            let code = match e {
                InfoError::Cancelled => ExitCode::Interrupted,
                _ => ExitCode::Temporary,
            };
            Failure::new(
                code,
                anyhow!("cannot read the status of {}: {e}", connector.device_id()),
            )
        })?;
    if ctx.out.json {
        ctx.out.print_json(&status);
        return Ok(ExitCode::Done);
    }
    let clock = match status.clock_valid {
        Some(true) => "set".to_string(),
        Some(false) => paint(
            WARN,
            "not set (audio recorded now gets estimated times; a pull sets it)",
        ),
        None => "unknown".to_string(),
    };
    anstream::println!("pendant     {}", status.device);
    anstream::println!(
        "fill        {:.1}% of {} records",
        status.fill_percent,
        status.capacity_records
    );
    anstream::println!(
        "unread      {} records (about {} of audio), seqs {}..{}",
        status.unread_records,
        duration(status.unread_audio_s),
        status.read_seq,
        status.write_seq
    );
    let dropped = if status.dropped_records > 0 {
        paint(
            WARN,
            format!(
                "{} records (overwritten before they were pulled)",
                status.dropped_records
            ),
        )
    } else {
        "none".to_string()
    };
    anstream::println!("dropped     {dropped}");
    anstream::println!("clock       {clock}");
    if let Some(id) = &status.ring_id {
        anstream::println!("ring id     {id}");
    }
    Ok(ExitCode::Done)
}
