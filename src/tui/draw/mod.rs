//! Drawing: one frame of the [`App`], from its snapshot.
//!
//! The frame is a tab line, the view in focus, the status line and the
//! command bar (the main keys of the view, or of the prompt when one is
//! open). Help (`?`) and prompts are drawn over the view. Lists draw only
//! their visible rows ([`window`]), so a ledger of 10 000 segments costs
//! what a screenful costs. Below [`MIN_WIDTH`] x [`MIN_HEIGHT`] the frame is
//! one notice.

mod conversation;
mod device;
mod help;
mod segments;
mod sync;
mod timeline;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, Prompt, Tone, View};
use super::keys::Action;
use super::theme::Theme;
use crate::engine::push::CloudStatus;
use crate::timeline::{Segment, SegmentStatus};

/// The narrowest terminal the TUI draws in.
pub const MIN_WIDTH: u16 = 60;
/// The lowest.
pub const MIN_HEIGHT: u16 = 16;

/// Draws the whole frame.
pub fn frame(f: &mut Frame, app: &App) {
    let area = f.area();
    let t = &app.opts.theme;
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "The terminal is {}x{}; omi-sync review needs at least {MIN_WIDTH}x{MIN_HEIGHT}. Make it larger, or press q to quit.",
            area.width, area.height
        );
        f.render_widget(
            Paragraph::new(text).style(t.warn).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [tabs, body, status, bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(f, tabs, app);
    if app.snap.is_none() {
        draw_empty(f, body, app);
    } else {
        match app.view {
            View::Timeline => timeline::draw(f, body, app),
            View::Conversation => conversation::draw(f, body, app),
            View::Segments => segments::draw(f, body, app),
            View::Sync => sync::draw(f, body, app),
            View::Device => device::draw(f, body, app),
        }
    }
    draw_status(f, status, app);
    draw_bar(f, bar, app);
    if let Some(p) = &app.prompt {
        draw_prompt(f, body, app, p);
    }
    if app.help {
        help::draw(f, body, app);
    }
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let mut spans = vec![Span::styled(" omi-sync ", t.title)];
    for (i, v) in View::ALL.iter().enumerate() {
        let style = if *v == app.view { t.selected } else { t.dim };
        spans.push(Span::styled(format!(" {} {} ", i + 1, v.title()), style));
    }
    f.render_widget(Line::from(spans), area);
}

fn draw_empty(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let mut lines = vec![
        Line::styled("Nothing here yet.", t.title),
        Line::raw(""),
        Line::raw("This data directory has no ledger yet:"),
        Line::styled(format!("  {}", app.workspace().data_dir().display()), t.dim),
        Line::raw("Fill it with one of:"),
        Line::raw(""),
        Line::styled(
            "  omi-sync import ~/omi-backlog/*.bin    the phone app's files",
            t.text,
        ),
        Line::styled(
            "  omi-sync pull                          a pendant over Bluetooth",
            t.text,
        ),
        Line::styled(
            "  omi-sync --auto --source demo          the built-in demo",
            t.text,
        ),
        Line::raw(""),
        Line::styled(
            "This screen updates by itself as soon as there is something to show.",
            t.dim,
        ),
    ];
    if let Some(e) = &app.error {
        lines.push(Line::styled(
            format!("The ledger could not be read: {e}"),
            t.bad,
        ));
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" Timeline "))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let line = match (&app.status, &app.error) {
        (_, Some(e)) => Line::styled(format!(" the ledger could not be read: {e}"), t.bad),
        (Some((tone, text)), None) => Line::styled(format!(" {text}"), tone_style(t, *tone)),
        (None, None) => Line::styled(
            format!(" times in {}; ? lists every key", app.opts.zone.name()),
            t.dim,
        ),
    };
    f.render_widget(line, area);
}

fn tone_style(t: &Theme, tone: Tone) -> Style {
    match tone {
        Tone::Info => t.text,
        Tone::Warn => t.warn,
        Tone::Bad => t.bad,
    }
}

fn draw_bar(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let keys = &app.opts.keys;
    let pairs: Vec<(String, &str)> = match (&app.prompt, app.help) {
        (_, true) => vec![(keys.first(Action::Back), "close help")],
        (Some(Prompt::Filter), _) => vec![("Enter".into(), "keep"), ("Esc".into(), "clear")],
        (Some(Prompt::Retranscribe { .. }), _) => vec![
            ("j/k".into(), "pick"),
            ("Enter".into(), "start"),
            ("Esc".into(), "cancel"),
        ],
        (Some(_), _) => vec![("y".into(), "yes"), ("n/Esc".into(), "no")],
        (None, false) => app
            .view
            .main_actions()
            .iter()
            .map(|a| (keys.first(*a), short(*a)))
            .collect(),
    };
    let mut spans = Vec::new();
    for (k, what) in pairs {
        spans.push(Span::styled(format!(" {k}"), t.key));
        spans.push(Span::styled(format!(" {what} "), t.dim));
    }
    f.render_widget(Line::from(spans), area);
}

/// A one-word label for the command bar.
fn short(a: Action) -> &'static str {
    match a {
        Action::Open => "open",
        Action::Back => "back",
        Action::Merge => "merge",
        Action::Split => "split",
        Action::Undo => "undo",
        Action::Play => "play",
        Action::ZoomIn => "zoom",
        Action::Push => "push",
        Action::Retranscribe => "re-transcribe",
        Action::WriteWav => "wav",
        Action::Filter => "filter",
        Action::Transcribe => "transcribe",
        Action::CancelJob => "cancel job",
        Action::Help => "help",
        Action::Quit => "quit",
        other => other.describe(),
    }
}

fn draw_prompt(f: &mut Frame, body: Rect, app: &App, p: &Prompt) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let lines: Vec<Line> = match p {
        Prompt::Filter => vec![Line::from(vec![
            Span::styled("/", t.key),
            Span::styled(app.filter.clone(), t.text),
            Span::styled("▏", t.key),
        ])],
        Prompt::Merge { a, b, preview } => {
            let mut l = vec![
                Line::styled(format!("Merge {a} with {b}?"), t.title),
                Line::raw(format!(
                    "It makes one conversation of {} from {} to {} ({}).",
                    preview.conversations,
                    z.full(preview.started_at),
                    z.clock(preview.finished_at),
                    crate::term::duration(
                        preview.finished_at.since(preview.started_at) as f64 / 1000.0
                    )
                )),
            ];
            if preview.bridges_over_an_hour() {
                l.push(Line::styled(
                    format!(
                        "Warning: it bridges a silence of {}.",
                        crate::term::duration(preview.longest_gap_ms as f64 / 1000.0)
                    ),
                    t.warn,
                ));
            }
            l.push(Line::styled(
                "y merges, n leaves them apart (u undoes later)",
                t.dim,
            ));
            l
        }
        Prompt::Push { creates, deletes } => vec![
            Line::styled("Push to the Omi cloud?", t.title),
            Line::raw(format!(
                "{deletes} cloud copies deleted first, then {creates} conversations created."
            )),
            Line::styled("y sends, n does nothing (4 shows the plan)", t.dim),
        ],
        Prompt::Retranscribe {
            conversation,
            choice,
        } => {
            let mut l = vec![Line::styled(
                format!("Transcribe {conversation} again with:"),
                t.title,
            )];
            for (i, e) in super::app::ENGINES.iter().enumerate() {
                let style = if i == *choice { t.selected } else { t.text };
                l.push(Line::styled(format!("  {}  ", e.name()), style));
            }
            l
        }
    };
    let h = (lines.len() as u16 + 2).min(body.height);
    let area = Rect {
        x: body.x + 2,
        y: body.bottom().saturating_sub(h),
        width: body.width.saturating_sub(4),
        height: h,
    };
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).border_style(t.key)),
        area,
    );
}

/// The first item to draw so that `selected` is visible in `height` rows
/// (the window scrolls only when the selection leaves it).
pub fn window(selected: usize, len: usize, height: usize) -> usize {
    if height == 0 || len <= height {
        return 0;
    }
    let half = height / 2;
    selected.saturating_sub(half).min(len - height)
}

/// How a segment's row looks: by its status, marked while it plays and
/// when it is the selected row.
pub fn segment_style(t: &Theme, s: &Segment, heard: Option<i64>, selected: bool) -> Style {
    let mut style = match s.status {
        SegmentStatus::Speech => t.text,
        SegmentStatus::Failed => t.bad,
        _ => t.dim,
    };
    if heard.is_some_and(|id| s.holds(id)) {
        style = style.patch(t.playing);
    }
    if selected {
        style = style.patch(t.selected);
    }
    style
}

/// A conversation's cloud state in a few words, and how to style it.
pub fn cloud_label(t: &Theme, status: Option<&CloudStatus>) -> (String, Style) {
    match status {
        None => ("-".into(), t.dim),
        Some(CloudStatus::Held { hold }) => (held_short(hold), t.warn),
        Some(CloudStatus::New { replaces, .. }) if !replaces.is_empty() => {
            (format!("replaces {}", replaces.len()), t.warn)
        }
        Some(CloudStatus::New { .. }) => ("new".into(), t.text),
        Some(CloudStatus::Queued { attempts, .. }) => (format!("queued ({attempts})"), t.text),
        Some(CloudStatus::Confirming { .. }) => ("confirming".into(), t.text),
        Some(CloudStatus::Pushed { .. }) => ("pushed".into(), t.good),
        Some(CloudStatus::Rejected { .. }) => ("rejected".into(), t.bad),
        Some(CloudStatus::Locked { .. }) => ("locked".into(), t.bad),
    }
}

fn held_short(hold: &crate::engine::push::Hold) -> String {
    use crate::engine::push::Hold;
    match hold {
        Hold::EstimatedTime { .. } => "held: est. time".into(),
        Hold::WaitingForTranscription { pending } => format!("held: {pending} untranscribed"),
        Hold::TranscriptionFailed { failed } => format!("held: {failed} failed"),
        Hold::NoText => "held: no text".into(),
        Hold::Invalid { .. } => "held: invalid".into(),
        Hold::OverlapsVanished { .. } => "held: overlaps vanished".into(),
    }
}

/// A duration in ms as a person reads it.
pub fn ms(ms: i64) -> String {
    crate::term::duration(ms as f64 / 1000.0)
}

#[cfg(test)]
mod render_tests;

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn the_window_follows_the_selection() {
        assert_eq!(window(0, 5, 10), 0);
        assert_eq!(window(3, 100, 10), 0);
        assert_eq!(window(50, 100, 10), 45);
        assert_eq!(window(99, 100, 10), 90);
        assert_eq!(window(7, 100, 0), 0);
    }
}
