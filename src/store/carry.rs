//! Transcripts carried over a VAD re-run: speech found again with slightly
//! other bounds keeps the transcript of the segment it supersedes.
//!
//! A segment's key comes from its capture and sample range, so a re-run with
//! other settings (a threshold, the padding) gives most speech a new key and
//! the old row is removed. When a new segment covers an old, transcribed one
//! closely ([`CARRY_MIN_OVERLAP`] of their union, same run) and every word of
//! the old transcript lies inside the new bounds, the new row takes the old
//! status, text, words (moved with the segment, should its run have been
//! re-timed) and transcription time. Anything looser is transcribed again.

use rusqlite::{Transaction, params};

use super::segments::{NewSegment, WordTiming};
use super::{SqlContext, StoreError};

/// How much of two segments' joint sample range both must cover for the
/// new one to inherit the old one's transcript.
pub const CARRY_MIN_OVERLAP: f64 = 0.8;

/// Samples per millisecond at 16 kHz.
const SAMPLES_PER_MS: i64 = 16;

/// A transcribed row about to be superseded.
struct Superseded {
    run_index: u32,
    sample_start: i64,
    sample_end: i64,
    start_ms: i64,
    status: String,
    text: Option<String>,
    words: Option<Vec<WordTiming>>,
    transcribed_at_ms: Option<i64>,
}

/// The share of the joint range both ranges cover (0 when disjoint).
fn overlap_share(a: (i64, i64), b: (i64, i64)) -> f64 {
    let inter = a.1.min(b.1) - a.0.max(b.0);
    let union = a.1.max(b.1) - a.0.min(b.0);
    if inter <= 0 || union <= 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

impl Superseded {
    /// Its words placed on `new`'s time (the same audio, wherever its run
    /// now sits): `None` when a word would fall outside `new`, `Some(None)`
    /// when it has no word timings.
    fn words_within(&self, new: &NewSegment) -> Option<Option<Vec<WordTiming>>> {
        let Some(words) = &self.words else {
            return Some(None);
        };
        let audio_shift = (new.sample_start as i64 - self.sample_start) / SAMPLES_PER_MS;
        let shift = new.start.0 - self.start_ms - audio_shift;
        words
            .iter()
            .map(|w| {
                let moved = WordTiming {
                    start_ms: w.start_ms + shift,
                    end_ms: w.end_ms + shift,
                    text: w.text.clone(),
                };
                let mid = (moved.start_ms + moved.end_ms) / 2;
                (new.start.0..=new.end.0).contains(&mid).then_some(moved)
            })
            .collect::<Option<Vec<_>>>()
            .map(Some)
    }
}

/// Gives each of `inserted` (rows just added for `capture_id`) the
/// transcript of the superseded row it closely covers. Superseded rows are
/// those of the capture whose key is not in the temp table `keep_keys`;
/// call this before they are removed. Returns how many carried over.
pub(super) fn carry_transcripts(
    tx: &Transaction<'_>,
    capture_id: i64,
    inserted: &[&NewSegment],
) -> Result<usize, StoreError> {
    if inserted.is_empty() {
        return Ok(0);
    }
    let mut stmt = tx
        .prepare(
            "SELECT run_index, sample_start, sample_end, start_ms, status, text, words, transcribed_at_ms
             FROM segments
             WHERE capture_id = ?1 AND status IN ('speech', 'silent')
               AND key NOT IN (SELECT key FROM keep_keys)",
        )
        .ctx("cannot read superseded segments")?;
    let mut old = Vec::new();
    let rows = stmt
        .query_map([capture_id], |r| {
            Ok((
                Superseded {
                    run_index: r.get(0)?,
                    sample_start: r.get(1)?,
                    sample_end: r.get(2)?,
                    start_ms: r.get(3)?,
                    status: r.get(4)?,
                    text: r.get(5)?,
                    words: None,
                    transcribed_at_ms: r.get(7)?,
                },
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .ctx("cannot read superseded segments")?;
    for row in rows {
        let (mut s, json) = row.ctx("cannot read superseded segments")?;
        if let Some(json) = json {
            s.words = Some(serde_json::from_str(&json).map_err(|e| {
                StoreError::Corrupt(format!(
                    "word timings of a segment of capture {capture_id}: {e}"
                ))
            })?);
        }
        old.push(s);
    }
    drop(stmt);
    let mut carried = 0;
    for new in inserted {
        let range = (new.sample_start as i64, new.sample_end as i64);
        let best = old
            .iter()
            .filter(|o| o.run_index == new.run_index)
            .map(|o| (overlap_share(range, (o.sample_start, o.sample_end)), o))
            .filter(|(share, _)| *share >= CARRY_MIN_OVERLAP)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, from)) = best else { continue };
        let Some(words) = from.words_within(new) else {
            continue;
        };
        let json = words
            .map(|w| serde_json::to_string(&w))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("cannot encode word timings: {e}")))?;
        tx.execute(
            "UPDATE segments SET status = ?2, text = ?3, words = ?4, error = NULL, transcribed_at_ms = ?5
             WHERE key = ?1",
            params![new.key, from.status, from.text, json, from.transcribed_at_ms],
        )
        .ctx("cannot carry a transcript over")?;
        carried += 1;
    }
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::store::Ledger;
    use crate::store::testdata::add_tone_capture;
    use crate::timeline::SegmentStatus;

    fn word(start_ms: i64, end_ms: i64, text: &str) -> WordTiming {
        WordTiming {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    /// Re-analyses the tone capture of `l` with segments at these spans
    /// (ms within it), keyed anew, as a VAD re-run with other settings does.
    fn reanalyse(l: &mut Ledger, t0: UtcMillis, spans: &[(i64, i64)]) {
        let cap = l.segments().unwrap()[0].capture_id;
        let run = l.runs(cap).unwrap();
        let segs: Vec<NewSegment> = spans
            .iter()
            .map(|(a, b)| NewSegment {
                key: format!("again-{a}-{b}"),
                run_index: 0,
                sample_start: (*a * 16) as u64,
                sample_end: (*b * 16) as u64,
                device: "omi".into(),
                clock: ClockTrust::Wall,
                start: t0.plus_ms(*a),
                end: t0.plus_ms(*b),
            })
            .collect();
        l.save_analysis(cap, &run, &segs, &[], "{}").unwrap();
    }

    #[test]
    fn speech_found_again_with_other_bounds_keeps_its_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let t0 = UtcMillis(1_750_000_000_000);
        let ids = add_tone_capture(
            &mut l,
            "omi",
            t0,
            ClockTrust::Wall,
            &[(500, 1500), (2000, 3500)],
        );
        let first = [
            word(t0.0 + 600, t0.0 + 900, "hello"),
            word(t0.0 + 1000, t0.0 + 1400, "there"),
        ];
        l.record_transcript(ids[0], &first).unwrap();
        // The second ends in a word the new bounds cut off.
        let second = [
            word(t0.0 + 2100, t0.0 + 2500, "general"),
            word(t0.0 + 3200, t0.0 + 3450, "kenobi"),
        ];
        l.record_transcript(ids[1], &second).unwrap();

        // 80 ms more padding on the first; the second shrinks past its last word.
        reanalyse(&mut l, t0, &[(420, 1580), (2000, 3000)]);
        let after = l.segments().unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].found.key, "again-420-1580");
        assert_eq!(after[0].status, SegmentStatus::Speech);
        assert_eq!(after[0].text.as_deref(), Some("hello there"));
        assert_eq!(l.segment_words(after[0].id).unwrap(), first);
        assert_eq!(
            after[1].status,
            SegmentStatus::Pending,
            "a word fell outside: transcribe again"
        );
        assert_eq!(after[1].text, None);
    }

    #[test]
    fn speech_that_moved_a_lot_is_transcribed_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let t0 = UtcMillis(1_750_000_000_000);
        let ids = add_tone_capture(&mut l, "omi", t0, ClockTrust::Wall, &[(500, 1500)]);
        l.record_transcript(ids[0], &[word(t0.0 + 600, t0.0 + 900, "hello")])
            .unwrap();
        // Half of it: a different segment, not the same speech found again.
        reanalyse(&mut l, t0, &[(500, 1000), (1000, 1500)]);
        let after = l.segments().unwrap();
        assert!(
            after.iter().all(|s| s.status == SegmentStatus::Pending),
            "{after:?}"
        );
    }

    #[test]
    fn overlap_share_is_intersection_over_union() {
        assert_eq!(overlap_share((0, 100), (0, 100)), 1.0);
        assert_eq!(overlap_share((0, 100), (100, 200)), 0.0);
        assert_eq!(overlap_share((0, 100), (10, 100)), 0.9);
        assert_eq!(overlap_share((0, 100), (50, 150)), 50.0 / 150.0);
    }
}
