//! The outbox in the ledger: conversations queued for the cloud, and their fate.
//!
//! A row is keyed by the conversation's `client_session_id` (derived from its
//! member segments), so the same conversation can never be queued twice. Its
//! state moves:
//!
//! ```text
//! pending ─▶ sending ─▶ pushed ─(edited after push)─▶ delete_pending ─▶ deleted
//!    ▲          │
//!    └─ retry ──┤──▶ rejected (the server refused the request itself)
//!               └──▶ failed   (temporary failures went on too long; retried next run)
//! pending/rejected/failed ─(edited before push)─▶ superseded
//! ```
//!
//! A conversation retracted and later wanted again (an undo after a push) is
//! queued under a new generation of its id (`<id>.2`, `<id>.3`, …), because
//! the cloud keeps answering a used id with the conversation it first made.
//!
//! `sending` is written before the request goes out: after a crash, such a
//! row is sent again with the same session id, which the cloud answers with
//! the conversation it already has, so nothing is created twice.

use rusqlite::{OptionalExtension, Row, params};

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;

/// Where a queued conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (at `retry_at`, if set).
    Pending,
    /// A request was (maybe) sent; its answer was not recorded yet.
    Sending,
    /// In the cloud, as `cloud_id`.
    Pushed,
    /// The server refused the request; `last_error` says why.
    Rejected,
    /// Temporary failures went on too long; tried again on the next run.
    Failed,
    /// Edited before it was pushed: never to be sent.
    Superseded,
    /// Edited after it was pushed: the cloud copy is to be deleted.
    DeletePending,
    /// The cloud copy was deleted.
    Deleted,
}

impl OutboxState {
    /// The ledger name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Pushed => "pushed",
            OutboxState::Rejected => "rejected",
            OutboxState::Failed => "failed",
            OutboxState::Superseded => "superseded",
            OutboxState::DeletePending => "delete_pending",
            OutboxState::Deleted => "deleted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            OutboxState::Pending,
            OutboxState::Sending,
            OutboxState::Pushed,
            OutboxState::Rejected,
            OutboxState::Failed,
            OutboxState::Superseded,
            OutboxState::DeletePending,
            OutboxState::Deleted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether this row was retracted (edited away, its cloud copy deleted or
    /// to be deleted): the same segments pushed again need a new id.
    pub fn is_retired(self) -> bool {
        matches!(
            self,
            OutboxState::Superseded | OutboxState::DeletePending | OutboxState::Deleted
        )
    }

    /// Whether the row still has a request to send, in this run or a later
    /// one: a create not confirmed yet, or a delete of a replaced copy.
    pub fn needs_sending(self) -> bool {
        matches!(
            self,
            OutboxState::Pending
                | OutboxState::Sending
                | OutboxState::Failed
                | OutboxState::DeletePending
        )
    }

    /// Whether the conversation may exist in the cloud in this state.
    pub fn may_be_in_cloud(self) -> bool {
        matches!(
            self,
            OutboxState::Sending | OutboxState::Pushed | OutboxState::DeletePending
        )
    }
}

/// A conversation to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPush {
    /// Its `client_session_id`.
    pub session_id: String,
    /// The timeline's id for it (for people).
    pub conversation: String,
    /// The recording device.
    pub device: String,
    /// Keys of its member segments.
    pub members: Vec<String>,
    /// Start.
    pub started_at: UtcMillis,
    /// End.
    pub finished_at: UtcMillis,
    /// Transcript segments in the request.
    pub segments: u32,
    /// The exact JSON body to send (never holds the key).
    pub request: String,
}

/// A row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// What was queued.
    pub push: NewPush,
    /// Where it stands.
    pub state: OutboxState,
    /// Requests sent for it so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub retry_at: Option<UtcMillis>,
    /// Its id in the cloud, once pushed.
    pub cloud_id: Option<String>,
    /// The last failure or refusal.
    pub last_error: Option<String>,
    /// Last change.
    pub updated_at: UtcMillis,
}

const COLUMNS: &str = "session_id, conversation, device, members, started_at_ms, finished_at_ms, segments, \
     request, state, attempts, retry_at_ms, cloud_id, last_error, updated_at_ms";

fn row_from(r: &Row<'_>) -> rusqlite::Result<Result<OutboxRow, StoreError>> {
    let members: String = r.get(3)?;
    let state: String = r.get(8)?;
    let (Ok(members), Some(state)) = (
        serde_json::from_str::<Vec<String>>(&members),
        OutboxState::parse(&state),
    ) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "outbox row state `{state}` / members"
        ))));
    };
    Ok(Ok(OutboxRow {
        push: NewPush {
            session_id: r.get(0)?,
            conversation: r.get(1)?,
            device: r.get(2)?,
            members,
            started_at: UtcMillis(r.get(4)?),
            finished_at: UtcMillis(r.get(5)?),
            segments: r.get::<_, i64>(6)? as u32,
            request: r.get(7)?,
        },
        state,
        attempts: r.get::<_, i64>(9)? as u32,
        retry_at: r.get::<_, Option<i64>>(10)?.map(UtcMillis),
        cloud_id: r.get(11)?,
        last_error: r.get(12)?,
        updated_at: UtcMillis(r.get(13)?),
    }))
}

impl LedgerReader {
    /// Every outbox row, oldest conversation first.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM outbox ORDER BY started_at_ms, session_id"
            ))
            .ctx("cannot read the outbox")?;
        let rows = stmt
            .query_map([], row_from)
            .ctx("cannot read the outbox")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot read the outbox")?;
        rows.into_iter().collect()
    }

    /// The row for a session id.
    pub fn outbox_row(&self, session_id: &str) -> Result<Option<OutboxRow>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM outbox WHERE session_id = ?1"),
                [session_id],
                row_from,
            )
            .optional()
            .ctx("cannot read the outbox")?
            .transpose()
    }
}

impl Ledger {
    /// Queues a conversation; a no-op (returning `false`) if it is queued already.
    pub fn enqueue_push(&self, push: &NewPush) -> Result<bool, StoreError> {
        let now = UtcMillis::now().0;
        let n = self
            .conn
            .execute(
                "INSERT INTO outbox (session_id, conversation, device, members, started_at_ms, finished_at_ms,
                     segments, request, state, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9)
                 ON CONFLICT (session_id) DO NOTHING",
                params![
                    push.session_id,
                    push.conversation,
                    push.device,
                    serde_json::to_string(&push.members).unwrap_or_default(),
                    push.started_at.0,
                    push.finished_at.0,
                    push.segments,
                    push.request,
                    now
                ],
            )
            .ctx("cannot queue a push")?;
        Ok(n == 1)
    }

    fn update_outbox(
        &self,
        session_id: &str,
        sql_set: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<(), StoreError> {
        let mut all: Vec<&dyn rusqlite::ToSql> = vec![&session_id];
        let now = UtcMillis::now().0;
        all.push(&now);
        all.extend_from_slice(values);
        let n = self
            .conn
            .execute(
                &format!("UPDATE outbox SET updated_at_ms = ?2, {sql_set} WHERE session_id = ?1"),
                all.as_slice(),
            )
            .ctx("cannot update the outbox")?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no outbox row {session_id}")));
        }
        Ok(())
    }

    /// Records that a request is about to go out (before it is sent).
    pub fn mark_sending(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'sending', attempts = attempts + 1",
            &[],
        )
    }

    /// Records the cloud's id: the conversation is in the cloud.
    pub fn mark_pushed(&self, session_id: &str, cloud_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'pushed', cloud_id = ?3, retry_at_ms = NULL, last_error = NULL",
            &[&cloud_id],
        )
    }

    /// Remembers the cloud's id without changing the state (learned while
    /// retracting a conversation whose first answer was lost).
    pub fn record_cloud_id(&self, session_id: &str, cloud_id: &str) -> Result<(), StoreError> {
        self.update_outbox(session_id, "cloud_id = ?3", &[&cloud_id])
    }

    /// Back to pending, not before `at`, with the reason.
    pub fn mark_retry(
        &self,
        session_id: &str,
        at: UtcMillis,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'pending', retry_at_ms = ?3, last_error = ?4",
            &[&at.0, &reason],
        )
    }

    /// The server refused the request.
    pub fn mark_rejected(&self, session_id: &str, message: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'rejected', last_error = ?3",
            &[&message],
        )
    }

    /// Temporary failures went on too long.
    pub fn mark_failed(&self, session_id: &str, message: &str) -> Result<(), StoreError> {
        self.update_outbox(session_id, "state = 'failed', last_error = ?3", &[&message])
    }

    /// Edited before it was pushed: never send it.
    pub fn mark_superseded(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(session_id, "state = 'superseded', retry_at_ms = NULL", &[])
    }

    /// Edited after it was pushed: delete the cloud copy.
    pub fn queue_delete(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'delete_pending', retry_at_ms = NULL, attempts = 0",
            &[],
        )
    }

    /// The cloud copy is gone.
    pub fn mark_deleted(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(session_id, "state = 'deleted', last_error = NULL", &[])
    }

    /// A delete failed for now: try again at `at`.
    pub fn delay_delete(
        &self,
        session_id: &str,
        at: UtcMillis,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "retry_at_ms = ?3, last_error = ?4",
            &[&at.0, &reason],
        )
    }

    /// Rows that failed in an earlier run get a fresh set of attempts.
    pub fn revive_failed_pushes(&self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, retry_at_ms = NULL WHERE state = 'failed'",
                [],
            )
            .ctx("cannot revive failed pushes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(id: &str) -> NewPush {
        NewPush {
            session_id: id.into(),
            conversation: "c1".into(),
            device: "omi".into(),
            members: vec!["k1".into(), "k2".into()],
            started_at: UtcMillis(1_000),
            finished_at: UtcMillis(2_000),
            segments: 2,
            request: "{}".into(),
        }
    }

    #[test]
    fn a_conversation_is_queued_once_and_walks_its_states() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        assert!(l.enqueue_push(&push("omisync-a")).unwrap());
        assert!(!l.enqueue_push(&push("omisync-a")).unwrap(), "queued twice");
        l.mark_sending("omisync-a").unwrap();
        l.mark_retry("omisync-a", UtcMillis(5_000), "HTTP 500")
            .unwrap();
        let r = l.outbox_row("omisync-a").unwrap().unwrap();
        assert_eq!(
            (r.state, r.attempts, r.retry_at),
            (OutboxState::Pending, 1, Some(UtcMillis(5_000)))
        );
        l.mark_sending("omisync-a").unwrap();
        l.mark_pushed("omisync-a", "cloud-1").unwrap();
        let r = l.outbox_row("omisync-a").unwrap().unwrap();
        assert_eq!(
            (r.state, r.attempts, r.cloud_id.as_deref()),
            (OutboxState::Pushed, 2, Some("cloud-1"))
        );
        assert_eq!(r.push.members, vec!["k1", "k2"]);
        l.queue_delete("omisync-a").unwrap();
        l.mark_deleted("omisync-a").unwrap();
        assert_eq!(
            l.outbox_row("omisync-a").unwrap().unwrap().state,
            OutboxState::Deleted
        );
        assert!(l.mark_pushed("omisync-missing", "x").is_err());
    }

    #[test]
    fn failed_rows_are_revived_with_fresh_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        l.enqueue_push(&push("omisync-b")).unwrap();
        l.mark_sending("omisync-b").unwrap();
        l.mark_failed("omisync-b", "gave up").unwrap();
        assert_eq!(l.revive_failed_pushes().unwrap(), 1);
        let r = l.outbox_row("omisync-b").unwrap().unwrap();
        assert_eq!((r.state, r.attempts), (OutboxState::Pending, 0));
    }
}
