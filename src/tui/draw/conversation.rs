//! View 2: one conversation: what it is and where it stands with the cloud,
//! a speech strip across its span, and its segments in order with the
//! silence between them; the longest silences are marked as split points.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::timeline::reason;
use super::{ms, window};
use crate::engine::push::CloudStatus;
use crate::timeline::{Conversation, Domain};
use crate::tui::app::App;

/// How many of the longest silences are offered as split points.
const SPLIT_POINTS: usize = 3;

/// One row of the segment list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Segment `i` of the conversation.
    Segment(usize),
    /// The silence before segment `i`, ms; `true` when it is a split point.
    Silence(usize, i64, bool),
}

fn rows(c: &Conversation) -> Vec<Row> {
    let gaps: Vec<(usize, i64)> = c
        .segments
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, w[1].start.since(w[0].end)))
        .collect();
    let mut longest = gaps.clone();
    longest.sort_by_key(|(_, g)| std::cmp::Reverse(*g));
    longest.truncate(SPLIT_POINTS);
    let mut out = Vec::with_capacity(c.segments.len() * 2);
    for i in 0..c.segments.len() {
        if let Some((_, g)) = i.checked_sub(1).and_then(|j| gaps.get(j)) {
            out.push(Row::Silence(i, *g, longest.iter().any(|(j, _)| *j == i)));
        }
        out.push(Row::Segment(i));
    }
    out
}

/// Draws the view.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let Some(c) = app.selected() else {
        f.render_widget(
            Paragraph::new("No conversation yet: the timeline (1) fills as audio is imported.")
                .style(t.dim)
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(" Conversation "),
                ),
            area,
        );
        return;
    };
    let [head, strip, list] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(3),
        Constraint::Min(3),
    ])
    .areas(area);
    draw_head(f, head, app, c);
    draw_strip(f, strip, app, c);
    draw_segments(f, list, app, c);
}

fn draw_head(f: &mut Frame, area: Rect, app: &App, c: &Conversation) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let status = app
        .snap
        .as_ref()
        .and_then(|s| s.cloud_of(&c.id))
        .map(|s| &s.status);
    let cloud = match status {
        None => "not planned".to_string(),
        Some(CloudStatus::Held { hold }) => crate::term::say::hold(hold),
        Some(CloudStatus::New { replaces, .. }) if !replaces.is_empty() => format!(
            "new text; the next push replaces the cloud copy {}",
            replaces.join(", ")
        ),
        Some(CloudStatus::New { .. }) => "new: the next push creates it".into(),
        Some(CloudStatus::Queued {
            attempts,
            last_error,
            ..
        }) => format!(
            "queued, {attempts} attempts{}",
            last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        ),
        Some(CloudStatus::Confirming { cloud_id, .. }) => {
            format!("sent as {cloud_id}; waiting for the cloud to finish processing it")
        }
        Some(CloudStatus::Pushed { cloud_id, .. }) => format!("pushed as {cloud_id}"),
        Some(CloudStatus::Rejected { message, .. }) => format!("rejected: {message}"),
        Some(CloudStatus::Locked { message, .. }) => {
            format!("locked in the cloud (needs you in the Omi app): {message}")
        }
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(format!("{}  ", c.id), t.title),
            Span::styled(
                format!(
                    "{} to {}  {}  {} segments  {} ({})",
                    z.full(c.started_at),
                    z.clock(c.finished_at),
                    ms(c.finished_at.since(c.started_at)),
                    c.members().count(),
                    c.device,
                    if c.domain == Domain::Wall {
                        "wall clock"
                    } else {
                        "estimated times"
                    }
                ),
                t.text,
            ),
        ]),
        Line::from(vec![
            Span::styled("cloud: ", t.dim),
            Span::styled(cloud, t.text),
        ]),
        Line::from(vec![
            Span::styled("starts: ", t.dim),
            Span::styled(reason(app.reasons.get(app.conv)), t.text),
        ]),
    ];
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Conversation "),
        ),
        area,
    );
}

/// Speech across the conversation's span, one block character per column;
/// the playing position is marked.
fn draw_strip(f: &mut Frame, area: Rect, app: &App, c: &Conversation) {
    let t = &app.opts.theme;
    let block = Block::default().borders(Borders::ALL).title(" Speech ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let cols = inner.width.max(1) as i64;
    let span = c.finished_at.since(c.started_at).max(1);
    let mut share = vec![0i64; cols as usize];
    for s in c.members() {
        let (a, b) = (s.start.since(c.started_at), s.end.since(c.started_at));
        for (i, x) in share.iter_mut().enumerate() {
            let (lo, hi) = (span * i as i64 / cols, span * (i as i64 + 1) / cols);
            *x += (b.min(hi) - a.max(lo)).max(0) * 8 / (hi - lo).max(1);
        }
    }
    let heard = app.heard();
    let mark = heard
        .and_then(|id| c.segments.iter().find(|s| s.holds(id)))
        .map(|s| (s.start.since(c.started_at) * cols / span) as usize);
    const BARS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
    let spans: Vec<Span> = share
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let style = if Some(i) == mark { t.playing } else { t.speech };
            Span::styled(BARS[(*x).clamp(0, 8) as usize], style)
        })
        .collect();
    f.render_widget(Line::from(spans), inner);
}

fn draw_segments(f: &mut Frame, area: Rect, app: &App, c: &Conversation) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Segments (s splits before the selected one) ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let all = rows(c);
    let height = inner.height as usize;
    let at = all
        .iter()
        .position(|r| *r == Row::Segment(app.seg))
        .unwrap_or(0);
    let first = window(at, all.len(), height);
    let heard = app.heard();
    let shown: Vec<Row> = all.into_iter().skip(first).take(height).collect();
    app.hits.set(
        inner,
        shown
            .iter()
            .map(|r| match r {
                Row::Segment(i) => Some(*i),
                Row::Silence(..) => None,
            })
            .collect(),
    );
    let lines: Vec<Line> = shown
        .iter()
        .map(|r| match *r {
            Row::Silence(_, gap, split) => Line::styled(
                format!(
                    "           {} silence {}{}",
                    if split { "◆" } else { "·" },
                    ms(gap),
                    if split {
                        "  (a split point: select the next segment, press s)"
                    } else {
                        ""
                    }
                ),
                if split { t.warn } else { t.dim },
            ),
            Row::Segment(i) => {
                let s = &c.segments[i];
                let style = super::segment_style(t, s, heard, i == app.seg);
                Line::styled(
                    format!(
                        "{} {:>6} {:<8} {}",
                        z.clock(s.start),
                        ms(s.end.since(s.start)),
                        s.status.as_str(),
                        s.text.as_deref().unwrap_or("")
                    ),
                    style,
                )
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}
