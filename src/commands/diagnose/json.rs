//! The JSON report (`--json`): the report's own fields (versioned by
//! `schema_version`, documented in README.md and `docs/diagnose.schema.json`),
//! each finding's fix also worded as the command line says it (`fix_text`).

use crate::engine::diagnose::Report;
use crate::term::say;

/// The report as a JSON value.
pub fn render(report: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or(serde_json::Value::Null);
    let word = |findings: &mut serde_json::Value, source: &[crate::engine::diagnose::Finding]| {
        if let Some(list) = findings.as_array_mut() {
            for (obj, f) in list.iter_mut().zip(source) {
                obj["fix_text"] = f
                    .fix
                    .as_ref()
                    .map_or(serde_json::Value::Null, |r| say::remedy(r).into());
            }
        }
    };
    word(&mut v["findings"], &report.findings);
    for (i, s) in report.sections.iter().enumerate() {
        word(&mut v["sections"][i]["checks"], &s.checks);
    }
    v
}
