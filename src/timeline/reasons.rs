//! Why each conversation starts where it does: the reason for every
//! boundary of the timeline, for a person reviewing it.
//!
//! [`build`](super::build) lays out each `(device, domain)` partition on its
//! own; a conversation starts a partition's new group when the silence
//! before it reaches [`Rules::gap_ms`], or when a person split there. The
//! first conversation of a partition starts because nothing came before it
//! on that device and clock: when the conversation before it in time order
//! is another device's (or the same device's under the other clock), that is
//! what a person sees as the reason. [`boundary_reasons`] names the reason
//! for each conversation, from the same inputs as the timeline; it does no
//! I/O and is as pure as the layout itself.

use std::collections::HashMap;

use serde::Serialize;

use super::{Boundary, Conversation, Domain, Override, Rules, Timeline};
use crate::clock::UtcMillis;

/// Why a conversation starts a new one instead of continuing the previous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum BoundaryReason {
    /// Nothing comes before it.
    First,
    /// The silence since the previous conversation of the same device and
    /// clock reaches the rule.
    Gap {
        /// That silence, ms.
        silence_ms: i64,
    },
    /// A person split here (the silence alone would have joined it).
    Edit {
        /// The silence before it, ms.
        silence_ms: i64,
    },
    /// The conversation before it in time is another device's: devices never
    /// share a conversation.
    OtherDevice {
        /// That device.
        device: String,
    },
    /// The conversation before it in time is the same device's under the
    /// other clock (wall versus estimated): they never share one.
    OtherClock {
        /// The previous conversation's clock.
        previous: Domain,
    },
}

impl BoundaryReason {
    /// The reason in a few words, as the timeline views show it ("gap 3m",
    /// "your split", "other device").
    pub fn short(&self) -> String {
        match self {
            BoundaryReason::First => "first".into(),
            BoundaryReason::Gap { silence_ms } => {
                format!("gap {}", crate::term::duration(*silence_ms as f64 / 1000.0))
            }
            BoundaryReason::Edit { .. } => "your split".into(),
            BoundaryReason::OtherDevice { .. } => "other device".into(),
            BoundaryReason::OtherClock { .. } => "other clock".into(),
        }
    }
}

/// The reason for each conversation of `timeline` (in its order) under
/// `rules`, with `overrides` the edits in effect, in edit-log order.
pub fn boundary_reasons(
    timeline: &Timeline,
    overrides: &[Override],
    rules: &Rules,
) -> Vec<BoundaryReason> {
    let convs = &timeline.conversations;
    // Per partition, the conversation so far that finished last (the later
    // one on a tie), so each boundary is found in one pass.
    let mut latest: HashMap<(&str, Domain), &Conversation> = HashMap::new();
    convs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = (c.device.as_str(), c.domain);
            let same_partition = latest.get(&key).copied();
            if same_partition.is_none_or(|p| c.finished_at >= p.finished_at) {
                latest.insert(key, c);
            }
            match same_partition {
                Some(q) => within_partition(q, c, overrides, rules),
                None => match i.checked_sub(1).map(|j| &convs[j]) {
                    None => BoundaryReason::First,
                    Some(p) if p.device != c.device => BoundaryReason::OtherDevice {
                        device: p.device.clone(),
                    },
                    Some(p) if p.domain != c.domain => {
                        BoundaryReason::OtherClock { previous: p.domain }
                    }
                    Some(_) => BoundaryReason::First,
                },
            }
        })
        .collect()
}

/// Why `c` does not continue `q`, the conversation before it on the same
/// device and clock.
fn within_partition(
    q: &Conversation,
    c: &Conversation,
    overrides: &[Override],
    rules: &Rules,
) -> BoundaryReason {
    let start = c.members().next().map_or(c.started_at, |s| s.start);
    let end = c.members().next().map_or(c.finished_at, |s| s.end);
    let silence_ms = start.since(q.finished_at);
    if silence_ms >= rules.gap_ms {
        return BoundaryReason::Gap { silence_ms };
    }
    let split_here = overrides
        .iter()
        .rev()
        .find(|o| o.device == c.device && o.domain == c.domain && in_boundary(o.anchor, q, end))
        .is_some_and(|o| o.boundary == Boundary::Split);
    if split_here {
        BoundaryReason::Edit { silence_ms }
    } else {
        // The layout only starts a group on a gap or a split; anything else
        // is a silence the rule counts as long enough.
        BoundaryReason::Gap { silence_ms }
    }
}

/// Whether an override anchored at `anchor` applies to the boundary between
/// `q` and a segment ending at `next_end` (the layout's own interval).
fn in_boundary(anchor: UtcMillis, q: &Conversation, next_end: UtcMillis) -> bool {
    anchor > q.finished_at && anchor <= next_end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockTrust;
    use crate::timeline::{Segment, SegmentStatus, build, split_override};

    const T0: i64 = 1_717_000_000_000;

    fn seg(id: i64, device: &str, clock: ClockTrust, start_s: i64, len_s: i64) -> Segment {
        let start = UtcMillis(T0 + start_s * 1000);
        let span = (start, start.plus_ms(len_s * 1000));
        Segment::for_test(
            id,
            device,
            clock,
            span,
            SegmentStatus::Speech,
            Some("words"),
        )
    }

    #[test]
    fn interleaved_devices_and_clocks_each_find_their_own_previous_conversation() {
        // Three partitions interleaved, with overlapping and equal ends: each
        // boundary is measured from the partition's conversation that
        // finished last before it, as a scan of everything before it finds.
        let mut segs = Vec::new();
        for i in 0..60i64 {
            let (device, clock) = match i % 3 {
                0 => ("a", ClockTrust::Wall),
                1 => ("b", ClockTrust::Wall),
                _ => ("a", ClockTrust::Uptime),
            };
            let len = if i % 7 == 0 { 400 } else { 10 };
            segs.push(seg(i, device, clock, i * 97 % 1300 + i * 50, len));
        }
        let rules = Rules::default();
        let t = build(&segs, &[], &rules);
        let convs = &t.conversations;
        let scanned: Vec<BoundaryReason> = convs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                match convs[..i]
                    .iter()
                    .filter(|p| p.device == c.device && p.domain == c.domain)
                    .max_by_key(|p| p.finished_at)
                {
                    Some(q) => within_partition(q, c, &[], &rules),
                    None => boundary_reasons(&t, &[], &rules)[i].clone(),
                }
            })
            .collect();
        assert!(convs.len() > 10, "{}", convs.len());
        assert_eq!(boundary_reasons(&t, &[], &rules), scanned);
    }

    #[test]
    fn each_boundary_names_its_reason() {
        let w = ClockTrust::Wall;
        let segs = [
            seg(1, "a", w, 0, 10),
            // 190 s of silence on device a.
            seg(2, "a", w, 200, 10),
            // Device b speaks 5 s after a stops.
            seg(3, "b", w, 215, 10),
            // Device a again, estimated clock, right after.
            seg(4, "a", ClockTrust::Uptime, 230, 10),
        ];
        let rules = Rules::default();
        let t = build(&segs, &[], &rules);
        assert_eq!(
            boundary_reasons(&t, &[], &rules),
            vec![
                BoundaryReason::First,
                BoundaryReason::Gap {
                    silence_ms: 190_000
                },
                BoundaryReason::OtherDevice { device: "a".into() },
                BoundaryReason::OtherDevice { device: "b".into() },
            ]
        );
        // Without device b between them, the clock is the reason.
        let t = build(&[segs[0].clone(), segs[3].clone()], &[], &rules);
        assert_eq!(
            boundary_reasons(&t, &[], &rules)[1],
            BoundaryReason::OtherClock {
                previous: Domain::Wall
            }
        );
    }

    #[test]
    fn a_split_is_the_persons_edit_and_a_gap_reaches_the_rule_exactly() {
        let w = ClockTrust::Wall;
        let segs = [
            seg(1, "a", w, 0, 10),
            seg(2, "a", w, 40, 10),
            seg(3, "a", w, 170, 10),
        ];
        let rules = Rules::default();
        let joined = build(&segs, &[], &rules);
        assert_eq!(joined.conversations.len(), 2, "120 s exactly splits");
        let split = split_override(&joined, 2).unwrap();
        let edited = build(&segs, std::slice::from_ref(&split), &rules);
        assert_eq!(
            boundary_reasons(&edited, &[split], &rules),
            vec![
                BoundaryReason::First,
                BoundaryReason::Edit { silence_ms: 30_000 },
                BoundaryReason::Gap {
                    silence_ms: 120_000
                },
            ]
        );
    }

    #[test]
    fn a_split_where_the_gap_already_splits_reports_the_gap() {
        let w = ClockTrust::Wall;
        let segs = [seg(1, "a", w, 0, 10), seg(2, "a", w, 300, 10)];
        let rules = Rules::default();
        let split = Override {
            device: "a".into(),
            domain: Domain::Wall,
            anchor: segs[1].start,
            boundary: Boundary::Split,
        };
        let t = build(&segs, std::slice::from_ref(&split), &rules);
        assert_eq!(
            boundary_reasons(&t, &[split], &rules)[1],
            BoundaryReason::Gap {
                silence_ms: 290_000
            }
        );
    }
}
