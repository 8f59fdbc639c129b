//! View 3: every segment in time order, filtered with `/` (text, status,
//! device or date).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{ms, window};
use crate::tui::app::App;

/// Draws the view.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.opts.theme;
    let z = &app.opts.zone;
    let rows = app.segment_rows();
    let title = if app.filter.is_empty() {
        format!(" Segments ({}) ", rows.len())
    } else {
        format!(" Segments matching \"{}\" ({}) ", app.filter, rows.len())
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height as usize;
    let first = window(app.row, rows.len(), height);
    app.hits.set(
        inner,
        (first..rows.len().min(first + height)).map(Some).collect(),
    );
    let heard = app.heard();
    let lines: Vec<Line> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, s)| {
            let style = super::segment_style(t, s, heard, i == app.row);
            Line::styled(
                format!(
                    "{:>6} {} {:>6} {:<8} {:<10.10} {}",
                    s.id,
                    z.full(s.start),
                    ms(s.end.since(s.start)),
                    s.status.as_str(),
                    s.device,
                    s.text.as_deref().unwrap_or("")
                ),
                style,
            )
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}
