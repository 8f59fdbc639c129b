//! What the hallucination guards dropped from each segment's transcript
//! ([`crate::stt::guards`]): which guard, the text (at most
//! [`DROP_TEXT_MAX`] characters), where in the audio, the engine and model
//! that heard it, and when. Kept so `diagnose` can show support staff what
//! was removed, instead of it living only in a debug log.
//!
//! Transcription replaces a segment's rows each time it transcribes the
//! segment ([`Ledger::replace_guard_drops`]), so they always describe its
//! latest transcript; the rows go with their segment.

use rusqlite::params;

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::UtcMillis;
use crate::stt::guards::DropReason;

/// Dropped text is kept up to this many characters (an ellipsis marks a cut).
pub const DROP_TEXT_MAX: usize = 200;

/// Text one guard removed from a segment, before it is stored: consecutive
/// drops by one guard are one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDrop {
    /// Which guard.
    pub guard: DropReason,
    /// What it removed (truncated when stored).
    pub text: String,
    /// How many pieces or words the entry joins.
    pub pieces: u32,
    /// Absolute time of the first of them.
    pub at: UtcMillis,
}

/// A stored drop.
#[derive(Debug, Clone, PartialEq)]
pub struct DropRow {
    /// The segment it was dropped from.
    pub segment_id: i64,
    /// What was dropped.
    pub drop: NewDrop,
    /// The engine that heard it (`whisper`, `deepgram`, `openai`).
    pub engine: String,
    /// Its model, when known.
    pub model: Option<String>,
    /// When the transcription that dropped it ran.
    pub dropped_at: UtcMillis,
}

/// `text` cut to [`DROP_TEXT_MAX`] characters, with an ellipsis when cut.
fn truncated(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(DROP_TEXT_MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

impl Ledger {
    /// Replaces what the guards dropped from segment `segment_id` (none
    /// leaves it with none), as heard by `engine` and `model`, in one
    /// transaction.
    pub fn replace_guard_drops(
        &self,
        segment_id: i64,
        drops: &[NewDrop],
        engine: &str,
        model: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("cannot start recording dropped text")?;
        tx.execute(
            "DELETE FROM guard_drops WHERE segment_id = ?1",
            [segment_id],
        )
        .ctx("cannot replace dropped text")?;
        let now = UtcMillis::now().0;
        for (i, d) in drops.iter().enumerate() {
            tx.execute(
                "INSERT INTO guard_drops (segment_id, ordinal, guard, text, pieces, at_ms, engine, model, dropped_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    segment_id,
                    i as i64,
                    d.guard.as_str(),
                    truncated(&d.text),
                    d.pieces,
                    d.at.0,
                    engine,
                    model,
                    now
                ],
            )
            .ctx("cannot record dropped text")?;
        }
        tx.commit().ctx("cannot commit dropped text")
    }
}

impl LedgerReader {
    /// Everything the guards dropped, by segment, in the order heard.
    pub fn guard_drops(&self) -> Result<Vec<DropRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT segment_id, guard, text, pieces, at_ms, engine, model, dropped_at_ms
                 FROM guard_drops ORDER BY segment_id, ordinal",
            )
            .ctx("cannot list dropped text")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    DropRow {
                        segment_id: r.get(0)?,
                        drop: NewDrop {
                            guard: DropReason::Loop,
                            text: r.get(2)?,
                            pieces: r.get(3)?,
                            at: UtcMillis(r.get(4)?),
                        },
                        engine: r.get(5)?,
                        model: r.get(6)?,
                        dropped_at: UtcMillis(r.get(7)?),
                    },
                ))
            })
            .ctx("cannot list dropped text")?;
        let mut out = Vec::new();
        for row in rows {
            let (guard, mut row) = row.ctx("cannot list dropped text")?;
            row.drop.guard = DropReason::parse(&guard).ok_or_else(|| {
                StoreError::Corrupt(format!("segment {}: guard `{guard}`", row.segment_id))
            })?;
            out.push(row);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::synthetic;

    fn drop(guard: DropReason, text: &str, at: i64) -> NewDrop {
        NewDrop {
            guard,
            text: text.into(),
            pieces: 1,
            at: UtcMillis(at),
        }
    }

    #[test]
    fn drops_are_stored_replaced_truncated_and_readable_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        synthetic::add_backlog(&mut l, "omi", 1, 2, "t").unwrap();
        let ids: Vec<i64> = l.segments().unwrap().iter().map(|s| s.id).collect();
        let long = "la ".repeat(150);
        l.replace_guard_drops(
            ids[0],
            &[
                drop(DropReason::NoisePhrase, " Thank you.", 10),
                drop(DropReason::Loop, &long, 20),
            ],
            "whisper",
            Some("ggml-tiny.en.bin"),
        )
        .unwrap();
        l.replace_guard_drops(
            ids[1],
            &[drop(DropReason::Annotation, "[BLANK_AUDIO]", 30)],
            "openai",
            None,
        )
        .unwrap();
        let got = LedgerReader::open(dir.path())
            .unwrap()
            .guard_drops()
            .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].segment_id, ids[0]);
        assert_eq!(got[0].drop.text, "Thank you.");
        assert_eq!(got[0].model.as_deref(), Some("ggml-tiny.en.bin"));
        assert_eq!(got[1].drop.guard, DropReason::Loop);
        assert_eq!(got[1].drop.text.chars().count(), DROP_TEXT_MAX + 1);
        assert!(got[1].drop.text.ends_with('…'));
        assert_eq!(
            (got[2].engine.as_str(), got[2].drop.at),
            ("openai", UtcMillis(30))
        );

        // Transcribing the first segment again replaces its drops; the
        // second's stay. A transcript with nothing dropped leaves none.
        l.replace_guard_drops(
            ids[0],
            &[drop(DropReason::Silence, "Bye.", 40)],
            "whisper",
            None,
        )
        .unwrap();
        let got = l.guard_drops().unwrap();
        let first: Vec<_> = got.iter().filter(|d| d.segment_id == ids[0]).collect();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].drop.guard, DropReason::Silence);
        l.replace_guard_drops(ids[0], &[], "whisper", None).unwrap();
        let got = l.guard_drops().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].segment_id, ids[1]);
    }

    #[test]
    fn an_unknown_guard_is_reported_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        synthetic::add_backlog(&mut l, "omi", 1, 1, "t").unwrap();
        let id = l.segments().unwrap()[0].id;
        l.replace_guard_drops(id, &[drop(DropReason::Loop, "x", 1)], "whisper", None)
            .unwrap();
        l.conn
            .execute("UPDATE guard_drops SET guard = 'bogus'", [])
            .unwrap();
        let e = l.guard_drops().unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
