//! `omi-sync models list|download|verify`: the local Whisper models.

use anyhow::anyhow;
use serde::Serialize;

use super::Context;
use crate::cli::ModelsAction;
use crate::engine::jobs::Job;
use crate::engine::report::JobReport;
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::stt::models::{ModelError, ModelStore, Verification};
use crate::term::{BAD, DIM, GOOD, WARN, paint};

/// The models directory, with the mirror from the flag or the config.
fn store(ctx: &Context, mirror: Option<&str>) -> ModelStore {
    ctx.ws.model_store(mirror)
}

/// A download or verification problem: a network failure is temporary (5),
/// anything else needs a person (7).
fn model_failure(e: ModelError) -> Failure {
    match e {
        ModelError::Download { .. } => Failure::new(ExitCode::Temporary, e),
        ModelError::Unknown { .. } => Failure::usage(e),
        _ => Failure::fatal(e),
    }
}

#[derive(Serialize)]
struct ListingJson {
    name: String,
    file: String,
    size: u64,
    sha256: String,
    installed: Option<String>,
    partial_bytes: Option<u64>,
}

#[derive(Serialize)]
struct VerifyJson {
    name: String,
    status: &'static str,
    detail: Option<String>,
}

/// `omi-sync models ...`
pub fn run(ctx: &Context, action: &ModelsAction) -> CommandResult {
    match action {
        ModelsAction::List => list(ctx),
        ModelsAction::Download { name, mirror } => download(ctx, name, mirror.as_deref()),
        ModelsAction::Verify { name } => verify(ctx, name.as_deref()),
    }
}

fn list(ctx: &Context) -> CommandResult {
    let rows = store(ctx, None).list();
    if ctx.out.json {
        let rows: Vec<ListingJson> = rows
            .into_iter()
            .map(|l| ListingJson {
                name: l.info.name,
                file: l.info.file_name,
                size: l.info.size,
                sha256: l.info.sha256,
                installed: l.installed.map(|p| p.display().to_string()),
                partial_bytes: l.partial,
            })
            .collect();
        ctx.out.print_json(&rows);
        return Ok(ExitCode::Done);
    }
    for l in rows {
        let state = match (&l.installed, l.partial) {
            (Some(p), _) => paint(GOOD, format!("installed {}", p.display())),
            (None, Some(n)) => paint(WARN, format!("partial ({} MB, download resumes)", n >> 20)),
            (None, None) => paint(DIM, "-"),
        };
        anstream::println!("{:<16} {:>6} MB  {state}", l.info.name, l.info.size >> 20);
    }
    Ok(ExitCode::Done)
}

fn download(ctx: &Context, name: &str, mirror: Option<&str>) -> CommandResult {
    let job = Job::Download {
        name: name.to_string(),
        mirror: mirror.map(str::to_string),
    };
    let JobReport::Download(d) = ctx.run_job(job, false)? else {
        unreachable!("a download job reports a download")
    };
    if ctx.out.json {
        ctx.out.print_json(&serde_json::json!({
            "name": d.name, "path": d.path.display().to_string(), "sha256": d.sha256
        }));
    } else if !ctx.out.quiet {
        anstream::println!(
            "{} {} ({} MB, SHA-256 checked) at {}",
            paint(GOOD, "downloaded:"),
            d.name,
            d.size >> 20,
            d.path.display()
        );
    }
    Ok(ExitCode::Done)
}

fn verify(ctx: &Context, name: Option<&str>) -> CommandResult {
    let store = store(ctx, None);
    let names: Vec<String> = match name {
        Some(n) => vec![store.info(n).map_err(model_failure)?.name.clone()],
        None => store
            .list()
            .into_iter()
            .filter(|l| l.installed.is_some())
            .map(|l| l.info.name)
            .collect(),
    };
    if names.is_empty() {
        ctx.out
            .note("No models installed; `omi-sync models download tiny.en` fetches one.");
        return Ok(ExitCode::NothingToDo);
    }
    let mut rows = Vec::new();
    for n in names {
        let (status, detail) = match store.verify(&n).map_err(model_failure)? {
            Verification::Ok => ("ok", None),
            Verification::Missing => ("missing", None),
            Verification::WrongSize { actual } => ("bad", Some(format!("size is {actual} bytes"))),
            Verification::WrongHash { actual } => ("bad", Some(format!("SHA-256 is {actual}"))),
        };
        rows.push(VerifyJson {
            name: n,
            status,
            detail,
        });
    }
    if ctx.out.json {
        ctx.out.print_json(&rows);
    } else {
        for r in &rows {
            let s = match r.status {
                "ok" => paint(GOOD, "ok"),
                other => paint(BAD, other),
            };
            anstream::println!("{:<16} {s} {}", r.name, r.detail.as_deref().unwrap_or(""));
        }
    }
    if rows.iter().all(|r| r.status == "ok") {
        Ok(ExitCode::Done)
    } else {
        Err(Failure::fatal(anyhow!(
            "some models are missing or damaged; `omi-sync models download NAME` fetches them again"
        )))
    }
}
