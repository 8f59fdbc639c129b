//! `omi-sync diagnose`: the read-only support report (see
//! [`crate::engine::diagnose`]), printed as terminal text or JSON and
//! optionally written as one self-contained HTML file.
//!
//! Exit 0 when nothing needs attention (warnings alone do not count), 3
//! when it found problems (they are listed), 7 when a source it was pointed
//! at could not be read (the rest is still reported).

mod html;
mod json;
mod text;

use anyhow::anyhow;

use super::Context;
use super::device::pendant;
use crate::cli::DiagnoseArgs;
use crate::engine::diagnose::{self, Request, Severity};
use crate::exit::{CommandResult, ExitCode, Failure};

/// `omi-sync diagnose [--data-dir DIR] [--image PATH] [--wal DIR]
/// [--device ID | --sim IMAGE] [--json] [--html FILE] [--include-transcripts]`.
/// `data_dir_given`: `--data-dir` (or `OMI_SYNC_DATA_DIR`) was set;
/// without it the data directory is diagnosed only when no other source is.
pub fn run(
    ctx: &Context,
    args: &DiagnoseArgs,
    data_dir_given: bool,
    config_error: Option<String>,
) -> CommandResult {
    let pendant = pendant(&args.pendant)?;
    let other_source = args.image.is_some() || args.wal.is_some() || pendant.is_some();
    let data_dir = (data_dir_given || !other_source).then(|| ctx.data_dir().to_path_buf());
    if let (Some(html), Some(dir)) = (&args.html, &data_dir)
        && let (Ok(h), Ok(d)) = (
            html.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."))
                .canonicalize(),
            dir.canonicalize(),
        )
        && h.starts_with(&d)
    {
        return Err(Failure::usage(anyhow!(
            "--html {} is inside the data directory being diagnosed, which diagnose never writes to: \
             write the report somewhere else",
            html.display()
        )));
    }
    let req = Request {
        data_dir,
        image: args.image.clone(),
        wal: args.wal.clone(),
        include_transcripts: args.include_transcripts,
        no_redact: args.no_redact,
        pendant_origin: pendant.as_ref().map(|p| p.origin()),
        config_error,
    };
    // The same transport a pull opens; the engine only reads status and INFO.
    let mut connector = pendant
        .as_ref()
        .map(|p| p.connector().map_err(|e| e.to_string()));
    let report = diagnose::diagnose(
        &ctx.ws,
        &req,
        connector.as_mut().map(|c| match c {
            Ok(c) => Ok(c.as_mut() as &mut dyn crate::device::link::Connector),
            Err(e) => Err(e.clone()),
        }),
        &ctx.cancel,
    );
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report)).map_err(|e| {
            Failure::fatal(anyhow!(
                "cannot write the HTML report {}: {e}",
                path.display()
            ))
        })?;
    }
    if ctx.out.json {
        ctx.out.print_json(&json::render(&report));
    } else {
        anstream::print!("{}", text::render(&report, ctx.out.verbose > 0));
        if let Some(path) = &args.html {
            anstream::println!("HTML report written to {}", path.display());
        }
    }
    Ok(if !report.unreadable.is_empty() {
        ExitCode::Fatal
    } else if report.worst() == Severity::Problem {
        ExitCode::Partial
    } else {
        ExitCode::Done
    })
}
