//! The outbox in the ledger: conversations queued for the cloud, and their fate.
//!
//! A row is keyed by the conversation's `client_session_id` (derived from its
//! member segments), so the same conversation can never be queued twice. Its
//! state moves:
//!
//! ```text
//! pending ─▶ sending ─200 completed─▶ pushed
//!    ▲          │ ─200 processing─▶ confirming ─GET: completed─▶ pushed
//!    │          │                       └─GET: gone, or stale─▶ pending (the same request again)
//!    ├─ retry ──┤──▶ rejected (the server refused the request; re-queued when it was not its fault)
//!    │          ├──▶ locked   (402: a person resolves it in the cloud)
//!    │          └──▶ failed   (temporary failures went on too long; tried again next run)
//! pushed/confirming ─(edited after push)─▶ delete_pending ─DELETE─▶ deleted
//!                                              └─402─▶ locked
//! pending/rejected/failed never sent ─(edited before push)─▶ superseded
//! a row whose segments vanished ─▶ held (`vanished`) until a person decides:
//!                                  forgotten (cloud copy kept) or delete_pending
//! ```
//!
//! A conversation retracted and later wanted again is re-adopted when the
//! cloud still has exactly it (a delete not sent yet, a locked or forgotten
//! copy); otherwise it is queued under a new generation of its id (`<id>.2`,
//! …): after a delete the cloud's answer to a used id is not settled.
//!
//! `sending` is written before a create goes out (and a delete's attempt
//! before the DELETE): after a crash, such a row is sent again with the same
//! session id, which the cloud answers with the conversation it already has,
//! so nothing is created twice.

use rusqlite::{OptionalExtension, Row, params};

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;

/// Where a queued conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (at `retry_at`, if set).
    Pending,
    /// A create was (maybe) sent; its answer was not recorded yet.
    Sending,
    /// The cloud answered `processing`: sent, being confirmed (next check at
    /// `retry_at`). Not pushed until the cloud reports it completed.
    Confirming,
    /// In the cloud, completed, as `cloud_id`.
    Pushed,
    /// The server refused the request; `last_error` says why.
    Rejected,
    /// Temporary failures went on too long; tried again on the next run.
    Failed,
    /// The cloud refused with 402 (the conversation is locked there): a
    /// person resolves it; never retried on its own.
    Locked,
    /// Edited before it was pushed: never to be sent.
    Superseded,
    /// Edited after it was pushed: the cloud copy is to be deleted
    /// (`attempts` counts the DELETEs sent).
    DeletePending,
    /// The cloud copy was deleted.
    Deleted,
    /// Its segments vanished locally and a person chose to keep the cloud
    /// copy as it is and stop tracking it.
    Forgotten,
}

/// Every state, in the order of the type.
const STATES: [OutboxState; 11] = [
    OutboxState::Pending,
    OutboxState::Sending,
    OutboxState::Confirming,
    OutboxState::Pushed,
    OutboxState::Rejected,
    OutboxState::Failed,
    OutboxState::Locked,
    OutboxState::Superseded,
    OutboxState::DeletePending,
    OutboxState::Deleted,
    OutboxState::Forgotten,
];

impl OutboxState {
    /// The ledger name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Confirming => "confirming",
            OutboxState::Pushed => "pushed",
            OutboxState::Rejected => "rejected",
            OutboxState::Failed => "failed",
            OutboxState::Locked => "locked",
            OutboxState::Superseded => "superseded",
            OutboxState::DeletePending => "delete_pending",
            OutboxState::Deleted => "deleted",
            OutboxState::Forgotten => "forgotten",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        STATES.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the row still has a request to send, in this run or a later
    /// one: a create not confirmed yet, a confirmation, or a delete of a
    /// replaced copy. The one rule of "there is work"; held rows wait too
    /// ([`OutboxRow::needs_work`]).
    pub fn needs_sending(self) -> bool {
        matches!(
            self,
            OutboxState::Pending
                | OutboxState::Sending
                | OutboxState::Confirming
                | OutboxState::Failed
                | OutboxState::DeletePending
        )
    }
}

/// Why a row waits for a person before anything is sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldFor {
    /// Some of its segments no longer exist in the ledger (a VAD re-run
    /// found no speech there, a capture was lost), and not because of an
    /// edit: the cloud copy is neither deleted nor replaced until a person
    /// decides.
    Vanished,
}

impl HeldFor {
    fn as_str(self) -> &'static str {
        match self {
            HeldFor::Vanished => "vanished",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        (text == "vanished").then_some(HeldFor::Vanished)
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
    /// Requests sent for it so far (creates; in `delete_pending`, DELETEs).
    pub attempts: u32,
    /// Not to be tried (or checked) before this.
    pub retry_at: Option<UtcMillis>,
    /// Its id in the cloud, once known.
    pub cloud_id: Option<String>,
    /// The last failure or refusal.
    pub last_error: Option<String>,
    /// The HTTP status of the last refusal (rejected, locked).
    pub last_status: Option<u16>,
    /// When the cloud first answered `processing` for it.
    pub confirm_since: Option<UtcMillis>,
    /// Why it waits for a person, if it does.
    pub held: Option<HeldFor>,
    /// Last change.
    pub updated_at: UtcMillis,
}

impl OutboxRow {
    /// Whether a push has something to send for it now or later.
    pub fn needs_work(&self) -> bool {
        self.state.needs_sending() && self.held.is_none()
    }

    /// Whether the cloud may hold a copy of it: a create may have reached
    /// the server, or it is known to be there.
    pub fn may_be_in_cloud(&self) -> bool {
        match self.state {
            OutboxState::Sending
            | OutboxState::Confirming
            | OutboxState::Pushed
            | OutboxState::Locked
            | OutboxState::DeletePending
            | OutboxState::Forgotten => true,
            OutboxState::Pending | OutboxState::Failed => self.attempts > 0,
            OutboxState::Rejected | OutboxState::Superseded | OutboxState::Deleted => false,
        }
    }
}

const COLUMNS: &str = "session_id, conversation, device, members, started_at_ms, finished_at_ms, segments, \
     request, state, attempts, retry_at_ms, cloud_id, last_error, updated_at_ms, last_status, \
     confirm_since_ms, held";

fn row_from(r: &Row<'_>) -> rusqlite::Result<Result<OutboxRow, StoreError>> {
    let members: String = r.get(3)?;
    let state: String = r.get(8)?;
    let held: Option<String> = r.get(16)?;
    let held = match held.as_deref().map(HeldFor::parse) {
        None => Ok(None),
        Some(Some(h)) => Ok(Some(h)),
        Some(None) => Err(()),
    };
    let (Ok(members), Some(state), Ok(held)) = (
        serde_json::from_str::<Vec<String>>(&members),
        OutboxState::parse(&state),
        held,
    ) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "outbox row state `{state}` / members / held"
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
        last_status: r
            .get::<_, Option<i64>>(14)?
            .and_then(|s| u16::try_from(s).ok()),
        confirm_since: r.get::<_, Option<i64>>(15)?.map(UtcMillis),
        held,
    }))
}

// Reads.
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

// Writes.
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

    /// Records that a create is about to go out (before it is sent).
    pub fn mark_sending(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'sending', attempts = attempts + 1",
            &[],
        )
    }

    /// The cloud has it completed, as `cloud_id`.
    pub fn mark_pushed(&self, session_id: &str, cloud_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'pushed', cloud_id = ?3, retry_at_ms = NULL, last_error = NULL, \
             last_status = NULL, confirm_since_ms = NULL, held = NULL",
            &[&cloud_id],
        )
    }

    /// The cloud answered `processing` at `since`: check again at `check_at`.
    /// A confirmation already under way keeps its start.
    pub fn mark_confirming(
        &self,
        session_id: &str,
        cloud_id: &str,
        check_at: UtcMillis,
        since: UtcMillis,
    ) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'confirming', cloud_id = ?3, retry_at_ms = ?4, last_error = NULL, \
             confirm_since_ms = COALESCE(confirm_since_ms, ?5)",
            &[&cloud_id, &check_at.0, &since.0],
        )
    }

    /// Sets when a row is tried or checked next, and why (the state stays).
    pub fn reschedule(
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

    /// The cloud does not have it (any more): send the same request again
    /// at once.
    pub fn mark_resend(&self, session_id: &str, reason: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'pending', retry_at_ms = NULL, confirm_since_ms = NULL, last_error = ?3",
            &[&reason],
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

    /// The server refused the request with `status`.
    pub fn mark_rejected(
        &self,
        session_id: &str,
        status: u16,
        message: &str,
    ) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'rejected', last_error = ?3, last_status = ?4, retry_at_ms = NULL",
            &[&message, &status],
        )
    }

    /// The cloud refused with 402: the conversation is locked there.
    pub fn mark_locked(&self, session_id: &str, message: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'locked', last_error = ?3, last_status = 402, retry_at_ms = NULL",
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

    /// Edited after it was pushed (or its vanished segments given up by a
    /// person): delete the cloud copy.
    pub fn queue_delete(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'delete_pending', retry_at_ms = NULL, attempts = 0, held = NULL",
            &[],
        )
    }

    /// Records that a DELETE is about to go out.
    pub fn mark_delete_sending(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(session_id, "attempts = attempts + 1", &[])
    }

    /// The cloud copy is gone.
    pub fn mark_deleted(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'deleted', last_error = NULL, retry_at_ms = NULL",
            &[],
        )
    }

    /// Its segments vanished and a person keeps the cloud copy: stop tracking.
    pub fn mark_forgotten(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'forgotten', held = NULL, retry_at_ms = NULL",
            &[],
        )
    }

    /// Holds a row for a person (or releases it with `None`).
    pub fn set_held(&self, session_id: &str, held: Option<HeldFor>) -> Result<(), StoreError> {
        let held = held.map(HeldFor::as_str);
        self.update_outbox(session_id, "held = ?3", &[&held])
    }

    /// Takes a retracted row back, because the timeline wants exactly it
    /// again and the cloud still has it: `pushed` when its cloud id is
    /// known, else `pending` (the same request again, which the cloud
    /// answers idempotently).
    pub fn readopt(&self, session_id: &str) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = CASE WHEN cloud_id IS NULL THEN 'pending' ELSE 'pushed' END, \
             retry_at_ms = NULL, last_error = NULL, last_status = NULL, held = NULL",
            &[],
        )
    }

    /// Queues a refused or locked row again with fresh attempts (and, when
    /// given, a freshly built request).
    pub fn requeue(&self, session_id: &str, request: Option<&str>) -> Result<(), StoreError> {
        self.update_outbox(
            session_id,
            "state = 'pending', attempts = 0, retry_at_ms = NULL, last_error = NULL, \
             last_status = NULL, request = COALESCE(?3, request)",
            &[&request],
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

    fn row(l: &Ledger, id: &str) -> OutboxRow {
        l.outbox_row(id).unwrap().unwrap()
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
        let r = row(&l, "omisync-a");
        assert_eq!(
            (r.state, r.attempts, r.retry_at),
            (OutboxState::Pending, 1, Some(UtcMillis(5_000)))
        );
        assert!(r.may_be_in_cloud() && r.needs_work());
        l.mark_sending("omisync-a").unwrap();
        l.mark_confirming("omisync-a", "cloud-1", UtcMillis(9_000), UtcMillis(8_000))
            .unwrap();
        l.mark_confirming("omisync-a", "cloud-1", UtcMillis(19_000), UtcMillis(18_000))
            .unwrap();
        let r = row(&l, "omisync-a");
        assert_eq!(r.state, OutboxState::Confirming);
        assert_eq!(r.confirm_since, Some(UtcMillis(8_000)), "keeps its start");
        assert!(r.needs_work());
        l.mark_pushed("omisync-a", "cloud-1").unwrap();
        let r = row(&l, "omisync-a");
        assert_eq!(
            (r.state, r.attempts, r.cloud_id.as_deref(), r.confirm_since),
            (OutboxState::Pushed, 2, Some("cloud-1"), None)
        );
        assert!(!r.needs_work());
        assert_eq!(r.push.members, vec!["k1", "k2"]);
        l.queue_delete("omisync-a").unwrap();
        l.mark_delete_sending("omisync-a").unwrap();
        let r = row(&l, "omisync-a");
        assert_eq!((r.state, r.attempts), (OutboxState::DeletePending, 1));
        l.mark_deleted("omisync-a").unwrap();
        assert_eq!(row(&l, "omisync-a").state, OutboxState::Deleted);
        assert!(!row(&l, "omisync-a").may_be_in_cloud());
        assert!(l.mark_pushed("omisync-missing", "x").is_err());
    }

    #[test]
    fn refusals_keep_their_status_and_requeue_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        l.enqueue_push(&push("omisync-r")).unwrap();
        l.mark_sending("omisync-r").unwrap();
        l.mark_rejected("omisync-r", 301, "HTTP 301: moved")
            .unwrap();
        let r = row(&l, "omisync-r");
        assert_eq!((r.state, r.last_status), (OutboxState::Rejected, Some(301)));
        assert!(!r.may_be_in_cloud() && !r.needs_work());
        l.requeue("omisync-r", Some(r#"{"new":1}"#)).unwrap();
        let r = row(&l, "omisync-r");
        assert_eq!(
            (r.state, r.attempts, r.last_status, r.push.request.as_str()),
            (OutboxState::Pending, 0, None, r#"{"new":1}"#)
        );
        l.mark_locked("omisync-r", "locked").unwrap();
        assert_eq!(row(&l, "omisync-r").last_status, Some(402));
        l.requeue("omisync-r", None).unwrap();
        assert_eq!(row(&l, "omisync-r").push.request, r#"{"new":1}"#);
    }

    #[test]
    fn held_rows_wait_and_readoption_knows_what_the_cloud_has() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        l.enqueue_push(&push("omisync-h")).unwrap();
        l.mark_sending("omisync-h").unwrap();
        l.mark_confirming("omisync-h", "c-h", UtcMillis(1), UtcMillis(1))
            .unwrap();
        l.set_held("omisync-h", Some(HeldFor::Vanished)).unwrap();
        let r = row(&l, "omisync-h");
        assert_eq!(r.held, Some(HeldFor::Vanished));
        assert!(!r.needs_work(), "held rows send nothing");
        l.queue_delete("omisync-h").unwrap();
        l.readopt("omisync-h").unwrap();
        let r = row(&l, "omisync-h");
        assert_eq!((r.state, r.held), (OutboxState::Pushed, None));
        l.enqueue_push(&push("omisync-lost")).unwrap();
        l.mark_sending("omisync-lost").unwrap();
        l.queue_delete("omisync-lost").unwrap();
        l.readopt("omisync-lost").unwrap();
        assert_eq!(row(&l, "omisync-lost").state, OutboxState::Pending);
        l.mark_forgotten("omisync-h").unwrap();
        assert!(row(&l, "omisync-h").may_be_in_cloud());
    }

    #[test]
    fn failed_rows_are_revived_with_fresh_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        l.enqueue_push(&push("omisync-b")).unwrap();
        l.mark_sending("omisync-b").unwrap();
        l.mark_failed("omisync-b", "gave up").unwrap();
        assert!(
            row(&l, "omisync-b").needs_work(),
            "failed rows are still queued"
        );
        assert_eq!(l.revive_failed_pushes().unwrap(), 1);
        let r = row(&l, "omisync-b");
        assert_eq!((r.state, r.attempts), (OutboxState::Pending, 0));
    }
}
