//! This install of omi-sync, as the cloud's `client_device_id` names it.
//!
//! Upstream means by `client_device_id` the capturing app install, shaped
//! `{platform}_{first 8 hex of sha256(install id)}`. omi-sync draws a
//! random install id once and keeps it in the ledger's `meta`, so it is
//! stable for as long as the data directory lives. The pendant's own id is
//! not sent there: it stays in the timeline, the outbox and the reports.

use crate::cloud::payload;
use crate::store::{Ledger, LedgerReader, StoreError};

/// The `meta` key of the install id.
const INSTALL_KEY: &str = "install.id";

/// The install id kept in the ledger, if one was drawn.
fn stored_install_id(ledger: &LedgerReader) -> Result<Option<String>, StoreError> {
    Ok(ledger.meta(INSTALL_KEY)?.filter(|id| !id.trim().is_empty()))
}

/// A new random install id.
fn draw_install_id() -> String {
    let mut rng = fastrand::Rng::new();
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

/// This install's random id, drawn (and stored) on first use.
pub fn install_id(ledger: &Ledger) -> Result<String, StoreError> {
    if let Some(id) = stored_install_id(ledger)? {
        return Ok(id);
    }
    let id = draw_install_id();
    ledger.set_meta(INSTALL_KEY, &id)?;
    Ok(id)
}

/// This install's `client_device_id`, e.g. `linux_1a2b3c4d`.
pub fn client_device_id(ledger: &Ledger) -> Result<String, StoreError> {
    Ok(payload::client_device_id(
        std::env::consts::OS,
        &install_id(ledger)?,
    ))
}

/// The `client_device_id` a dry run shows, writing nothing: the stored
/// install's, or (before the first real push has drawn one) a freshly drawn
/// one that is not kept, so the real push will draw its own.
pub fn client_device_id_unsaved(ledger: &LedgerReader) -> Result<String, StoreError> {
    let id = stored_install_id(ledger)?.unwrap_or_else(draw_install_id);
    Ok(payload::client_device_id(std::env::consts::OS, &id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_id_is_drawn_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        let a = client_device_id(&l).unwrap();
        assert!(a.starts_with(&format!("{}_", std::env::consts::OS)), "{a}");
        drop(l);
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(client_device_id(&l).unwrap(), a, "stable across opens");
        let other = tempfile::tempdir().unwrap();
        let l2 = Ledger::open(other.path()).unwrap();
        assert_ne!(
            client_device_id(&l2).unwrap(),
            a,
            "another install, another id"
        );
    }

    #[test]
    fn the_unsaved_id_writes_nothing_and_is_the_stored_one_once_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        let shown = client_device_id_unsaved(&l).unwrap();
        assert!(
            shown.starts_with(&format!("{}_", std::env::consts::OS)),
            "{shown}"
        );
        assert_eq!(l.meta(INSTALL_KEY).unwrap(), None, "nothing was stored");
        let kept = client_device_id(&l).unwrap();
        assert_eq!(client_device_id_unsaved(&l).unwrap(), kept);
    }
}
