//! View 4: the push plan (exactly what would be sent: deletions first, what
//! each creation replaces, what is held and why), the outbox rows, and the
//! hourly budget.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::clock::UtcMillis;
use crate::engine::push::stage::{PushRequest, options};
use crate::engine::push::{CloudStatus, Retraction};
use crate::store::OutboxState;
use crate::tui::app::App;

/// Draws the view.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let [plan, outbox] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    draw_plan(f, plan, app);
    draw_outbox(f, outbox, app);
}

/// The plan's lines: deletions, then creations, then what is held.
fn plan_lines(app: &App) -> Vec<Line<'static>> {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let Some(snap) = &app.snap else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let pending_deletes = snap
        .outbox
        .iter()
        .filter(|r| r.state == OutboxState::DeletePending);
    for r in pending_deletes {
        lines.push(Line::styled(
            format!(
                "DELETE  cloud copy {} of {} (edited or transcribed again after it was pushed)",
                r.cloud_id.as_deref().unwrap_or("?"),
                r.push.conversation
            ),
            t.warn,
        ));
    }
    for r in &snap.retract {
        let line = match r {
            Retraction::Delete(id) => format!("DELETE  {id} (no longer on the timeline)"),
            Retraction::Supersede(id) => format!("DROP    {id} (never sent; edited away)"),
            Retraction::Hold(id) => {
                format!(
                    "HOLD    {id} (its speech vanished locally; kept in the cloud until you decide)"
                )
            }
            Retraction::Forget(id) => format!("FORGET  {id} (kept in the cloud, as you decided)"),
        };
        lines.push(Line::styled(line, t.warn));
    }
    let mut held = Vec::new();
    for c in &snap.cloud {
        let when = z.short(c.started_at);
        match &c.status {
            CloudStatus::New { replaces, .. } => lines.push(Line::styled(
                format!(
                    "CREATE  {} {when}{}",
                    c.conversation,
                    if replaces.is_empty() {
                        String::new()
                    } else {
                        format!(", replacing {}", replaces.join(", "))
                    }
                ),
                t.text,
            )),
            CloudStatus::Queued {
                attempts, retry_at, ..
            } => lines.push(Line::styled(
                format!(
                    "CREATE  {} {when} (queued, {attempts} attempts{})",
                    c.conversation,
                    retry_at
                        .as_ref()
                        .map(|r| format!(", next try {r}"))
                        .unwrap_or_default()
                ),
                t.text,
            )),
            CloudStatus::Held { hold } => held.push(Line::styled(
                format!(
                    "HELD    {} {when}: {}",
                    c.conversation,
                    crate::term::say::hold(hold)
                ),
                t.dim,
            )),
            CloudStatus::Rejected { message, .. } => held.push(Line::styled(
                format!("REFUSED {} {when}: {message}", c.conversation),
                t.bad,
            )),
            CloudStatus::Locked { message, .. } => held.push(Line::styled(
                format!("LOCKED  {} {when}: {message}", c.conversation),
                t.bad,
            )),
            CloudStatus::Confirming { .. } | CloudStatus::Pushed { .. } => {}
        }
    }
    lines.extend(held);
    if lines.is_empty() {
        lines.push(Line::styled(
            "Nothing to send: every conversation is in the cloud.",
            t.good,
        ));
    }
    lines
}

fn draw_plan(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let opts = options(app.workspace(), &PushRequest::default());
    let budget = app.snap.as_ref().map_or(String::new(), |s| {
        let now = UtcMillis::now();
        match s.limiter.writes.values().next() {
            Some(w) => {
                let left = w.remaining(&opts.limit, now);
                if left > 0 {
                    format!(
                        "{left} of {} requests left this window",
                        opts.limit.max_per_window
                    )
                } else {
                    match w.next_allowed_at(&opts.limit, now) {
                        Some(next) => format!(
                            "budget used up; the next slot opens at {}",
                            app.opts.zone.clock(next)
                        ),
                        None => "no budget: [cloud] pushes_per_hour allows nothing".to_string(),
                    }
                }
            }
            None => format!(
                "{} requests per window, none used",
                opts.limit.max_per_window
            ),
        }
    });
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Push plan, in send order (p pushes): {budget} "));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let lines = plan_lines(app);
    f.render_widget(Paragraph::new(lines).style(t.text), inner);
}

fn draw_outbox(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let Some(snap) = &app.snap else { return };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Outbox ({} rows) ", snap.outbox.len()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let mut lines = vec![Line::styled(
        format!(
            "{:<14} {:<14} {:>8} {:<15} {}",
            "conversation", "state", "attempts", "next try", "last error"
        ),
        t.title,
    )];
    lines.extend(
        snap.outbox
            .iter()
            .rev()
            .take(inner.height as usize)
            .map(|r| {
                Line::styled(
                    format!(
                        "{:<14.14} {:<14} {:>8} {:<15} {}",
                        r.push.conversation,
                        r.state.as_str(),
                        r.attempts,
                        r.retry_at.map(|at| z.short(at)).unwrap_or_default(),
                        r.last_error.as_deref().unwrap_or("")
                    ),
                    match r.state {
                        OutboxState::Rejected | OutboxState::Failed => t.bad,
                        OutboxState::Pushed => t.good,
                        _ => t.text,
                    },
                )
            }),
    );
    f.render_widget(Paragraph::new(lines), inner);
}
