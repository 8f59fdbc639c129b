//! Speech that runs on from one capture into the next.
//!
//! One recording is often stored as several captures that follow each other
//! without a gap: the phone app's 60 s files, or the captures a pull makes
//! every few seconds. VAD runs per capture, and Silero needs a few windows of
//! audio before it hears speech that is already going, so a sentence spoken
//! across a boundary used to start about 100 ms late in the second capture
//! and its two halves did not meet. Now the end of the capture before (its
//! last [`LEAD_IN_SAMPLES`], when its audio is still there) is played into a
//! detector first; when it ends inside speech, that detector goes on into
//! the next capture, so the speech running across the boundary starts at the
//! next capture's first sample, where the first half ends, and the timeline
//! joins the halves into one segment ([`crate::timeline`]). A capture whose
//! predecessor ends in silence is analysed on its own, exactly as before
//! (Silero's state would otherwise nudge its other edges by a window).
//!
//! "Follow each other" is the rule of [`CONTIGUOUS_MS`]: the same device, the
//! same kind of clock, and less than that between the end of one capture's
//! audio and the start of the next.
//!
//! [`CONTIGUOUS_MS`]: crate::config::rules::CONTIGUOUS_MS

use std::collections::HashMap;
use std::path::Path;

use crate::audio;
use crate::clock::UtcMillis;
use crate::config::rules::CONTIGUOUS_MS;
use crate::device::capture::Run;
use crate::store::{CaptureRow, Ledger, StoreError, files};
use crate::timeline::Domain;
use crate::vad::WINDOW_SAMPLES;

/// How much of the capture before is played into the detector: 16 VAD
/// windows (512 ms), a whole number of windows so that the next capture's
/// windows start at its first sample, as they would without a lead-in.
pub const LEAD_IN_SAMPLES: u64 = 16 * WINDOW_SAMPLES as u64;

/// The audio a capture continues: the last run of the capture before it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadIn {
    /// The capture before.
    pub capture: CaptureRow,
    /// Its last run, which ends where the next capture's first run starts.
    pub run: Run,
}

impl LeadIn {
    /// The end of the capture before, at most [`LEAD_IN_SAMPLES`] and a
    /// whole number of VAD windows; `None` when its audio cannot be read
    /// (freed, damaged): the capture is then analysed on its own, as before.
    pub fn samples(&self, data_dir: &Path) -> Option<Vec<f32>> {
        let c = &self.capture;
        let bytes = files::load(data_dir, c.stored_path.as_ref(), &c.sha256).ok()?;
        let window = WINDOW_SAMPLES as u64;
        let len = LEAD_IN_SAMPLES.min(self.run.samples / window * window);
        let from = self.run.samples - len;
        let mut out = audio::decode_range(
            c.meta.format,
            &bytes,
            c.meta.codec,
            &self.run,
            from,
            self.run.samples,
        )
        .ok()?;
        // A decoder may hand back fewer samples than asked (a short last
        // frame); whole windows only.
        out.truncate(out.len() / WINDOW_SAMPLES * WINDOW_SAMPLES);
        (!out.is_empty()).then_some(out)
    }
}

/// The lead-in of each capture in `todo` that continues another capture.
/// `placed` holds the runs of the captures in `todo` as they are about to be
/// analysed (their layouts); every other capture is taken with the runs its
/// last analysis stored.
pub fn find(
    ledger: &Ledger,
    todo: &[CaptureRow],
    placed: &HashMap<i64, Vec<Run>>,
) -> Result<HashMap<i64, LeadIn>, StoreError> {
    // Where each capture's audio ends, by device: the captures being
    // analysed as they are laid out now, and the analysed ones that end
    // near where one of them starts, as stored.
    let mut ends: HashMap<String, Vec<(CaptureRow, Run, Run)>> = HashMap::new();
    let mut add = |c: &CaptureRow, runs: &[Run]| {
        if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
            ends.entry(c.meta.device.clone())
                .or_default()
                .push((c.clone(), *first, *last));
        }
    };
    let mut starts: HashMap<&str, (i64, i64)> = HashMap::new();
    for c in todo {
        let Some(runs) = placed.get(&c.id) else {
            continue;
        };
        add(c, runs);
        if let Some(first) = runs.first() {
            let span = starts
                .entry(c.meta.device.as_str())
                .or_insert((first.start.0, first.start.0));
            *span = (span.0.min(first.start.0), span.1.max(first.start.0));
        }
    }
    for (device, (from, to)) in starts {
        let (from, to) = (
            UtcMillis(from - CONTIGUOUS_MS),
            UtcMillis(to + CONTIGUOUS_MS),
        );
        for (c, runs) in ledger.captures_ending_between(device, from, to)? {
            if !placed.contains_key(&c.id) {
                let runs: Vec<Run> = runs.into_iter().map(|r| r.run).collect();
                add(&c, &runs);
            }
        }
    }
    for list in ends.values_mut() {
        list.sort_by_key(|(_, _, last)| last.end());
    }
    let mut out = HashMap::new();
    for c in todo {
        let Some(first) = placed.get(&c.id).and_then(|r| r.first()) else {
            continue;
        };
        let Some(list) = ends.get(&c.meta.device) else {
            continue;
        };
        // Only the captures whose audio ends near this one's start.
        let from =
            list.partition_point(|(_, _, last)| last.end().0 <= first.start.0 - CONTIGUOUS_MS);
        let before = list[from..]
            .iter()
            .take_while(|(_, _, last)| last.end().0 < first.start.0 + CONTIGUOUS_MS)
            .find(|(other, other_first, last)| {
                other.id != c.id
                    && other_first.start < first.start
                    && Domain::of(last.clock) == Domain::of(first.clock)
            });
        if let Some((capture, _, last)) = before {
            out.insert(
                c.id,
                LeadIn {
                    capture: capture.clone(),
                    run: *last,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::store::testdata::{TONE_SAMPLES, add_tone_capture};

    #[test]
    fn a_capture_continues_the_one_of_its_device_and_clock_that_ends_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let t0 = UtcMillis(1_748_854_800_000);
        let tone_ms = crate::device::capture::samples_to_ms(TONE_SAMPLES);
        let wall = ClockTrust::Wall;
        add_tone_capture(&mut l, "omi", t0, wall, &[]);
        add_tone_capture(&mut l, "omi", t0.plus_ms(tone_ms), wall, &[]);
        add_tone_capture(&mut l, "omi", t0.plus_ms(3 * tone_ms), wall, &[]);
        // (1 ms later than the second: the same bytes would be one capture.)
        add_tone_capture(&mut l, "other", t0.plus_ms(tone_ms + 1), wall, &[]);
        let estimated = ClockTrust::Unknown;
        add_tone_capture(&mut l, "omi", t0.plus_ms(4 * tone_ms + 10), estimated, &[]);
        let all = l.captures().unwrap();
        let placed: HashMap<i64, Vec<Run>> = all
            .iter()
            .map(|c| {
                (
                    c.id,
                    l.runs(c.id).unwrap().into_iter().map(|r| r.run).collect(),
                )
            })
            .collect();
        let found = find(&l, &all, &placed).unwrap();
        let before: Vec<(i64, Option<i64>)> = all
            .iter()
            .map(|c| (c.id, found.get(&c.id).map(|f| f.capture.id)))
            .collect();
        let id = |i: usize| all[i].id;
        assert_eq!(
            before,
            [
                (id(0), None),
                (id(1), Some(id(0))),
                // Two seconds after the one before: not contiguous.
                (id(2), None),
                // Another device, and another kind of clock, never continue.
                (id(3), None),
                (id(4), None),
            ]
        );
        let samples = found[&id(1)].samples(dir.path()).unwrap();
        assert_eq!(samples.len() as u64, LEAD_IN_SAMPLES);
        // Freed or damaged audio: no lead-in, the capture stands alone.
        std::fs::remove_file(dir.path().join(&all[0].stored_path)).unwrap();
        assert!(found[&id(1)].samples(dir.path()).is_none());
    }
}
