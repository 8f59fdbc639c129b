//! The ledger's schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` holds how many have been applied. A migration is
//! never edited once released: add a new one instead.

use rusqlite::Connection;

/// Every migration, oldest first. Index + 1 is the schema version it yields.
const MIGRATIONS: &[&str] = &[
    // 1: captures, their runs and anomalies; speech segments; the edit log.
    r#"
    CREATE TABLE captures (
        id              INTEGER PRIMARY KEY,
        sha256          TEXT    NOT NULL UNIQUE,
        format          TEXT    NOT NULL CHECK (format IN ('wal', 'ring')),
        codec           TEXT    NOT NULL,
        sample_rate     INTEGER NOT NULL,
        frame_samples   INTEGER NOT NULL,
        device          TEXT    NOT NULL,
        origin          TEXT    NOT NULL,
        file_name       TEXT    NOT NULL,
        name_start_ms   INTEGER,
        clock           TEXT    NOT NULL,
        first_seq       INTEGER,
        ring_id         INTEGER,
        captured_at_ms  INTEGER NOT NULL,
        stored_path     TEXT    NOT NULL,
        bytes           INTEGER NOT NULL,
        imported_at_ms  INTEGER NOT NULL,
        analyzed_at_ms  INTEGER,
        analysis        TEXT
    );
    CREATE TABLE runs (
        capture_id   INTEGER NOT NULL REFERENCES captures(id) ON DELETE CASCADE,
        run_index    INTEGER NOT NULL,
        first_frame  INTEGER NOT NULL,
        frame_count  INTEGER NOT NULL,
        samples      INTEGER NOT NULL,
        start_ms     INTEGER NOT NULL,
        clock        TEXT    NOT NULL,
        bad_frames   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (capture_id, run_index)
    );
    CREATE TABLE anomalies (
        id          INTEGER PRIMARY KEY,
        capture_id  INTEGER REFERENCES captures(id) ON DELETE CASCADE,
        origin      TEXT    NOT NULL,
        stage       TEXT    NOT NULL CHECK (stage IN ('import', 'analysis')),
        byte_offset INTEGER,
        message     TEXT    NOT NULL,
        at_ms       INTEGER NOT NULL
    );
    CREATE TABLE segments (
        id                INTEGER PRIMARY KEY,
        key               TEXT    NOT NULL UNIQUE,
        capture_id        INTEGER NOT NULL REFERENCES captures(id) ON DELETE CASCADE,
        run_index         INTEGER NOT NULL,
        sample_start      INTEGER NOT NULL,
        sample_end        INTEGER NOT NULL,
        device            TEXT    NOT NULL,
        clock             TEXT    NOT NULL,
        start_ms          INTEGER NOT NULL,
        end_ms            INTEGER NOT NULL,
        status            TEXT    NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'speech', 'silent', 'failed')),
        text              TEXT,
        error             TEXT,
        transcribed_at_ms INTEGER
    );
    CREATE INDEX segments_by_time ON segments (device, start_ms);
    CREATE INDEX segments_by_capture ON segments (capture_id);
    CREATE TABLE edit_actions (
        id            INTEGER PRIMARY KEY,
        kind          TEXT    NOT NULL CHECK (kind IN ('merge', 'split')),
        summary       TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL,
        state         TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'undone'))
    );
    CREATE TABLE edit_overrides (
        action_id  INTEGER NOT NULL REFERENCES edit_actions(id) ON DELETE CASCADE,
        device     TEXT    NOT NULL,
        domain     TEXT    NOT NULL CHECK (domain IN ('wall', 'estimated')),
        anchor_ms  INTEGER NOT NULL,
        boundary   TEXT    NOT NULL CHECK (boundary IN ('join', 'split'))
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: the outbox: conversations queued for the cloud, and their fate.
    r#"
    CREATE TABLE outbox (
        session_id      TEXT    PRIMARY KEY,
        conversation    TEXT    NOT NULL,
        device          TEXT    NOT NULL,
        members         TEXT    NOT NULL,
        started_at_ms   INTEGER NOT NULL,
        finished_at_ms  INTEGER NOT NULL,
        segments        INTEGER NOT NULL,
        request         TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN
                        ('pending', 'sending', 'pushed', 'rejected', 'failed',
                         'superseded', 'delete_pending', 'deleted')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        retry_at_ms     INTEGER,
        cloud_id        TEXT,
        last_error      TEXT,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX outbox_by_state ON outbox (state, started_at_ms);
    "#,
    // 3: rings pulled from pendants (`store::ring`): each device's streams (one
    // per ring: a CLEAR or a new ring id starts another), its resume point,
    // the seqs every ring capture holds, and a content index of records for
    // finding ones delivered again under another ring.
    r#"
    CREATE TABLE ring_streams (
        id            INTEGER PRIMARY KEY,
        device        TEXT    NOT NULL,
        ring_id       INTEGER,
        started_at_ms INTEGER NOT NULL
    );
    CREATE TABLE device_state (
        device        TEXT    PRIMARY KEY,
        stream_id     INTEGER REFERENCES ring_streams(id),
        ring_id       INTEGER,
        durable_seq   INTEGER,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE ring_spans (
        capture_id INTEGER PRIMARY KEY REFERENCES captures(id) ON DELETE CASCADE,
        stream_id  INTEGER NOT NULL REFERENCES ring_streams(id),
        first_seq  INTEGER NOT NULL,
        end_seq    INTEGER NOT NULL CHECK (end_seq > first_seq)
    );
    CREATE INDEX ring_spans_by_stream ON ring_spans (stream_id, first_seq);
    CREATE TABLE ring_records (
        device    TEXT    NOT NULL,
        digest    BLOB    NOT NULL,
        stream_id INTEGER NOT NULL REFERENCES ring_streams(id),
        seq       INTEGER NOT NULL,
        PRIMARY KEY (device, digest)
    ) WITHOUT ROWID;
    "#,
    // 4: word timings of a transcribed segment (JSON `[{"start_ms", "end_ms", "text"}]`).
    r#"
    ALTER TABLE segments ADD COLUMN words TEXT;
    "#,
    // 5: work claimed by a running job (`store::claims`), so two runs on one
    // data directory never analyse the same capture or transcribe the same
    // segment at once; a claim lapses at `expires_at_ms` unless renewed.
    r#"
    CREATE TABLE claims (
        kind          TEXT    NOT NULL CHECK (kind IN ('analysis', 'transcription')),
        item          INTEGER NOT NULL,
        holder        TEXT    NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, item)
    ) WITHOUT ROWID;
    CREATE INDEX claims_by_holder ON claims (holder);
    "#,
    // 6: local audio freed once the cloud has it (`store::retention`): when
    // a capture's file was deleted, and why the last try failed.
    r#"
    ALTER TABLE captures ADD COLUMN audio_freed_at_ms INTEGER;
    ALTER TABLE captures ADD COLUMN free_error TEXT;
    "#,
    // 7: the outbox as the real API needs it (`store::outbox`): `confirming`
    // (sent, the cloud said `processing`: counted as pushed only once it
    // reports `completed`), `locked` (the cloud refused with 402: a person
    // resolves it) and `forgotten` (its segments vanished and a person chose
    // to keep the cloud copy and stop tracking it); the HTTP status of the
    // last refusal (so refusals that were not the conversation's fault can be
    // re-queued), when confirmation began, and why a row is held for a person
    // (`vanished`). SQLite cannot change a CHECK constraint, so the table is
    // rebuilt; a refusal's status is read back from its stored message.
    r#"
    CREATE TABLE outbox_v7 (
        session_id       TEXT    PRIMARY KEY,
        conversation     TEXT    NOT NULL,
        device           TEXT    NOT NULL,
        members          TEXT    NOT NULL,
        started_at_ms    INTEGER NOT NULL,
        finished_at_ms   INTEGER NOT NULL,
        segments         INTEGER NOT NULL,
        request          TEXT    NOT NULL,
        state            TEXT    NOT NULL CHECK (state IN
                         ('pending', 'sending', 'confirming', 'pushed', 'rejected', 'failed',
                          'locked', 'superseded', 'delete_pending', 'deleted', 'forgotten')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        retry_at_ms      INTEGER,
        cloud_id         TEXT,
        last_error       TEXT,
        last_status      INTEGER,
        confirm_since_ms INTEGER,
        held             TEXT    CHECK (held IS NULL OR held IN ('vanished')),
        created_at_ms    INTEGER NOT NULL,
        updated_at_ms    INTEGER NOT NULL
    );
    INSERT INTO outbox_v7 (session_id, conversation, device, members, started_at_ms,
        finished_at_ms, segments, request, state, attempts, retry_at_ms, cloud_id, last_error,
        last_status, created_at_ms, updated_at_ms)
    SELECT session_id, conversation, device, members, started_at_ms, finished_at_ms, segments,
        request, state, attempts, retry_at_ms, cloud_id, last_error,
        CASE WHEN state = 'rejected' AND last_error GLOB 'HTTP [0-9][0-9][0-9]:*'
             THEN CAST(substr(last_error, 6, 3) AS INTEGER) END,
        created_at_ms, updated_at_ms
    FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v7 RENAME TO outbox;
    CREATE INDEX outbox_by_state ON outbox (state, started_at_ms);
    "#,
    // 8: text the hallucination guards dropped from a segment's transcript
    // (`store::drops`): which guard, the text (truncated), where in the
    // audio, the engine and model that heard it, and when. A segment's rows
    // are replaced whenever it is transcribed again.
    r#"
    CREATE TABLE guard_drops (
        segment_id    INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        ordinal       INTEGER NOT NULL,
        guard         TEXT    NOT NULL,
        text          TEXT    NOT NULL,
        pieces        INTEGER NOT NULL,
        at_ms         INTEGER NOT NULL,
        engine        TEXT    NOT NULL,
        model         TEXT,
        dropped_at_ms INTEGER NOT NULL,
        PRIMARY KEY (segment_id, ordinal)
    ) WITHOUT ROWID;
    "#,
    // 9: each device's last report (`store::device_reports`): INFO and the
    // status characteristic as the last pull read them, when, and the newest
    // record it brought (for the clock skew estimate).
    r#"
    CREATE TABLE device_reports (
        device                TEXT    PRIMARY KEY,
        origin                TEXT    NOT NULL,
        read_at_ms            INTEGER NOT NULL,
        connected_at_ms       INTEGER NOT NULL,
        read_seq              INTEGER NOT NULL,
        write_seq             INTEGER NOT NULL,
        capacity              INTEGER NOT NULL,
        dropped               INTEGER NOT NULL,
        packet_bytes          INTEGER NOT NULL,
        custody_caps          INTEGER,
        custody_version       INTEGER,
        ring_id               INTEGER,
        used_bytes            INTEGER,
        unread_packets        INTEGER,
        free_bytes            INTEGER,
        clock_valid           INTEGER,
        clock_written         INTEGER NOT NULL,
        done_crc              INTEGER,
        unread_after          INTEGER,
        newest_seq            INTEGER,
        newest_wall_start_ms  INTEGER,
        newest_duration_ms    INTEGER,
        newest_received_at_ms INTEGER
    ) WITHOUT ROWID;
    "#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: usize = MIGRATIONS.len();

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The ledger was written by a newer omi-sync.
    #[error(
        "the ledger has schema version {found}, newer than this omi-sync understands ({CURRENT_VERSION}); \
         upgrade omi-sync"
    )]
    TooNew {
        /// The version found.
        found: usize,
    },
    /// SQLite failed.
    #[error("schema migration {version} failed: {source}")]
    Sql {
        /// The migration being applied.
        version: usize,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

/// Applies every migration not yet applied, all in one exclusive
/// (`IMMEDIATE`) transaction that first reads the version: two processes
/// opening a fresh data directory at once take turns (the second waits on
/// the busy timeout), and the second finds the schema already current.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    let sql = |version: usize| move |source| MigrationError::Sql { version, source };
    let version_of = |conn: &Connection| {
        conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
            .map(|v| v as usize)
            .map_err(sql(0))
    };
    // Most opens find nothing to do: answer them without a write lock.
    let found = version_of(conn)?;
    if found > CURRENT_VERSION {
        return Err(MigrationError::TooNew { found });
    }
    if found == CURRENT_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql(found + 1))?;
    let found = version_of(&tx)?;
    if found > CURRENT_VERSION {
        return Err(MigrationError::TooNew { found });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(found) {
        let version = i + 1;
        tx.execute_batch(migration)
            .and_then(|_| tx.pragma_update(None, "user_version", version as i64))
            .map_err(sql(version))?;
    }
    tx.commit().map_err(sql(CURRENT_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_from_an_older_schema_is_read_through_a_copy_and_left_as_it_is() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::store::LEDGER_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS.iter().enumerate().take(3) {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", (i + 1) as i64)
                    .unwrap();
            }
        }
        let before = sha2::Sha256::digest(std::fs::read(&path).unwrap());
        let files = |d: &std::path::Path| {
            let mut names: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let listed = files(dir.path());
        let copy = crate::store::LedgerCopy::open(dir.path()).unwrap();
        assert!(
            copy.segments().unwrap().is_empty(),
            "read at this build's schema"
        );
        drop(copy);
        assert_eq!(sha2::Sha256::digest(std::fs::read(&path).unwrap()), before);
        assert_eq!(files(dir.path()), listed, "no -wal, -shm or lock file made");
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 3, "the user's ledger is still at its own schema");
    }

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, CURRENT_VERSION);
    }

    #[test]
    fn the_outbox_rebuild_keeps_rows_and_reads_back_refusal_statuses() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, sql) in MIGRATIONS.iter().enumerate().take(6) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO outbox VALUES ('a','c','d','[]',1,2,1,'{}','rejected',1,NULL,NULL,
                 'HTTP 301: the server redirected to https://x: check the API base URL',0,0);
             INSERT INTO outbox VALUES ('b','c','d','[]',1,2,1,'{}','pushed',1,NULL,'cloud-b',NULL,0,0);
             INSERT INTO outbox VALUES ('c','c','d','[]',1,2,1,'{}','rejected',1,NULL,NULL,
                 'the queued request is unreadable',0,0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, String, Option<i64>, Option<String>)> = conn
            .prepare(
                "SELECT session_id, state, last_status, cloud_id FROM outbox ORDER BY session_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("a".into(), "rejected".into(), Some(301), None),
                ("b".into(), "pushed".into(), None, Some("cloud-b".into())),
                ("c".into(), "rejected".into(), None, None),
            ]
        );
        conn.execute(
            "UPDATE outbox SET state = 'confirming', held = 'vanished' WHERE session_id = 'b'",
            [],
        )
        .unwrap();
        assert!(
            conn.execute(
                "UPDATE outbox SET state = 'bogus' WHERE session_id = 'b'",
                []
            )
            .is_err()
        );
    }

    #[test]
    fn refuses_a_newer_ledger() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(e.to_string().contains("999"), "{e}");
    }
}
