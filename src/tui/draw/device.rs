//! View 5: what the ledger holds from each device (where each pull stands,
//! what the pendant last said about itself: fill level, unread, dropped,
//! clock and its skew, and when; who holds the data directory now) and the
//! jobs started here, with progress, rate, ETA, the pendant link, and their
//! outcome.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::window;
use crate::clock::UtcMillis;
use crate::device::fill::FillLevel;
use crate::engine::events::Unit;
use crate::store::DeviceReport;
use crate::tui::app::{App, JobRow, JobState};
use crate::tui::theme::Theme;
use crate::tui::zone::Zone;

/// Draws the view.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let [devices, jobs] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    draw_devices(f, devices, app);
    draw_jobs(f, jobs, app);
}

fn draw_devices(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let Some(snap) = &app.snap else { return };
    let o = &snap.overview;
    let mut lines = vec![Line::styled(
        format!(
            "{} captures, {} of audio; {} segments: {} with words, {} silent, {} failed, {} waiting",
            o.captures,
            crate::term::duration(o.audio_s),
            o.segments,
            o.speech,
            o.silent,
            o.failed,
            o.pending
        ),
        t.text,
    )];
    for r in &snap.rings {
        lines.push(Line::styled(
            format!(
                "{}{}: everything before record {} is here (last moved {})",
                r.device,
                r.ring_id
                    .as_ref()
                    .map(|id| format!(" ring {id}"))
                    .unwrap_or_default(),
                r.durable_seq,
                z.full(r.updated_at)
            ),
            t.text,
        ));
    }
    for d in &snap.devices {
        lines.extend(report_lines(d, snap.taken_at, t, z));
    }
    for h in &snap.holders {
        lines.push(Line::styled(
            format!("busy: process {} holds {:?} ({})", h.pid, h.section, h.note),
            t.warn,
        ));
    }
    lines.push(Line::styled(
        "t transcribes what is waiting; pull (pendant, card, simulator) and import run as `omi-sync pull` / `omi-sync import` beside this screen, which follows them live.",
        t.dim,
    ));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(" Devices ")),
        area,
    );
}

/// The word for a fill level, so it reads without colour too.
fn fill_word(level: FillLevel) -> &'static str {
    match level {
        FillLevel::Ok => "ok",
        FillLevel::Warning => "WARNING: pull soon",
        FillLevel::Problem => "PROBLEM: about to overwrite unread audio",
    }
}

/// Two lines on what a pendant last said about itself, seen at `now`: its
/// fill level (styled and worded by [`FillLevel`]), unread, dropped; its
/// clock, the skew estimate and when it was read.
pub fn report_lines(d: &DeviceReport, now: UtcMillis, t: &Theme, z: &Zone) -> [Line<'static>; 2] {
    let level = d.fill_level();
    let style = match level {
        FillLevel::Ok => t.text,
        FillLevel::Warning => t.warn,
        FillLevel::Problem => t.bad,
    };
    let clock = match d.clock_valid() {
        Some(true) if d.clock_written => "clock set (by the pull)",
        Some(true) => "clock set",
        Some(false) => "clock NOT set",
        None => "clock unknown",
    };
    [
        Line::styled(
            format!(
                "{}: {:.0} % full ({}), {} of {} records unread, {} dropped",
                d.device,
                d.fill_percent(),
                fill_word(level),
                d.unread(),
                d.info.capacity,
                d.info.dropped
            ),
            style,
        ),
        Line::styled(
            format!(
                "· {clock}; skew {}; read {} ({})",
                d.skew().brief(),
                z.short(d.read_at),
                d.age(now)
            ),
            if d.clock_valid() == Some(false) {
                t.warn
            } else {
                t.dim
            },
        ),
    ]
}

/// One line on a job.
pub fn job_line(j: &JobRow) -> String {
    let stage = j.stage.map_or("starting", |s| s.label());
    let progress = match (j.unit, j.total) {
        (Some(Unit::Bytes), total) if total > 0 => format!(
            "{}/{} kB, {:.1} kB/s",
            j.done / 1000,
            total / 1000,
            j.rate() / 1000.0
        ),
        (Some(u), total) if total > 0 => format!("{}/{} {}", j.done, total, u.label()),
        _ => String::new(),
    };
    let eta = j
        .eta()
        .map(|s| format!(", ETA {}", crate::term::duration(s)))
        .unwrap_or_default();
    let state = match &j.state {
        JobState::Running => format!("{stage} {progress}{eta}"),
        JobState::Done(line) => format!("done: {line}"),
        JobState::Failed(e) => format!("FAILED: {e} (R retries)"),
        JobState::Cancelled => "stopped on request".into(),
    };
    let link = j
        .link
        .as_ref()
        .map(|l| format!(" [{l}]"))
        .unwrap_or_default();
    format!(
        "#{:<3} {:<11} {state}{link}",
        j.id.0,
        format!("{:?}", j.kind)
    )
}

fn draw_jobs(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Jobs started here (x cancels the selected one) ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    if app.jobs.is_empty() {
        f.render_widget(Paragraph::new("No jobs yet.").style(t.dim), inner);
        return;
    }
    let height = inner.height as usize;
    let first = window(app.job, app.jobs.len(), height);
    app.hits.set(
        inner,
        (first..app.jobs.len().min(first + height))
            .map(Some)
            .collect(),
    );
    let lines: Vec<Line> = app
        .jobs
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, j)| {
            let mut style = match j.state {
                JobState::Failed(_) => t.bad,
                JobState::Done(_) => t.good,
                _ => t.text,
            };
            if i == app.job {
                style = style.patch(t.selected);
            }
            Line::styled(job_line(j), style)
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::sample_device_report;

    #[test]
    fn a_fill_level_is_coloured_by_the_theme_and_worded_without_colour() {
        let mut d = sample_device_report();
        let z = Zone::utc();
        let colour = Theme::new(Default::default(), false);
        for (unread, word, style) in [
            (100, "(ok)", colour.text),
            (850, "WARNING", colour.warn),
            (960, "PROBLEM", colour.bad),
        ] {
            d.unread_after = Some(unread);
            let [fill, _] = report_lines(&d, d.read_at, &colour, &z);
            assert_eq!(fill.style, style, "{unread}");
            let [mono, _] = report_lines(&d, d.read_at, &Theme::mono(), &z);
            assert!(mono.to_string().contains(word), "{mono}");
        }
        d.status = d.status.map(|s| crate::device::ring::StorageStatus {
            clock_valid: false,
            ..s
        });
        let [_, clock] = report_lines(&d, d.read_at, &colour, &z);
        assert!(clock.to_string().contains("clock NOT set"), "{clock}");
        assert_eq!(clock.style, colour.warn);
    }
}
