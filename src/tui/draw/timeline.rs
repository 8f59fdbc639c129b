//! View 1: the time axis (lanes per device and clock, conversation blocks,
//! speech, where the pendant recorded and where it did not) over the list
//! of conversations.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{cloud_label, ms, window};
use crate::clock::UtcMillis;
use crate::timeline::{BoundaryReason, Conversation, Domain};
use crate::tui::app::{App, ZOOMS_MS};
use crate::tui::theme::Theme;

/// Draws the view.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let lanes = lanes(app);
    let axis_h = (lanes.len() as u16 + 3).min(area.height / 2).max(4);
    let [axis, list] =
        Layout::vertical([Constraint::Length(axis_h), Constraint::Min(3)]).areas(area);
    draw_axis(f, axis, app, &lanes);
    draw_list(f, list, app);
}

/// A lane: one device under one kind of clock.
type Lane = (String, Domain);

fn lanes(app: &App) -> Vec<Lane> {
    let mut out: Vec<Lane> = Vec::new();
    let mut add = |l: Lane| {
        if !out.contains(&l) {
            out.push(l);
        }
    };
    if let Some(s) = &app.snap {
        for c in &s.timeline.conversations {
            add((c.device.clone(), c.domain));
        }
        for r in &s.recorded {
            add((r.device.clone(), Domain::of(r.clock)));
        }
    }
    out.sort();
    out
}

/// Which glyph a column of a lane gets, strongest last.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Hole,
    Recorded,
    Block,
    Speech,
    SelectedBlock,
    SelectedSpeech,
}

fn glyph(t: &Theme, c: Cell) -> (&'static str, Style) {
    match c {
        Cell::Hole => (" ", t.dim),
        Cell::Recorded => ("·", t.recorded),
        Cell::Block => ("─", t.block),
        Cell::Speech => ("█", t.speech),
        Cell::SelectedBlock => ("━", t.block_selected),
        Cell::SelectedSpeech => ("█", t.block_selected),
    }
}

fn draw_axis(f: &mut Frame, area: Rect, app: &App, lanes: &[Lane]) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let span = ZOOMS_MS[app.zoom];
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Time axis: {} wide (+/- zoom) ", ms(span)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let label_w = 14u16.min(inner.width / 3);
    let cols = inner.width.saturating_sub(label_w).max(1) as i64;
    let centre = app.selected().map_or(UtcMillis(0), |c| {
        UtcMillis((c.started_at.0 + c.finished_at.0) / 2)
    });
    let t0 = centre.plus_ms(-span / 2);
    let per_col = (span / cols).max(1);
    let col_of = |at: UtcMillis| (at.since(t0) / per_col).clamp(-1, cols);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{:<w$}", z.date(t0), w = label_w as usize), t.dim),
        Span::styled(
            format!(
                "{:<half$}{:>half$}",
                z.clock(t0),
                z.clock(t0.plus_ms(span)),
                half = (cols / 2) as usize
            ),
            t.dim,
        ),
    ])];
    let t1 = t0.plus_ms(span);
    for lane in lanes {
        let mut cells = vec![Cell::Hole; cols as usize];
        let mut paint = |from: UtcMillis, to: UtcMillis, c: Cell| {
            if to < t0 || from > t1 {
                return;
            }
            let (a, b) = (col_of(from).max(0), col_of(to).min(cols - 1));
            for i in a..=b.max(a) {
                if let Some(x) = cells.get_mut(i as usize) {
                    *x = (*x).max(c);
                }
            }
        };
        if let Some(s) = &app.snap {
            for r in s
                .recorded
                .iter()
                .filter(|r| r.device == lane.0 && Domain::of(r.clock) == lane.1)
            {
                paint(r.start, r.end, Cell::Recorded);
            }
            for (i, c) in s.timeline.conversations.iter().enumerate() {
                if c.device != lane.0
                    || c.domain != lane.1
                    || c.finished_at < t0
                    || c.started_at > t1
                {
                    continue;
                }
                let sel = i == app.conv;
                paint(
                    c.started_at,
                    c.finished_at,
                    if sel {
                        Cell::SelectedBlock
                    } else {
                        Cell::Block
                    },
                );
                for seg in c.members() {
                    paint(
                        seg.start,
                        seg.end,
                        if sel {
                            Cell::SelectedSpeech
                        } else {
                            Cell::Speech
                        },
                    );
                }
            }
        }
        let name = format!(
            "{} {}",
            lane.0,
            if lane.1 == Domain::Wall {
                "wall"
            } else {
                "est."
            }
        );
        let mut spans = vec![Span::styled(
            format!("{:<w$.w$}", name, w = label_w as usize),
            if lane.1 == Domain::Wall {
                t.text
            } else {
                t.warn
            },
        )];
        spans.extend(cells.into_iter().map(|c| {
            let (g, s) = glyph(t, c);
            Span::styled(g, s)
        }));
        lines.push(Line::from(spans));
    }
    lines.push(Line::styled(
        "█ speech  ─ conversation  · recorded, no speech  blank: not recording",
        t.dim,
    ));
    f.render_widget(Paragraph::new(lines), inner);
}

/// Why a conversation starts, in a few words.
pub fn reason(r: Option<&BoundaryReason>) -> String {
    r.map_or_else(|| BoundaryReason::First.short(), BoundaryReason::short)
}

/// The first words of a conversation.
pub fn first_words(c: &Conversation) -> String {
    let text: Vec<&str> = c.members().filter_map(|s| s.text.as_deref()).collect();
    if text.is_empty() {
        return "(not transcribed)".into();
    }
    text.join(" ")
}

fn draw_list(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let convs = app.conversations();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Conversations ({}) ", convs.len()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let rows = inner.height.saturating_sub(1) as usize;
    let first = window(app.conv, convs.len(), rows);
    app.hits.set(
        Rect {
            y: inner.y + 1,
            height: rows as u16,
            ..inner
        },
        (first..convs.len().min(first + rows)).map(Some).collect(),
    );
    let mut lines = vec![Line::styled(
        format!(
            "{:<15} {:>8} {:>4} {:<18} {:<13} {}",
            "start", "length", "segs", "cloud", "why it starts", "first words"
        ),
        t.title,
    )];
    for (i, c) in convs.iter().enumerate().skip(first).take(rows) {
        let status = app
            .snap
            .as_ref()
            .and_then(|s| s.cloud_of(&c.id))
            .map(|s| &s.status);
        let (cloud, cloud_style) = cloud_label(t, status);
        let sel = i == app.conv;
        let row_style = |s: Style| if sel { s.patch(t.selected) } else { s };
        let est = if c.domain == Domain::Wall {
            t.text
        } else {
            t.warn
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<15} ", z.short(c.started_at)), row_style(est)),
            Span::styled(
                format!(
                    "{:>8} {:>4} ",
                    ms(c.finished_at.since(c.started_at)),
                    c.members().count()
                ),
                row_style(t.text),
            ),
            Span::styled(format!("{cloud:<18.18} "), row_style(cloud_style)),
            Span::styled(
                format!("{:<13.13} ", reason(app.reasons.get(i))),
                row_style(t.dim),
            ),
            Span::styled(first_words(c), row_style(t.text)),
        ]));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
