//! `[tui]` in the config file: the theme, the mouse, and key remapping.
//!
//! ```toml
//! [tui]
//! theme = "light"      # "dark" (the default) or "light"; NO_COLOR turns colour off
//! mouse = false        # click to select, wheel to scroll (default true)
//!
//! [tui.keys]
//! merge = ["M"]        # an action's keys replace its defaults
//! quit = ["q", "ctrl-q"]
//! ```
//!
//! Action names are those of [`Action`] in snake_case (`next_view`,
//! `merge`, `split`, `undo`, `redo`, `play`, `push`, `retranscribe`, ...);
//! an unknown action or key is an error naming the config file and line.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::keys::{Action, KeySpec};

/// Dark or light terminal background.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThemeName {
    /// Light text on a dark background.
    #[default]
    Dark,
    /// Dark text on a light background.
    Light,
}

/// The `[tui]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct TuiConfig {
    /// The colours.
    pub theme: ThemeName,
    /// Whether the mouse selects and scrolls.
    pub mouse: bool,
    /// Keys per action, replacing the defaults of the actions named.
    pub keys: BTreeMap<Action, Vec<KeySpec>>,
}

impl Default for TuiConfig {
    fn default() -> Self {
        TuiConfig {
            theme: ThemeName::Dark,
            mouse: true,
            keys: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_tui_table_parses_and_bad_keys_name_the_line() {
        let c = Config::parse(
            "[tui]\ntheme = \"light\"\nmouse = false\n[tui.keys]\nmerge = [\"M\"]\nredo = [\"ctrl-y\"]\n",
        )
        .unwrap();
        assert_eq!(c.tui.theme, super::ThemeName::Light);
        assert!(!c.tui.mouse);
        assert_eq!(c.tui.keys.len(), 2);
        let e = Config::parse("[tui.keys]\nmerge = [\"hyper-m\"]\n")
            .unwrap_err()
            .to_string();
        eprintln!("{e}");
        assert!(e.contains("hyper-m") && e.contains("tui.keys.merge"), "{e}");
        let e = Config::parse("[tui.keys]\nfly = [\"f\"]\n")
            .unwrap_err()
            .to_string();
        eprintln!("{e}");
        assert!(e.contains("fly"), "{e}");
        assert!(Config::parse("[tui]\ntheme = \"pink\"\n").is_err());
    }
}
