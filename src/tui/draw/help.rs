//! `?`: every key of the view in focus, then the keys that work everywhere.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::tui::app::{App, View};

/// Draws help over `area`.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let keys = &app.opts.keys;
    let mut lines = vec![Line::styled(format!("In {}:", app.view.title()), t.title)];
    lines.extend(app.view.actions().iter().map(|a| {
        Line::from(vec![
            Span::styled(format!("{:>12}  ", keys.label(*a)), t.key),
            Span::styled(a.describe(), t.text),
        ])
    }));
    lines.push(Line::styled("Everywhere:", t.title));
    let mut spans = Vec::new();
    for a in View::EVERYWHERE {
        spans.push(Span::styled(keys.label(a), t.key));
        spans.push(Span::styled(format!(" {}   ", a.describe()), t.text));
    }
    lines.push(Line::from(spans));
    let w = area.width.saturating_sub(4).min(72);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y,
        width: w,
        height: area.height,
    };
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.key)
                .title(" Keys (Esc or ? closes) "),
        ),
        popup,
    );
}
