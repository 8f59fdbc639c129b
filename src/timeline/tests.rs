//! Behaviour of the timeline: the 120 s rule, partitions, edits, and order
//! independence.

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_717_000_000_000;

fn seg(id: i64, device: &str, start_s: f64, len_s: f64) -> Segment {
    let start = UtcMillis(T0 + (start_s * 1000.0) as i64);
    let span = (start, start.plus_ms((len_s * 1000.0) as i64));
    Segment::for_test(
        id,
        device,
        ClockTrust::Wall,
        span,
        SegmentStatus::Pending,
        None,
    )
}

fn shape(t: &Timeline) -> Vec<Vec<i64>> {
    t.conversations
        .iter()
        .map(|c| c.segments.iter().map(|s| s.id).collect())
        .collect()
}

fn build_default(segs: &[Segment], edits: &[Override]) -> Timeline {
    build(segs, edits, &Rules::default())
}

#[test]
fn a_119_second_silence_joins() {
    let t = build_default(&[seg(1, "omi", 0.0, 10.0), seg(2, "omi", 129.0, 5.0)], &[]);
    assert_eq!(shape(&t), vec![vec![1, 2]]);
}

#[test]
fn a_120_second_silence_splits() {
    let t = build_default(&[seg(1, "omi", 0.0, 10.0), seg(2, "omi", 130.0, 5.0)], &[]);
    assert_eq!(shape(&t), vec![vec![1], vec![2]]);
}

#[test]
fn a_180_second_silence_splits() {
    let t = build_default(&[seg(1, "omi", 0.0, 10.0), seg(2, "omi", 190.0, 5.0)], &[]);
    assert_eq!(shape(&t), vec![vec![1], vec![2]]);
}

#[test]
fn the_gap_is_measured_from_the_latest_end_not_the_previous_segment() {
    // 1 is long and still running when 2 (short) ends; 3 starts 100 s after 1 ends.
    let t = build_default(
        &[
            seg(1, "omi", 0.0, 300.0),
            seg(2, "omi", 10.0, 2.0),
            seg(3, "omi", 400.0, 5.0),
        ],
        &[],
    );
    assert_eq!(shape(&t), vec![vec![1, 2, 3]]);
}

#[test]
fn devices_never_share_and_interleaving_does_not_fragment() {
    let segs = [
        seg(1, "a", 0.0, 5.0),
        seg(2, "b", 10.0, 5.0),
        seg(3, "a", 20.0, 5.0),
        seg(4, "b", 30.0, 5.0),
    ];
    let t = build_default(&segs, &[]);
    assert_eq!(shape(&t), vec![vec![1, 3], vec![2, 4]]);
}

#[test]
fn wall_and_estimated_times_never_share() {
    let mut b = seg(2, "omi", 20.0, 5.0);
    b.clock = ClockTrust::Uptime;
    let t = build_default(&[seg(1, "omi", 0.0, 5.0), b], &[]);
    assert_eq!(shape(&t).len(), 2);
    assert!(
        t.conversations
            .iter()
            .any(|c| c.domain == Domain::Estimated)
    );
}

#[test]
fn a_wall_and_estimated_merge_names_each_by_its_clock_in_either_order() {
    let mut b = seg(2, "omi", 20.0, 5.0);
    b.clock = ClockTrust::Uptime;
    let t = build_default(&[seg(1, "omi", 0.0, 5.0), b], &[]);
    let id = |d: Domain| {
        t.conversations
            .iter()
            .find(|c| c.domain == d)
            .unwrap()
            .id
            .clone()
    };
    let (wall, est) = (id(Domain::Wall), id(Domain::Estimated));
    for (x, y) in [(&wall, &est), (&est, &wall)] {
        let e = join_overrides(&t, x, y).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{wall} has wall-clock times and {est} estimated")),
            "{e}"
        );
    }
}

#[test]
fn silent_segments_do_not_bridge_but_pending_ones_do() {
    // 1 ... (70 s) ... 2 ... (70 s) ... 3: joined through 2 while it bridges.
    let mut segs = vec![
        seg(1, "omi", 0.0, 10.0),
        seg(2, "omi", 80.0, 2.0),
        seg(3, "omi", 152.0, 5.0),
    ];
    assert_eq!(shape(&build_default(&segs, &[])), vec![vec![1, 2, 3]]);
    segs[1].status = SegmentStatus::Failed;
    assert_eq!(shape(&build_default(&segs, &[])), vec![vec![1, 2, 3]]);
    segs[1].status = SegmentStatus::Silent;
    let t = build_default(&segs, &[]);
    assert_eq!(shape(&t), vec![vec![1], vec![3]]);
    // The silent segment lies in no conversation's span.
    assert_eq!(
        t.loose_silent.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn a_silent_segment_inside_a_conversation_is_shown_in_it_but_is_not_a_member() {
    let mut segs = vec![
        seg(1, "omi", 0.0, 10.0),
        seg(2, "omi", 20.0, 2.0),
        seg(3, "omi", 40.0, 5.0),
    ];
    segs[1].status = SegmentStatus::Silent;
    let t = build_default(&segs, &[]);
    assert_eq!(shape(&t), vec![vec![1, 2, 3]]);
    let members: Vec<i64> = t.conversations[0].members().map(|s| s.id).collect();
    assert_eq!(members, vec![1, 3]);
    assert_eq!(t.conversations[0].id, conversation_id(["k1", "k3"]));
}

#[test]
fn merge_joins_everything_between_and_split_undoes_it() {
    let segs = [
        seg(1, "omi", 0.0, 10.0),
        seg(2, "omi", 300.0, 10.0),
        seg(3, "omi", 600.0, 10.0),
        seg(4, "omi", 900.0, 10.0),
    ];
    let t = build_default(&segs, &[]);
    assert_eq!(shape(&t).len(), 4);
    let a = t.conversations[0].id.clone();
    let c = t.conversations[2].id.clone();
    let joins = join_overrides(&t, &c, &a).unwrap();
    assert_eq!(joins.len(), 2);
    let t2 = build_default(&segs, &joins);
    assert_eq!(shape(&t2), vec![vec![1, 2, 3], vec![4]]);

    // Unmerge at segment 3: a later split wins over the earlier join.
    let split = split_override(&t2, 3).unwrap();
    let mut edits = joins.clone();
    edits.push(split);
    assert_eq!(
        shape(&build_default(&segs, &edits)),
        vec![vec![1, 2], vec![3], vec![4]]
    );
}

#[test]
fn split_breaks_a_conversation_at_a_segment() {
    let segs = [
        seg(1, "omi", 0.0, 10.0),
        seg(2, "omi", 20.0, 10.0),
        seg(3, "omi", 40.0, 10.0),
    ];
    let t = build_default(&segs, &[]);
    let o = split_override(&t, 2).unwrap();
    assert_eq!(
        shape(&build_default(&segs, &[o])),
        vec![vec![1], vec![2, 3]]
    );
    assert!(matches!(
        split_override(&t, 1),
        Err(EditError::AlreadyStarts { .. })
    ));
    assert!(matches!(
        split_override(&t, 99),
        Err(EditError::NoSuchSegment(99))
    ));
}

#[test]
fn merge_refuses_what_cannot_be_one_conversation() {
    let mut est = seg(3, "omi", 1000.0, 5.0);
    est.clock = ClockTrust::Uptime;
    let segs = [
        seg(1, "a", 0.0, 5.0),
        seg(2, "b", 0.0, 5.0),
        est,
        seg(4, "a", 2000.0, 5.0),
    ];
    let t = build_default(&segs, &[]);
    let id = |sid: i64| t.conversation_of(sid).unwrap().id.clone();
    assert!(matches!(
        join_overrides(&t, &id(1), &id(2)),
        Err(EditError::DifferentDevices { .. })
    ));
    assert!(matches!(
        join_overrides(&t, &id(1), &id(1)),
        Err(EditError::SameConversation(_))
    ));
    assert!(matches!(
        t.find("zzzz"),
        Err(EditError::NoSuchConversation(_))
    ));
    // Prefixes work when unique.
    assert_eq!(t.find(&id(4)[..6]).unwrap().id, id(4));
}

#[test]
fn edits_survive_re_running_vad() {
    // Two conversations merged by a person.
    let segs = [
        seg(1, "omi", 0.0, 10.0),
        seg(2, "omi", 200.0, 10.0),
        seg(3, "omi", 215.0, 4.0),
    ];
    let t = build_default(&segs, &[]);
    let joins = join_overrides(&t, &t.conversations[0].id, &t.conversations[1].id).unwrap();
    assert_eq!(shape(&build_default(&segs, &joins)), vec![vec![1, 2, 3]]);

    // VAD re-run with other settings: new ids, boundaries moved by tens of
    // ms, segment 2 split in two and 3 merged into it.
    let mut revad = vec![
        seg(11, "omi", -0.05, 10.1),
        seg(12, "omi", 199.96, 4.0),
        seg(13, "omi", 204.5, 15.0),
    ];
    for s in &mut revad {
        s.key = format!("revad-{}", s.id);
    }
    assert_eq!(
        shape(&build_default(&revad, &[])),
        vec![vec![11], vec![12, 13]]
    );
    assert_eq!(
        shape(&build_default(&revad, &joins)),
        vec![vec![11, 12, 13]]
    );
}

fn statuses() -> impl Strategy<Value = SegmentStatus> {
    prop_oneof![
        Just(SegmentStatus::Pending),
        Just(SegmentStatus::Speech),
        Just(SegmentStatus::Silent),
        Just(SegmentStatus::Failed),
    ]
}

/// A backlog: segments with gaps around the 120 s rule on two devices.
fn backlog() -> impl Strategy<Value = Vec<(Segment, SegmentStatus)>> {
    proptest::collection::vec(
        (
            prop_oneof![
                Just(1.0),
                Just(30.0),
                Just(119.0),
                Just(120.0),
                Just(121.0),
                Just(500.0)
            ],
            0.3f64..40.0,
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
            statuses(),
        ),
        1..40,
    )
    .prop_map(|items| {
        let mut t = 0.0;
        items
            .into_iter()
            .enumerate()
            .map(|(i, (gap, len, other_device, estimated, status))| {
                t += gap;
                let mut s = seg(i as i64 + 1, if other_device { "b" } else { "a" }, t, len);
                if estimated {
                    s.clock = ClockTrust::Uptime;
                }
                t += len;
                (s, status)
            })
            .collect()
    })
}

proptest! {
    /// Segments arriving in any order, and transcripts completing in any
    /// order, give the same final timeline.
    #[test]
    fn arrival_order_does_not_matter(
        items in backlog(),
        seed in any::<u64>(),
    ) {
        let finals: Vec<Segment> = items.iter().map(|(s, st)| Segment { status: *st, ..s.clone() }).collect();
        let reference = build_default(&finals, &[]);

        // Shuffle segment order and transcript completion order.
        let mut order: Vec<usize> = (0..items.len()).collect();
        let mut rng = seed;
        for i in (1..order.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let mut live: Vec<Segment> = order.iter().map(|&i| items[i].0.clone()).collect();
        // Every intermediate timeline is valid; the last equals the reference.
        for &i in order.iter().rev() {
            let id = items[i].0.id;
            let s = live.iter_mut().find(|s| s.id == id).unwrap();
            s.status = items[i].1;
            let _ = build_default(&live, &[]);
        }
        prop_assert_eq!(build_default(&live, &[]), reference);
    }

    /// Every bridging segment is in exactly one conversation; conversations
    /// are time-ordered and separated by at least the gap unless edited.
    #[test]
    fn conversations_partition_the_speech(items in backlog()) {
        let segs: Vec<Segment> = items.into_iter().map(|(s, st)| Segment { status: st, ..s }).collect();
        let t = build_default(&segs, &[]);
        let mut seen: Vec<i64> = t.conversations.iter().flat_map(|c| c.members().map(|s| s.id)).collect();
        seen.sort();
        let mut expect: Vec<i64> = segs.iter().filter(|s| s.status.bridges()).map(|s| s.id).collect();
        expect.sort();
        prop_assert_eq!(seen, expect);
        for c in &t.conversations {
            let members: Vec<&Segment> = c.members().collect();
            for w in members.windows(2) {
                prop_assert!(w[1].start.since(w[0].end) < Rules::default().gap_ms);
            }
        }
        for w in t.conversations.windows(2) {
            prop_assert!(w[0].started_at <= w[1].started_at);
        }
    }
}

#[test]
fn speech_cut_at_a_capture_boundary_is_one_segment_with_both_rows() {
    let said = |id, start_s, len_s, status, text: Option<&str>| Segment {
        status,
        text: text.map(str::to_string),
        ..seg(id, "omi", start_s, len_s)
    };
    use SegmentStatus::*;
    let t = build_default(
        &[
            said(1, 0.0, 2.0, Speech, Some("Good morning.")),
            // The next capture starts where 2 ends: 3 is the same sentence.
            said(2, 5.0, 15.0, Speech, Some("Over Bluetooth that takes")),
            said(3, 20.0, 1.0, Speech, Some("more than an hour.")),
            // Two copies of the same audio (two sources) overlap whole: not joined.
            said(4, 30.0, 2.0, Speech, Some("Right.")),
            said(5, 30.0, 2.0, Speech, Some("Right.")),
            // A silent row joined to one still pending waits with it.
            said(6, 40.0, 2.0, Silent, None),
            said(7, 42.0, 2.0, Pending, None),
        ],
        &[],
    );
    assert_eq!(shape(&t), vec![vec![1, 2, 4, 5, 6]]);
    let c = &t.conversations[0];
    let joined = &c.segments[1];
    assert_eq!(joined.ids().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(
        joined.text.as_deref(),
        Some("Over Bluetooth that takes more than an hour.")
    );
    assert_eq!(
        (joined.start, joined.end),
        (
            seg(2, "omi", 5.0, 0.0).start,
            seg(3, "omi", 21.0, 0.0).start
        )
    );
    assert!(joined.holds(3) && !joined.holds(4));
    assert_eq!(t.conversation_of(3).map(|c| &c.id), Some(&c.id));
    assert_eq!(c.segments[4].status, Pending);
    assert_eq!(c.segments[4].ids().collect::<Vec<_>>(), [6, 7]);
    // Identity is the rows' keys, as it was before they were joined.
    assert_eq!(
        c.id,
        conversation_id(["k1", "k2", "k3", "k4", "k5", "k6", "k7"])
    );
}
