//! Which captures' audio files were freed, and why a free failed.
//!
//! Freeing a capture deletes its file under `captures/` and nothing else:
//! the capture's row, its segments, transcripts and words stay, so the
//! timeline, the outbox and a re-import of the same bytes (a duplicate by
//! its hash) all behave as before. What decides *when* a file may go is
//! `engine::janitor`; this module only records what happened.

use rusqlite::params;

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;

/// A capture's audio as the janitor left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioState {
    /// The capture.
    pub capture_id: i64,
    /// When its file was deleted, if it was.
    pub freed_at: Option<UtcMillis>,
    /// Why the last try to delete it failed, if it did (tried again next
    /// time).
    pub free_error: Option<String>,
}

impl LedgerReader {
    /// Every capture whose audio was freed or failed to be, by capture id.
    pub fn audio_states(&self) -> Result<Vec<AudioState>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, audio_freed_at_ms, free_error FROM captures \
                 WHERE audio_freed_at_ms IS NOT NULL OR free_error IS NOT NULL ORDER BY id",
            )
            .ctx("cannot read freed audio")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AudioState {
                    capture_id: r.get(0)?,
                    freed_at: r.get::<_, Option<i64>>(1)?.map(UtcMillis),
                    free_error: r.get(2)?,
                })
            })
            .ctx("cannot read freed audio")?;
        rows.collect::<Result<_, _>>()
            .ctx("cannot read freed audio")
    }

    /// When the capture's audio was freed (`None` while it is kept).
    pub fn audio_freed_at(&self, capture_id: i64) -> Result<Option<UtcMillis>, StoreError> {
        self.conn
            .query_row(
                "SELECT audio_freed_at_ms FROM captures WHERE id = ?1",
                [capture_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .ctx("cannot read freed audio")
            .map(|ms| ms.map(UtcMillis))
    }
}

impl Ledger {
    /// Records that the capture's file was deleted at `at`.
    pub fn mark_audio_freed(&self, capture_id: i64, at: UtcMillis) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE captures SET audio_freed_at_ms = ?2, free_error = NULL WHERE id = ?1",
                params![capture_id, at.0],
            )
            .ctx("cannot record freed audio")
            .map(drop)
    }

    /// Records why deleting the capture's file failed (tried again next
    /// time).
    pub fn mark_free_failed(&self, capture_id: i64, error: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE captures SET free_error = ?2 WHERE id = ?1",
                params![capture_id, error],
            )
            .ctx("cannot record a failed free")
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::ledger_with_capture;

    #[test]
    fn records_frees_and_failures() {
        let (_dir, ledger, id) = ledger_with_capture();
        assert_eq!(ledger.audio_freed_at(id).unwrap(), None);
        ledger.mark_free_failed(id, "permission denied").unwrap();
        assert_eq!(
            ledger.audio_states().unwrap(),
            vec![AudioState {
                capture_id: id,
                freed_at: None,
                free_error: Some("permission denied".into()),
            }]
        );
        ledger.mark_audio_freed(id, UtcMillis(7)).unwrap();
        let states = ledger.audio_states().unwrap();
        assert_eq!(states[0].freed_at, Some(UtcMillis(7)));
        assert_eq!(states[0].free_error, None, "a success clears the failure");
    }
}
