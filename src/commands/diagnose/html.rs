//! The HTML report (`--html FILE`): one self-contained page (inline CSS, an
//! inline SVG chart, no external asset, opens offline), in the manner of
//! `cargo build --timings`: the summary, the findings worst first with their
//! fixes, every section's checks with their detail, and the timeline chart
//! (recording coverage, holes, speech, conversations and the reason each
//! starts, estimated lanes apart). A small inline script records any script
//! error into the page (`data-errors` on `<body>`), for the headless test.

use std::fmt::Write;

use crate::clock::UtcMillis;
use crate::engine::diagnose::chart::{Chart, Lane, Span};
use crate::engine::diagnose::{Finding, Report, Severity};
use crate::term::say;

/// The chart's width, and the space for lane labels on its left.
const WIDTH: f64 = 1320.0;
const LABEL: f64 = 170.0;
/// One lane's height.
const LANE: f64 = 92.0;
/// Above this many conversations in a lane, reasons are tooltips only.
const LABELLED_CONVERSATIONS: usize = 40;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px 32px;color:#1d2330;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dce6;padding-bottom:4px}
.sub{color:#5a6275;margin:0 0 12px}
table{border-collapse:collapse;width:100%}td{padding:5px 8px;vertical-align:top;border-bottom:1px solid #eef0f5}
td.mark{width:28px;font-weight:700;text-align:center}td.where{color:#5a6275;width:28%;font-family:ui-monospace,monospace;font-size:13px}
.ok{color:#1a7f37}.warning{color:#9a6700}.problem{color:#cf222e}
.fix{color:#24467a;font-size:14px}.detail{color:#5a6275;font-size:13px;font-family:ui-monospace,monospace;white-space:pre-wrap;margin:2px 0 0}
details summary{cursor:pointer;color:#5a6275;font-size:13px}
.legend span{display:inline-block;margin-right:18px;font-size:13px}.legend i{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}svg .axis{stroke:#c9ced9}svg .tick{fill:#5a6275;font-size:11px}
";

const ERROR_PROBE: &str = "window.addEventListener('error',function(e){var b=document.body;var m=(b.getAttribute('data-errors')||'');b.setAttribute('data-errors',m+(e.message||'error')+';');});";

fn severity_class(s: Severity) -> &'static str {
    s.as_str()
}

fn mark(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "✓",
        Severity::Warning => "!",
        Severity::Problem => "✗",
    }
}

fn row(out: &mut String, f: &Finding, with_fix: bool) {
    let _ = write!(
        out,
        "<tr class=\"finding {cls}\" data-check=\"{check}\"><td class=\"mark {cls}\">{mark}</td><td>{what}",
        cls = severity_class(f.severity),
        check = escape(&f.check),
        mark = mark(f.severity),
        what = escape(&f.what)
    );
    if with_fix && let Some(fix) = &f.fix {
        let _ = write!(
            out,
            "<div class=\"fix\">fix: {}</div>",
            escape(&say::remedy(fix))
        );
    }
    if !with_fix && !f.detail.is_empty() {
        let _ = write!(
            out,
            "<details><summary>{} more line(s)</summary><pre class=\"detail\">{}</pre></details>",
            f.detail.len(),
            escape(&f.detail.join("\n"))
        );
    }
    let _ = writeln!(
        out,
        "</td><td class=\"where\">{}</td></tr>",
        escape(f.place.as_deref().unwrap_or(""))
    );
}

/// A tick every this many ms gives at most about a dozen ticks over `span`.
fn tick_step(span: i64) -> i64 {
    const STEPS: [i64; 12] = [
        60_000,
        300_000,
        900_000,
        1_800_000,
        3_600_000,
        7_200_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
        2_592_000_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 12)
        .unwrap_or(31_536_000_000)
}

struct Scale {
    start: i64,
    span: f64,
}

impl Scale {
    fn x(&self, t: i64) -> f64 {
        LABEL + (t - self.start) as f64 / self.span * (WIDTH - LABEL - 10.0)
    }

    fn w(&self, s: &Span) -> f64 {
        (self.x(s.end_ms) - self.x(s.start_ms)).max(1.0)
    }
}

fn rects(out: &mut String, scale: &Scale, spans: &[Span], y: f64, h: f64, class: &str, fill: &str) {
    for s in spans {
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{fill}\"><title>{class}: {} to {}</title></rect>",
            scale.x(s.start_ms),
            scale.w(s),
            UtcMillis(s.start_ms).to_rfc3339(),
            UtcMillis(s.end_ms).to_rfc3339()
        );
    }
}

fn lane(out: &mut String, scale: &Scale, l: &Lane, top: f64) {
    let label = if l.estimated {
        format!("{} (estimated times)", l.device)
    } else {
        l.device.clone()
    };
    let _ = write!(
        out,
        "<g class=\"lane{}\"><text x=\"4\" y=\"{:.1}\">{}</text>",
        if l.estimated { " estimated" } else { "" },
        top + 40.0,
        escape(&label)
    );
    if l.estimated {
        let _ = write!(
            out,
            "<rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#9a6700\" stroke-dasharray=\"5 4\"/>",
            top + 2.0,
            WIDTH - LABEL - 10.0,
            LANE - 8.0
        );
    }
    rects(
        out,
        scale,
        &l.recorded,
        top + 24.0,
        12.0,
        "recorded",
        "#9fd3a8",
    );
    rects(out, scale, &l.holes, top + 24.0, 12.0, "hole", "#f2b8b5");
    rects(out, scale, &l.speech, top + 40.0, 14.0, "speech", "#2f5fb3");
    let labelled = l.conversations.len() <= LABELLED_CONVERSATIONS;
    for c in &l.conversations {
        let s = Span {
            start_ms: c.start_ms,
            end_ms: c.end_ms,
        };
        let x = scale.x(c.start_ms);
        let _ = write!(
            out,
            "<rect class=\"conversation\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"#e08a1e\"><title>conversation {} ({} to {}), starts: {}</title></rect>\
             <line class=\"boundary\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8a4b00\"/>",
            top + 60.0,
            scale.w(&s),
            escape(&c.id),
            UtcMillis(c.start_ms).to_rfc3339(),
            UtcMillis(c.end_ms).to_rfc3339(),
            escape(&c.reason),
            top + 56.0,
            top + 74.0
        );
        if labelled {
            let _ = write!(
                out,
                "<text class=\"reason\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
                x + 2.0,
                top + 84.0,
                escape(&c.reason)
            );
        }
    }
    out.push_str("</g>");
}

/// The SVG timeline chart.
pub fn chart_svg(chart: &Chart) -> String {
    let span = (chart.end_ms - chart.start_ms).max(1);
    let scale = Scale {
        start: chart.start_ms,
        span: span as f64,
    };
    let height = 30.0 + LANE * chart.lanes.len() as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg id=\"timeline-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline\">"
    );
    let step = tick_step(span);
    let mut t = chart.start_ms.div_euclid(step) * step;
    while t <= chart.end_ms {
        if t >= chart.start_ms {
            let x = scale.x(t);
            let stamp = UtcMillis(t).to_rfc3339();
            let label = if step >= 86_400_000 {
                stamp.get(..10).unwrap_or(&stamp).to_string()
            } else {
                stamp.get(5..16).unwrap_or(&stamp).replace('T', " ")
            };
            let _ = write!(
                out,
                "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"18\" y2=\"{height}\"/><text class=\"tick\" x=\"{:.1}\" y=\"12\">{label}</text>",
                x + 2.0
            );
        }
        t += step;
    }
    for (i, l) in chart.lanes.iter().enumerate() {
        lane(&mut out, &scale, l, 22.0 + LANE * i as f64);
    }
    out.push_str("</svg>");
    out
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>omi-sync diagnose</title>\
         <style>{STYLE}</style><script>{ERROR_PROBE}</script></head><body>\n"
    );
    let _ = writeln!(
        out,
        "<h1>omi-sync diagnose</h1><p class=\"sub\">omi-sync {} · {} · {}{}</p>",
        escape(&report.omi_sync_version),
        escape(&report.generated_at),
        escape(&super::text::summary(report)),
        if report.redacted {
            " · redacted (pseudonyms for device ids and file names, ~ for home, no key)"
        } else {
            " · not redacted"
        }
    );
    for u in &report.unreadable {
        let _ = writeln!(
            out,
            "<p class=\"problem\">✗ could not read the {}: {}</p>",
            escape(&u.source.replace('_', " ")),
            escape(&u.error)
        );
    }
    if !report.findings.is_empty() {
        out.push_str("<h2>Needs attention, worst first</h2><table id=\"findings\">");
        for f in &report.findings {
            row(&mut out, f, true);
        }
        out.push_str("</table>\n");
    }
    if let Some(chart) = &report.chart {
        out.push_str(
            "<h2>Timeline</h2><p class=\"legend\">\
             <span><i style=\"background:#9fd3a8\"></i>recorded</span>\
             <span><i style=\"background:#f2b8b5\"></i>hole (not recording)</span>\
             <span><i style=\"background:#2f5fb3\"></i>speech</span>\
             <span><i style=\"background:#e08a1e\"></i>conversation (label: why it starts there)</span>\
             <span><i style=\"border:1px dashed #9a6700\"></i>estimated times</span></p>",
        );
        out.push_str(&chart_svg(chart));
        out.push('\n');
    }
    for s in &report.sections {
        let _ = write!(
            out,
            "<h2 id=\"section-{:?}\">{}</h2><table>",
            s.id,
            escape(&s.title)
        );
        for f in &s.checks {
            row(&mut out, f, false);
        }
        out.push_str("</table>\n");
    }
    out.push_str("<script>document.body.setAttribute('data-loaded','1');</script></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_ticks_stay_few() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        for span in [1i64, 59_000, 3_600_000, 36_000_000, 400 * 86_400_000] {
            let step = tick_step(span);
            assert!(span / step <= 12, "{span} {step}");
        }
    }
}
