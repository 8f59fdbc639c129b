//! The edit log in the ledger: merges and splits, with undo and redo.
//!
//! Each action (a merge or a split) holds one or more boundary overrides.
//! Undo marks the newest active action undone; redo re-activates the oldest
//! undone one; a new action discards whatever could still be redone. Undone
//! actions are therefore always a suffix of the log.

use rusqlite::params;

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;
use crate::timeline::{Boundary, Domain, Override};

/// What kind of edit an action was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// Conversations joined.
    Merge,
    /// A conversation split.
    Split,
}

impl EditKind {
    fn as_str(self) -> &'static str {
        match self {
            EditKind::Merge => "merge",
            EditKind::Split => "split",
        }
    }
}

/// Whether an action is in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditState {
    /// In effect.
    Active,
    /// Undone (can be redone).
    Undone,
}

/// One action of the edit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditAction {
    /// Ledger id.
    pub id: i64,
    /// Merge or split.
    pub kind: EditKind,
    /// What it did, in words.
    pub summary: String,
    /// When.
    pub created_at: UtcMillis,
    /// In effect or undone.
    pub state: EditState,
    /// The boundaries it forces.
    pub overrides: Vec<Override>,
}

impl LedgerReader {
    /// The whole log, oldest first.
    pub fn edit_log(&self) -> Result<Vec<EditAction>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, summary, created_at_ms, state FROM edit_actions ORDER BY id")
            .ctx("cannot read edit log")?;
        let actions = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .ctx("cannot read edit log")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot read edit log")?;
        let mut ov = self
            .conn
            .prepare("SELECT device, domain, anchor_ms, boundary FROM edit_overrides WHERE action_id = ?1 ORDER BY rowid")
            .ctx("cannot read edit log")?;
        actions
            .into_iter()
            .map(|(id, kind, summary, created, state)| {
                let kind = match kind.as_str() {
                    "merge" => EditKind::Merge,
                    "split" => EditKind::Split,
                    other => return Err(StoreError::Corrupt(format!("edit kind `{other}`"))),
                };
                let state = if state == "undone" {
                    EditState::Undone
                } else {
                    EditState::Active
                };
                let raw = ov
                    .query_map([id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .ctx("cannot read edit log")?
                    .collect::<Result<Vec<_>, _>>()
                    .ctx("cannot read edit log")?;
                let overrides = raw
                    .into_iter()
                    .map(|(device, domain, anchor, boundary)| {
                        Ok(Override {
                            device,
                            domain: Domain::parse(&domain).ok_or_else(|| {
                                StoreError::Corrupt(format!("edit domain `{domain}`"))
                            })?,
                            anchor: UtcMillis(anchor),
                            boundary: Boundary::parse(&boundary).ok_or_else(|| {
                                StoreError::Corrupt(format!("edit boundary `{boundary}`"))
                            })?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok(EditAction {
                    id,
                    kind,
                    summary,
                    created_at: UtcMillis(created),
                    state,
                    overrides,
                })
            })
            .collect()
    }

    /// The overrides in effect, in log order (later ones win).
    pub fn active_overrides(&self) -> Result<Vec<Override>, StoreError> {
        Ok(self
            .edit_log()?
            .into_iter()
            .filter(|a| a.state == EditState::Active)
            .flat_map(|a| a.overrides)
            .collect())
    }
}

impl Ledger {
    /// Appends an action to the log (discarding the redo history).
    pub fn record_edit(
        &mut self,
        kind: EditKind,
        summary: &str,
        overrides: &[Override],
    ) -> Result<i64, StoreError> {
        let tx = self.conn.transaction().ctx("cannot start transaction")?;
        tx.execute("DELETE FROM edit_actions WHERE state = 'undone'", [])
            .ctx("cannot discard redo history")?;
        tx.execute(
            "INSERT INTO edit_actions (kind, summary, created_at_ms) VALUES (?1, ?2, ?3)",
            params![kind.as_str(), summary, UtcMillis::now().0],
        )
        .ctx("cannot record edit")?;
        let id = tx.last_insert_rowid();
        for o in overrides {
            tx.execute(
                "INSERT INTO edit_overrides (action_id, device, domain, anchor_ms, boundary) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, o.device, o.domain.as_str(), o.anchor.0, o.boundary.as_str()],
            )
            .ctx("cannot record edit")?;
        }
        tx.commit().ctx("cannot commit edit")?;
        Ok(id)
    }

    /// Undoes the newest action in effect; `None` if there is nothing to undo.
    pub fn undo(&mut self) -> Result<Option<EditAction>, StoreError> {
        let log = self.edit_log()?;
        let Some(action) = log.into_iter().rev().find(|a| a.state == EditState::Active) else {
            return Ok(None);
        };
        self.conn
            .execute(
                "UPDATE edit_actions SET state = 'undone' WHERE id = ?1",
                [action.id],
            )
            .ctx("cannot undo")?;
        Ok(Some(EditAction {
            state: EditState::Undone,
            ..action
        }))
    }

    /// Redoes the oldest undone action; `None` if there is nothing to redo.
    pub fn redo(&mut self) -> Result<Option<EditAction>, StoreError> {
        let log = self.edit_log()?;
        let Some(action) = log.into_iter().find(|a| a.state == EditState::Undone) else {
            return Ok(None);
        };
        self.conn
            .execute(
                "UPDATE edit_actions SET state = 'active' WHERE id = ?1",
                [action.id],
            )
            .ctx("cannot redo")?;
        Ok(Some(EditAction {
            state: EditState::Active,
            ..action
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(anchor: i64, boundary: Boundary) -> Override {
        Override {
            device: "omi".into(),
            domain: Domain::Wall,
            anchor: UtcMillis(anchor),
            boundary,
        }
    }

    #[test]
    fn undo_redo_walk_the_log_and_new_edits_drop_redo() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        l.record_edit(
            EditKind::Merge,
            "merge a b",
            &[ov(1, Boundary::Join), ov(2, Boundary::Join)],
        )
        .unwrap();
        l.record_edit(EditKind::Split, "split 7", &[ov(3, Boundary::Split)])
            .unwrap();
        assert_eq!(l.active_overrides().unwrap().len(), 3);

        assert_eq!(l.undo().unwrap().unwrap().summary, "split 7");
        assert_eq!(l.active_overrides().unwrap().len(), 2);
        assert_eq!(l.undo().unwrap().unwrap().summary, "merge a b");
        assert!(l.undo().unwrap().is_none());
        assert!(l.active_overrides().unwrap().is_empty());

        assert_eq!(l.redo().unwrap().unwrap().summary, "merge a b");
        assert_eq!(
            l.active_overrides().unwrap(),
            vec![ov(1, Boundary::Join), ov(2, Boundary::Join)]
        );

        // A new edit: "split 7" can no longer be redone.
        l.record_edit(EditKind::Split, "split 9", &[ov(9, Boundary::Split)])
            .unwrap();
        assert!(l.redo().unwrap().is_none());
        let log = l.edit_log().unwrap();
        assert_eq!(
            log.iter().map(|a| a.summary.as_str()).collect::<Vec<_>>(),
            vec!["merge a b", "split 9"]
        );
    }

    #[test]
    fn the_log_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(dir.path()).unwrap();
            l.record_edit(EditKind::Split, "s", &[ov(5, Boundary::Split)])
                .unwrap();
            l.undo().unwrap();
        }
        let mut l = Ledger::open(dir.path()).unwrap();
        assert!(l.active_overrides().unwrap().is_empty());
        l.redo().unwrap();
        assert_eq!(l.active_overrides().unwrap(), vec![ov(5, Boundary::Split)]);
    }
}
