//! Keys: what a key press means, with fixed defaults and remapping from
//! `[tui.keys]` in the config.
//!
//! Every key the TUI answers to is an [`Action`]. [`KeyMap::new`] starts
//! from the defaults of issue 13 (so scripted checks can drive any install)
//! and replaces the keys of each action the config names. Prompts answer
//! `y`/`n`, Enter and Esc whatever the map says.

use std::collections::BTreeMap;
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a key press asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The next view.
    NextView,
    /// The previous view.
    PreviousView,
    /// View 1: the timeline.
    ViewTimeline,
    /// View 2: the selected conversation.
    ViewConversation,
    /// View 3: every segment.
    ViewSegments,
    /// View 4: the push plan and outbox.
    ViewSync,
    /// View 5: devices and jobs.
    ViewDevice,
    /// Move up.
    Up,
    /// Move down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// The first row.
    Top,
    /// The last row.
    Bottom,
    /// Open the selection.
    Open,
    /// Go back (or close a prompt).
    Back,
    /// Merge the selected conversation with the next one.
    Merge,
    /// Split the conversation before the selected segment.
    Split,
    /// Undo the last edit.
    Undo,
    /// Redo the last undone edit.
    Redo,
    /// Play or stop.
    Play,
    /// Seek back 5 s.
    SeekBack,
    /// Seek forward 5 s.
    SeekForward,
    /// Push to the cloud (asks first).
    Push,
    /// Transcribe the selected conversation again.
    Retranscribe,
    /// Filter the list.
    Filter,
    /// Cancel the selected job.
    CancelJob,
    /// Retry the selected failed job.
    Retry,
    /// Help.
    Help,
    /// Quit.
    Quit,
    /// Zoom the time axis in.
    ZoomIn,
    /// Zoom the time axis out.
    ZoomOut,
    /// Write the selection as a WAV file.
    WriteWav,
    /// Import phone-app files.
    Import,
    /// Pull from a pendant, a card or the simulator.
    Pull,
    /// Read a pendant's status (fill, unread, clock).
    DeviceStatus,
    /// Transcribe everything pending.
    Transcribe,
}

impl Action {
    /// Every action, in the order help lists them.
    pub const ALL: [Action; 36] = [
        Action::NextView,
        Action::PreviousView,
        Action::ViewTimeline,
        Action::ViewConversation,
        Action::ViewSegments,
        Action::ViewSync,
        Action::ViewDevice,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Open,
        Action::Back,
        Action::Merge,
        Action::Split,
        Action::Undo,
        Action::Redo,
        Action::Play,
        Action::SeekBack,
        Action::SeekForward,
        Action::Push,
        Action::Retranscribe,
        Action::Filter,
        Action::CancelJob,
        Action::Retry,
        Action::Help,
        Action::Quit,
        Action::ZoomIn,
        Action::ZoomOut,
        Action::WriteWav,
        Action::Import,
        Action::Pull,
        Action::DeviceStatus,
        Action::Transcribe,
    ];

    /// The default keys (issue 13's list, and the few this TUI adds).
    fn defaults(self) -> &'static [&'static str] {
        match self {
            Action::NextView => &["tab"],
            Action::PreviousView => &["shift-tab"],
            Action::ViewTimeline => &["1"],
            Action::ViewConversation => &["2"],
            Action::ViewSegments => &["3"],
            Action::ViewSync => &["4"],
            Action::ViewDevice => &["5"],
            Action::Up => &["k", "up"],
            Action::Down => &["j", "down"],
            Action::PageUp => &["pageup", "ctrl-b"],
            Action::PageDown => &["pagedown", "ctrl-f"],
            Action::Top => &["home", "g"],
            Action::Bottom => &["end", "G"],
            Action::Open => &["enter"],
            Action::Back => &["esc"],
            Action::Merge => &["m"],
            Action::Split => &["s"],
            Action::Undo => &["u"],
            Action::Redo => &["ctrl-r"],
            Action::Play => &["space"],
            Action::SeekBack => &["left"],
            Action::SeekForward => &["right"],
            Action::Push => &["p"],
            Action::Retranscribe => &["r"],
            Action::Filter => &["/"],
            Action::CancelJob => &["x"],
            Action::Retry => &["R"],
            Action::Help => &["?", "f1"],
            Action::Quit => &["q", "ctrl-c"],
            Action::ZoomIn => &["+", "="],
            Action::ZoomOut => &["-"],
            Action::WriteWav => &["w"],
            Action::Import => &["i"],
            Action::Pull => &["P"],
            Action::DeviceStatus => &["f"],
            Action::Transcribe => &["t"],
        }
    }

    /// What it does, for help.
    pub fn describe(self) -> &'static str {
        match self {
            Action::NextView => "next view",
            Action::PreviousView => "previous view",
            Action::ViewTimeline => "timeline",
            Action::ViewConversation => "conversation",
            Action::ViewSegments => "segments",
            Action::ViewSync => "sync: push plan and outbox",
            Action::ViewDevice => "device and jobs",
            Action::Up => "move up",
            Action::Down => "move down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first",
            Action::Bottom => "last",
            Action::Open => "open",
            Action::Back => "back / cancel",
            Action::Merge => "merge with the next conversation",
            Action::Split => "split before this segment",
            Action::Undo => "undo the last edit",
            Action::Redo => "redo",
            Action::Play => "play / stop",
            Action::SeekBack => "back 5 s",
            Action::SeekForward => "forward 5 s",
            Action::Push => "push to the Omi cloud (asks first)",
            Action::Retranscribe => "transcribe again (pick the engine)",
            Action::Filter => "filter",
            Action::CancelJob => "cancel the selected job",
            Action::Retry => "retry the selected failed job",
            Action::Help => "help",
            Action::Quit => "quit",
            Action::ZoomIn => "zoom in",
            Action::ZoomOut => "zoom out",
            Action::WriteWav => "write a WAV file",
            Action::Import => "import phone-app files",
            Action::Pull => "pull a pendant, card or simulator",
            Action::DeviceStatus => "read a pendant's fill and clock",
            Action::Transcribe => "transcribe what is pending",
        }
    }
}

/// One key with its modifiers, as written in the config: `q`, `G`,
/// `ctrl-r`, `shift-tab`, `space`, `f1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeySpec {
    code: Code,
    ctrl: bool,
}

/// The key itself (letters keep their case: `G` is shift-g).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Code {
    Char(char),
    Named(Named),
    F(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Named {
    Tab,
    BackTab,
    Enter,
    Esc,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Backspace,
    Delete,
}

const NAMES: [(&str, Named); 14] = [
    ("tab", Named::Tab),
    ("shift-tab", Named::BackTab),
    ("enter", Named::Enter),
    ("esc", Named::Esc),
    ("up", Named::Up),
    ("down", Named::Down),
    ("left", Named::Left),
    ("right", Named::Right),
    ("pageup", Named::PageUp),
    ("pagedown", Named::PageDown),
    ("home", Named::Home),
    ("end", Named::End),
    ("backspace", Named::Backspace),
    ("delete", Named::Delete),
];

impl KeySpec {
    /// Parses `q`, `ctrl-r`, `shift-tab`, `space`, `f1`, ...
    pub fn parse(text: &str) -> Result<KeySpec, String> {
        let (ctrl, rest) = match text.strip_prefix("ctrl-") {
            Some(r) if !r.is_empty() => (true, r),
            _ => (false, text),
        };
        let code = if rest == "space" {
            Code::Char(' ')
        } else if let Some((_, n)) = NAMES.iter().find(|(name, _)| *name == rest) {
            Code::Named(*n)
        } else if let Some(n) = rest
            .strip_prefix('f')
            .and_then(|d| d.parse::<u8>().ok())
            .filter(|n| (1..=12).contains(n))
        {
            Code::F(n)
        } else {
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_control() => Code::Char(c),
                _ => {
                    return Err(format!(
                        "`{text}` is not a key (try `q`, `G`, `ctrl-r`, `shift-tab`, `space`, `enter`, `f1`)"
                    ));
                }
            }
        };
        Ok(KeySpec { code, ctrl })
    }

    /// The key of a crossterm key event, if it is one this map can name.
    pub fn of(ev: &KeyEvent) -> Option<KeySpec> {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        let code = match ev.code {
            KeyCode::Char(c) => Code::Char(c),
            KeyCode::Tab => Code::Named(Named::Tab),
            KeyCode::BackTab => Code::Named(Named::BackTab),
            KeyCode::Enter => Code::Named(Named::Enter),
            KeyCode::Esc => Code::Named(Named::Esc),
            KeyCode::Up => Code::Named(Named::Up),
            KeyCode::Down => Code::Named(Named::Down),
            KeyCode::Left => Code::Named(Named::Left),
            KeyCode::Right => Code::Named(Named::Right),
            KeyCode::PageUp => Code::Named(Named::PageUp),
            KeyCode::PageDown => Code::Named(Named::PageDown),
            KeyCode::Home => Code::Named(Named::Home),
            KeyCode::End => Code::Named(Named::End),
            KeyCode::Backspace => Code::Named(Named::Backspace),
            KeyCode::Delete => Code::Named(Named::Delete),
            KeyCode::F(n) => Code::F(n),
            _ => return None,
        };
        Some(KeySpec { code, ctrl })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("^")?;
        }
        match self.code {
            Code::Char(' ') => f.write_str("Space"),
            Code::Char(c) => write!(f, "{c}"),
            Code::F(n) => write!(f, "F{n}"),
            Code::Named(n) => f.write_str(match n {
                Named::Tab => "Tab",
                Named::BackTab => "S-Tab",
                Named::Enter => "Enter",
                Named::Esc => "Esc",
                Named::Up => "↑",
                Named::Down => "↓",
                Named::Left => "←",
                Named::Right => "→",
                Named::PageUp => "PgUp",
                Named::PageDown => "PgDn",
                Named::Home => "Home",
                Named::End => "End",
                Named::Backspace => "Bksp",
                Named::Delete => "Del",
            }),
        }
    }
}

impl TryFrom<String> for KeySpec {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        KeySpec::parse(&text)
    }
}

impl From<KeySpec> for String {
    fn from(k: KeySpec) -> String {
        let mut s = String::new();
        if k.ctrl {
            s.push_str("ctrl-");
        }
        match k.code {
            Code::Char(' ') => s.push_str("space"),
            Code::Char(c) => s.push(c),
            Code::F(n) => s.push_str(&format!("f{n}")),
            Code::Named(n) => s.push_str(
                NAMES
                    .iter()
                    .find(|(_, m)| *m == n)
                    .map_or("?", |(name, _)| name),
            ),
        }
        s
    }
}

impl Serialize for KeySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from(*self))
    }
}

impl JsonSchema for KeySpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KeySpec".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A key with its modifiers: `q`, `G`, `ctrl-r`, `shift-tab`, `space`, `f1`.",
            "minLength": 1
        })
    }
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KeySpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Which keys do what.
#[derive(Debug, Clone)]
pub struct KeyMap {
    by_key: BTreeMap<KeySpec, Action>,
    by_action: BTreeMap<Action, Vec<KeySpec>>,
}

impl KeyMap {
    /// The defaults, with the keys of each action in `remap` replaced.
    pub fn new(remap: &BTreeMap<Action, Vec<KeySpec>>) -> KeyMap {
        let mut by_action: BTreeMap<Action, Vec<KeySpec>> = Action::ALL
            .iter()
            .map(|a| {
                // Every default parses (tested below).
                let keys = a
                    .defaults()
                    .iter()
                    .filter_map(|k| KeySpec::parse(k).ok())
                    .collect();
                (*a, keys)
            })
            .collect();
        for (a, keys) in remap {
            // A key given to one action is taken from any other.
            for other in by_action.values_mut() {
                other.retain(|k| !keys.contains(k));
            }
            by_action.insert(*a, keys.clone());
        }
        let by_key = by_action
            .iter()
            .flat_map(|(a, keys)| keys.iter().map(move |k| (*k, *a)))
            .collect();
        KeyMap { by_key, by_action }
    }

    /// The action of a key event.
    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        // Shift is not part of a key: `G` is the letter's case, and
        // terminals differ on whether they also report SHIFT with it.
        self.by_key.get(&KeySpec::of(ev)?).copied()
    }

    /// The keys of an action, as help and the command bar show them
    /// (`j/↓`).
    pub fn label(&self, action: Action) -> String {
        self.by_action
            .get(&action)
            .map(|keys| {
                keys.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }

    /// The first key of an action (for the command bar).
    pub fn first(&self, action: Action) -> String {
        self.by_action
            .get(&action)
            .and_then(|k| k.first())
            .map(|k| k.to_string())
            .unwrap_or_else(|| "-".into())
    }
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap::new(&BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn the_defaults_are_the_issues_keys() {
        let m = KeyMap::default();
        let ch = |c| key(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(m.action(&ch('m')), Some(Action::Merge));
        assert_eq!(m.action(&ch('s')), Some(Action::Split));
        assert_eq!(m.action(&ch('u')), Some(Action::Undo));
        assert_eq!(
            m.action(&key(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Action::Redo)
        );
        assert_eq!(m.action(&ch('r')), Some(Action::Retranscribe));
        assert_eq!(m.action(&ch(' ')), Some(Action::Play));
        assert_eq!(m.action(&ch('3')), Some(Action::ViewSegments));
        assert_eq!(
            m.action(&key(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PreviousView)
        );
        assert_eq!(
            m.action(&key(KeyCode::Down, KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(m.action(&ch('G')), Some(Action::Bottom));
        assert_eq!(m.action(&ch('~')), None);
        assert_eq!(m.label(Action::Down), "j/↓");
        assert_eq!(m.label(Action::Redo), "^r");
    }

    #[test]
    fn remapping_replaces_an_actions_keys_and_frees_them_elsewhere() {
        let remap: BTreeMap<Action, Vec<KeySpec>> = [
            (Action::Merge, vec![KeySpec::parse("M").unwrap()]),
            (Action::Quit, vec![KeySpec::parse("m").unwrap()]),
        ]
        .into();
        let m = KeyMap::new(&remap);
        let ch = |c| key(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(m.action(&ch('M')), Some(Action::Merge));
        assert_eq!(m.action(&ch('m')), Some(Action::Quit));
        assert_eq!(m.action(&ch('q')), None, "q no longer quits");
    }

    #[test]
    fn every_default_parses_and_no_key_does_two_things() {
        let mut seen = std::collections::BTreeMap::new();
        for a in Action::ALL {
            for k in a.defaults() {
                let spec = KeySpec::parse(k).unwrap();
                assert_eq!(seen.insert(spec, a), None, "{k} is bound twice");
            }
        }
        let m = KeyMap::default();
        assert!(Action::ALL.iter().all(|a| !m.label(*a).is_empty()));
    }

    #[test]
    fn key_names_parse_and_print_back() {
        for k in [
            "q",
            "G",
            "ctrl-r",
            "shift-tab",
            "space",
            "f1",
            "pagedown",
            "/",
            "?",
        ] {
            let spec = KeySpec::parse(k).unwrap();
            assert_eq!(String::from(spec), k);
        }
        for bad in ["", "ctrl-", "qq", "f13", "hyper-x"] {
            assert!(KeySpec::parse(bad).is_err(), "{bad}");
        }
    }
}
