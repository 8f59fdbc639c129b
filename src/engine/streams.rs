//! Ring captures placed on time as the streams they were pulled in.
//!
//! A pull stores a device's ring as many captures (see
//! [`crate::store::ring`]); their audio is one recording and is laid out as
//! one ([`StreamLayout`]). Before analysis, [`plan`] lays out every stream
//! that has captures to analyse, from the last analysed capture that ends in
//! wall-clock audio (its stored placement is the starting point, so earlier
//! captures are not read again) to the stream's end, which includes any
//! trailing stretch recorded without a clock: its estimate changes when the
//! wall-clock audio after it arrives. Captures already analysed whose runs
//! only moved are re-timed (with their segments) without decoding anything;
//! those whose runs changed shape are analysed again.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::device::capture::{CaptureFormat, Layout, Run};
use crate::device::placement::StreamLayout;
use crate::store::{CaptureRow, Ledger, RunRow, StoreError};

/// How the captures of the streams touched by an analysis are placed.
#[derive(Debug, Clone, Default)]
pub struct StreamPlan {
    /// The layout of each capture to analyse that belongs to a stream.
    pub layouts: HashMap<i64, Layout>,
    /// Analysed captures whose runs only moved: (capture id, new runs).
    pub retime: Vec<(i64, Vec<Run>)>,
    /// Analysed captures whose runs changed shape: to analyse again.
    pub reanalyze: Vec<CaptureRow>,
}

fn same_shape(stored: &[RunRow], new: &[Run]) -> bool {
    stored.len() == new.len()
        && stored.iter().zip(new).all(|(s, n)| {
            let s = &s.run;
            (s.first_frame, s.frame_count, s.samples, s.clock)
                == (n.first_frame, n.frame_count, n.samples, n.clock)
        })
}

/// Lays out the streams of the ring captures in `todo` (see the module docs).
pub fn plan(ledger: &Ledger, todo: &[CaptureRow]) -> Result<StreamPlan, StoreError> {
    let todo_ids: HashSet<i64> = todo.iter().map(|c| c.id).collect();
    let mut streams = BTreeSet::new();
    for c in todo.iter().filter(|c| c.meta.format == CaptureFormat::Ring) {
        if let Some(span) = ledger.ring_span(c.id)? {
            streams.insert(span.stream_id);
        }
    }
    let mut plan = StreamPlan::default();
    for stream in streams {
        let spans = ledger.ring_spans(stream)?;
        let Some(first_todo) = spans.iter().position(|s| todo_ids.contains(&s.capture_id)) else {
            continue;
        };
        // Back to the last analysed capture that ends in wall-clock audio.
        let mut start = first_todo;
        let mut seed = None;
        while start > 0 {
            let prev = &spans[start - 1];
            match ledger.runs(prev.capture_id)?.last() {
                Some(r) if r.run.clock.is_wall() => {
                    seed = Some((r.run, prev.seqs.end));
                    break;
                }
                _ => start -= 1,
            }
        }
        let mut members = Vec::new();
        let mut layout: Option<StreamLayout> = None;
        for span in &spans[start..] {
            let capture = ledger.capture(span.capture_id)?;
            let l = layout.get_or_insert_with(|| {
                let mut l = StreamLayout::new(capture.meta.codec);
                if let Some((run, end)) = seed {
                    l.continue_after(run, end);
                }
                l
            });
            match ledger.capture_bytes(&capture) {
                Ok(bytes) => {
                    l.push(&bytes, Some(span.seqs.start), capture.meta.captured_at);
                    members.push(Some(capture));
                }
                Err(_) => {
                    // Unreadable: analysis reports it; the stream breaks here.
                    l.push(&[], Some(span.seqs.start), capture.meta.captured_at);
                    members.push(None);
                }
            }
        }
        let layouts = layout.map(StreamLayout::finish).unwrap_or_default();
        for (capture, layout) in members.into_iter().zip(layouts) {
            let Some(capture) = capture else { continue };
            if todo_ids.contains(&capture.id) {
                plan.layouts.insert(capture.id, layout);
                continue;
            }
            let stored = ledger.runs(capture.id)?;
            if !same_shape(&stored, &layout.runs) {
                plan.layouts.insert(capture.id, layout);
                plan.reanalyze.push(capture);
            } else if stored
                .iter()
                .zip(&layout.runs)
                .any(|(s, n)| s.run.start != n.start)
            {
                plan.retime.push((capture.id, layout.runs));
            }
        }
    }
    Ok(plan)
}
