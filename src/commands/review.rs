//! `omi-sync review` (and `omi-sync` alone on a terminal): the review TUI.

use std::io::IsTerminal;

use super::Context;
use crate::cli::GlobalArgs;
use crate::exit::{CommandResult, Failure};

/// Whether plain `omi-sync` should open the TUI: both ends are a terminal
/// and no machine-readable output was asked for.
pub fn on_a_terminal(global: &GlobalArgs) -> bool {
    !global.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// `omi-sync review`
pub fn run(ctx: &Context) -> CommandResult {
    crate::tui::run(&ctx.ws, ctx.cancel.clone()).map_err(Failure::from)
}
