//! The terminal report, in the manner of `flutter doctor`: a summary line,
//! the findings worst first with their fixes, then every section's checks
//! (one line each: mark, what, where); `-v` adds each check's detail.

use std::fmt::Write;

use crate::engine::diagnose::{Finding, Report, Severity};
use crate::term::say;
use crate::term::{BAD, BOLD, DIM, GOOD, WARN, paint};

/// The mark of a severity, coloured.
fn mark(s: Severity) -> String {
    match s {
        Severity::Ok => paint(GOOD, "✓"),
        Severity::Warning => paint(WARN, "!"),
        Severity::Problem => paint(BAD, "✗"),
    }
}

/// One check's line (and its fix and detail lines).
fn line(out: &mut String, f: &Finding, indent: &str, verbose: bool, with_fix: bool) {
    let at = f.place.as_ref().map_or_else(String::new, |p| {
        format!(" {}", paint(DIM, format!("({p})")))
    });
    let _ = writeln!(out, "{indent}{} {}{at}", mark(f.severity), f.what);
    if with_fix && let Some(fix) = &f.fix {
        let _ = writeln!(out, "{indent}    fix: {}", say::remedy(fix));
    }
    if verbose {
        for d in &f.detail {
            let _ = writeln!(out, "{indent}    {}", paint(DIM, d));
        }
    }
}

/// Counts of problems and warnings, as the summary says them.
pub fn summary(report: &Report) -> String {
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let (p, w) = (count(Severity::Problem), count(Severity::Warning));
    let mut parts = Vec::new();
    if !report.unreadable.is_empty() {
        parts.push(format!(
            "{} source(s) could not be read",
            report.unreadable.len()
        ));
    }
    parts.push(format!("{p} problem(s), {w} warning(s)"));
    parts.join("; ")
}

/// The whole report as terminal text; `verbose` adds the detail lines.
pub fn render(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}: {}",
        paint(BOLD, "omi-sync diagnose"),
        report.omi_sync_version,
        summary(report)
    );
    let _ = writeln!(
        out,
        "{}",
        paint(
            DIM,
            if report.redacted {
                "Redacted: device ids and file names are pseudonyms, the home directory is ~, no key."
            } else {
                "Not redacted: ids, names and paths as they are (no key)."
            }
        )
    );
    if report.transcripts_included {
        let _ = writeln!(out, "{}", paint(WARN, "Includes transcript text."));
    }
    for u in &report.unreadable {
        let _ = writeln!(
            out,
            "{} could not read the {}: {}",
            mark(Severity::Problem),
            u.source.replace('_', " "),
            u.error
        );
    }
    if !report.findings.is_empty() {
        let _ = writeln!(out, "\n{}", paint(BOLD, "Needs attention, worst first"));
        for f in &report.findings {
            line(&mut out, f, "  ", false, true);
        }
    }
    for s in &report.sections {
        let worst = s
            .checks
            .iter()
            .map(|c| c.severity)
            .max()
            .unwrap_or(Severity::Ok);
        let _ = writeln!(out, "\n{} {}", mark(worst), paint(BOLD, &s.title));
        for f in &s.checks {
            line(&mut out, f, "  ", verbose, false);
        }
    }
    if !verbose {
        let _ = writeln!(
            out,
            "\n{}",
            paint(
                DIM,
                "More detail with -v; the timeline chart with --html FILE."
            )
        );
    }
    out
}
