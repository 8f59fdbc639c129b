//! Colours: a dark theme, a light one, and none at all (`NO_COLOR`, or a
//! terminal without colours), where emphasis is bold, reverse and underline
//! only, so every state stays readable.

use ratatui::style::{Color, Modifier, Style};

use super::config::ThemeName;

/// The styles every view draws with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Ordinary text.
    pub text: Style,
    /// Secondary details.
    pub dim: Style,
    /// Titles and the view in focus.
    pub title: Style,
    /// The selected row.
    pub selected: Style,
    /// Good news (pushed, done).
    pub good: Style,
    /// Needs attention (held, 80 % full, estimated times).
    pub warn: Style,
    /// Failed, rejected, 95 % full.
    pub bad: Style,
    /// Keys in the command bar and help.
    pub key: Style,
    /// Speech on the time axis.
    pub speech: Style,
    /// Where the device recorded, without speech.
    pub recorded: Style,
    /// A conversation block on the axis.
    pub block: Style,
    /// The selected conversation's block.
    pub block_selected: Style,
    /// What is playing.
    pub playing: Style,
}

impl Theme {
    /// The theme named in the config; no colours when `no_color`.
    pub fn new(name: ThemeName, no_color: bool) -> Theme {
        if no_color {
            return Theme::mono();
        }
        let (fg, dim, accent, block) = match name {
            ThemeName::Dark => (Color::Gray, Color::DarkGray, Color::Cyan, Color::Blue),
            ThemeName::Light => (Color::Black, Color::Gray, Color::Blue, Color::LightBlue),
        };
        let s = Style::new();
        Theme {
            text: s.fg(fg),
            dim: s.fg(dim),
            title: s.fg(accent).add_modifier(Modifier::BOLD),
            selected: s.add_modifier(Modifier::REVERSED),
            good: s.fg(Color::Green),
            warn: s.fg(match name {
                ThemeName::Dark => Color::Yellow,
                ThemeName::Light => Color::Rgb(0x9a, 0x60, 0x00),
            }),
            bad: s.fg(Color::Red).add_modifier(Modifier::BOLD),
            key: s.fg(accent).add_modifier(Modifier::BOLD),
            speech: s.fg(Color::Green),
            recorded: s.fg(dim),
            block: s.fg(block),
            block_selected: s.fg(accent).add_modifier(Modifier::BOLD),
            playing: s.fg(Color::Magenta).add_modifier(Modifier::BOLD),
        }
    }

    /// No colours at all.
    pub fn mono() -> Theme {
        let s = Style::new();
        Theme {
            text: s,
            dim: s,
            title: s.add_modifier(Modifier::BOLD),
            selected: s.add_modifier(Modifier::REVERSED),
            good: s,
            warn: s.add_modifier(Modifier::BOLD),
            bad: s.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            key: s.add_modifier(Modifier::BOLD),
            speech: s,
            recorded: s,
            block: s,
            block_selected: s.add_modifier(Modifier::BOLD),
            playing: s.add_modifier(Modifier::UNDERLINED | Modifier::BOLD),
        }
    }

    /// Whether `NO_COLOR` asks for no colour (set and not empty).
    pub fn no_color_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }
}
