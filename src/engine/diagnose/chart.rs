//! The timeline picture of a diagnose report: per device and clock (one
//! lane each; estimated lanes marked), where it recorded, the holes between,
//! the speech found, and the conversations with the reason each starts
//! where it does. Pure data; the HTML renderer draws it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::snapshot::Snapshot;
use crate::timeline::{BoundaryReason, Domain};

/// A stretch of time, Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Its start.
    pub start_ms: i64,
    /// Its end.
    pub end_ms: i64,
}

/// A conversation on the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartConversation {
    /// The timeline's id.
    pub id: String,
    /// Its start.
    pub start_ms: i64,
    /// Its end.
    pub end_ms: i64,
    /// Why it starts a new conversation, in a few words.
    pub reason: String,
}

/// One device under one clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    /// The device (or the card image).
    pub device: String,
    /// Whether its times are estimated (the clock was not set).
    pub estimated: bool,
    /// Where it recorded.
    pub recorded: Vec<Span>,
    /// The holes between its recordings.
    pub holes: Vec<Span>,
    /// Speech found.
    pub speech: Vec<Span>,
    /// Conversations.
    pub conversations: Vec<ChartConversation>,
}

impl Lane {
    /// An empty lane.
    pub fn new(device: &str, estimated: bool) -> Self {
        Lane {
            device: device.to_string(),
            estimated,
            recorded: Vec::new(),
            holes: Vec::new(),
            speech: Vec::new(),
            conversations: Vec::new(),
        }
    }

    /// Fills in the holes between its recordings (in time order).
    pub fn find_holes(&mut self) {
        self.recorded.sort_by_key(|s| s.start_ms);
        self.holes = self
            .recorded
            .windows(2)
            .filter(|w| w[1].start_ms > w[0].end_ms)
            .map(|w| Span {
                start_ms: w[0].end_ms,
                end_ms: w[1].start_ms,
            })
            .collect();
    }

    fn bounds(&self) -> Option<(i64, i64)> {
        let all =
            self.recorded
                .iter()
                .chain(&self.speech)
                .copied()
                .chain(self.conversations.iter().map(|c| Span {
                    start_ms: c.start_ms,
                    end_ms: c.end_ms,
                }));
        all.fold(None, |acc, s| match acc {
            None => Some((s.start_ms, s.end_ms)),
            Some((a, b)) => Some((a.min(s.start_ms), b.max(s.end_ms))),
        })
    }
}

/// The picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    /// The earliest time shown.
    pub start_ms: i64,
    /// The latest.
    pub end_ms: i64,
    /// The lanes, wall-clock ones first.
    pub lanes: Vec<Lane>,
}

impl Chart {
    /// A chart of these lanes.
    pub fn from_lanes(mut lanes: Vec<Lane>) -> Chart {
        lanes.retain(|l| l.bounds().is_some());
        lanes.sort_by(|a, b| (a.estimated, &a.device).cmp(&(b.estimated, &b.device)));
        let (start_ms, end_ms) = lanes
            .iter()
            .filter_map(Lane::bounds)
            .fold((i64::MAX, i64::MIN), |(a, b), (s, e)| (a.min(s), b.max(e)));
        Chart {
            start_ms: if lanes.is_empty() { 0 } else { start_ms },
            end_ms: if lanes.is_empty() { 0 } else { end_ms },
            lanes,
        }
    }

    /// The picture of a data directory: `reasons` are the boundary
    /// reasons of `snap`'s conversations, in order.
    pub fn of(snap: &Snapshot, reasons: &[BoundaryReason]) -> Chart {
        let mut lanes: BTreeMap<(String, bool), Lane> = BTreeMap::new();
        fn lane<'a>(
            lanes: &'a mut BTreeMap<(String, bool), Lane>,
            device: &str,
            estimated: bool,
        ) -> &'a mut Lane {
            lanes
                .entry((device.to_string(), estimated))
                .or_insert_with(|| Lane::new(device, estimated))
        }
        for r in &snap.recorded {
            lane(&mut lanes, &r.device, !r.clock.is_wall())
                .recorded
                .push(Span {
                    start_ms: r.start.0,
                    end_ms: r.end.0,
                });
        }
        for (i, c) in snap.timeline.conversations.iter().enumerate() {
            let l = lane(&mut lanes, &c.device, c.domain == Domain::Estimated);
            l.speech.extend(c.segments.iter().map(|s| Span {
                start_ms: s.start.0,
                end_ms: s.end.0,
            }));
            l.conversations.push(ChartConversation {
                id: c.id.clone(),
                start_ms: c.started_at.0,
                end_ms: c.finished_at.0,
                reason: reasons
                    .get(i)
                    .map_or_else(String::new, BoundaryReason::short),
            });
        }
        let mut lanes: Vec<Lane> = lanes.into_values().collect();
        lanes.iter_mut().for_each(Lane::find_holes);
        Chart::from_lanes(lanes)
    }

    /// This chart and `other`'s lanes together.
    pub fn with(self, other: Chart) -> Chart {
        Chart::from_lanes(self.lanes.into_iter().chain(other.lanes).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_the_gaps_between_recordings_and_bounds_cover_all_lanes() {
        let mut l = Lane::new("d", false);
        l.recorded = vec![
            Span {
                start_ms: 50,
                end_ms: 60,
            },
            Span {
                start_ms: 0,
                end_ms: 10,
            },
            Span {
                start_ms: 10,
                end_ms: 20,
            },
        ];
        l.find_holes();
        assert_eq!(
            l.holes,
            vec![Span {
                start_ms: 20,
                end_ms: 50
            }]
        );
        let mut e = Lane::new("d", true);
        e.speech = vec![Span {
            start_ms: -5,
            end_ms: 1,
        }];
        let c = Chart::from_lanes(vec![e, l, Lane::new("empty", false)]);
        assert_eq!((c.start_ms, c.end_ms), (-5, 60));
        assert_eq!(c.lanes.len(), 2);
        assert!(!c.lanes[0].estimated && c.lanes[1].estimated);
    }
}
