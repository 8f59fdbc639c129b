//! View 5: what the ledger holds from each device (where each pull stands,
//! who holds the data directory now) and the jobs started here, with
//! progress, rate, ETA, the pendant link, and their outcome.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::window;
use crate::engine::events::Unit;
use crate::tui::app::{App, JobRow, JobState};

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
