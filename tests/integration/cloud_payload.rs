//! The payload builder against the contract: whatever it builds, the server
//! accepts; oversize conversations fit in 500 segments with all text kept;
//! the session id follows membership.

use crate::support;

use omi_sync::clock::UtcMillis;
use omi_sync::cloud::api::PushOutcome;
use omi_sync::cloud::payload::{self, MAX_SEGMENTS, PayloadError, Piece, PushConversation};
use proptest::prelude::*;

use support::contract_server::{ContractConfig, ContractServer, validate_create};
use support::{T0, client, conversation};

fn texts(v: &serde_json::Value) -> String {
    v["transcript_segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn two_thousand_pieces_arrive_as_at_most_500_with_all_text_in_order() {
    let server = ContractServer::start(ContractConfig::default());
    let conv = conversation("long", 2000);
    let built = payload::build(&conv).unwrap();
    assert!(built.request.transcript_segments.len() <= MAX_SEGMENTS);
    assert!(!built.joined_across_speakers());
    let o = client(&server).create_conversation(&built.request);
    assert!(o.is_created(), "{o:?}");
    let stored = &server.conversations()[0].body;
    let expected: Vec<String> = conv.pieces.iter().map(|p| p.text.clone()).collect();
    assert_eq!(texts(stored), expected.join(" "));
    assert_eq!(stored["source"], "sdcard");
    assert!(
        stored.get("client_device_id").is_none(),
        "no install id given: none sent"
    );
    assert!(stored["client_platform"].is_string());
    assert_eq!(stored["client_session_id"], built.session_id.as_str());
}

#[test]
fn single_speaker_monologue_over_500_pieces_fits() {
    let mut conv = conversation("mono", 1200);
    for p in &mut conv.pieces {
        p.speaker = Some(0);
    }
    let built = payload::build(&conv).unwrap();
    assert!(built.request.transcript_segments.len() <= MAX_SEGMENTS);
    assert!(!built.joined_across_speakers());
    assert!(validate_create(&built.to_json()).is_ok());
}

#[test]
fn alternating_speakers_over_500_turns_fit_and_say_so() {
    let mut conv = conversation("ping-pong", 900);
    for (i, p) in conv.pieces.iter_mut().enumerate() {
        p.speaker = Some((i % 2) as u32);
    }
    let built = payload::build(&conv).unwrap();
    assert_eq!(built.request.transcript_segments.len(), MAX_SEGMENTS);
    assert!(built.joined_across_speakers());
    let server = ContractServer::start(ContractConfig::default());
    assert!(
        client(&server)
            .create_conversation(&built.request)
            .is_created()
    );
    let expected: Vec<String> = conv.pieces.iter().map(|p| p.text.clone()).collect();
    assert_eq!(texts(&server.conversations()[0].body), expected.join(" "));
}

#[test]
fn empty_or_invalid_conversations_are_refused_with_reasons() {
    let mut silent = conversation("silent", 3);
    for p in &mut silent.pieces {
        p.text = "  ".into();
    }
    let e = payload::build(&silent).unwrap_err();
    assert_eq!(e, PayloadError::NoText { pieces: 3 });
    assert!(e.to_string().contains("nothing to push"));

    let mut backwards = conversation("backwards", 3);
    backwards.finished_at = UtcMillis(T0 - 1);
    let e = payload::build(&backwards).unwrap_err();
    assert!(e.to_string().contains("no later than it starts"), "{e}");

    let mut anonymous = conversation("anon", 3);
    anonymous.member_segment_keys.clear();
    assert!(
        payload::build(&anonymous)
            .unwrap_err()
            .to_string()
            .contains("identity")
    );
}

#[test]
fn session_id_follows_membership_over_http() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let conv = conversation("members", 6);
    let mut shuffled = conv.clone();
    shuffled.member_segment_keys.reverse();
    shuffled.pieces.reverse();
    let a = payload::build(&conv).unwrap();
    let b = payload::build(&shuffled).unwrap();
    assert_eq!(a.session_id, b.session_id);
    let (PushOutcome::Created { id: ia, .. }, PushOutcome::Created { id: ib, .. }) = (
        c.create_conversation(&a.request),
        c.create_conversation(&b.request),
    ) else {
        panic!("not created")
    };
    assert_eq!(ia, ib);
    assert_eq!(server.total_creations(), 1);

    // A merge (one more member) is a different conversation.
    let mut merged = conv.clone();
    merged.member_segment_keys.push("members/seg-extra".into());
    let m = payload::build(&merged).unwrap();
    assert_ne!(m.session_id, a.session_id);
    assert!(c.create_conversation(&m.request).is_created());
    assert_eq!(server.total_creations(), 2);
}

#[test]
fn many_generated_conversations_are_all_accepted_over_http() {
    let server = ContractServer::start(ContractConfig {
        hourly_limit: 1000,
        ..ContractConfig::default()
    });
    let c = client(&server);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    });
    let pushed = std::cell::Cell::new(0);
    runner
        .run(&pushable_conversation(), |conv| {
            if let Ok(built) = payload::build(&conv) {
                let o = c.create_conversation(&built.request);
                prop_assert!(o.is_created(), "{o:?} for {:?}", built.request);
                pushed.set(pushed.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    let pushed = pushed.get();
    assert!(
        pushed > 20,
        "only {pushed} pushable conversations generated"
    );
    assert_eq!(
        server.total_creations() as usize,
        server.conversations().len()
    );
}

/// Mostly pushable: members and a language are always there.
fn pushable_conversation() -> impl Strategy<Value = PushConversation> {
    arb_conversation().prop_map(|mut c| {
        c.member_segment_keys.push("always".to_string());
        c.language = "en".to_string();
        c
    })
}

fn arb_piece() -> impl Strategy<Value = Piece> {
    (
        -5_000i64..4_000_000,
        -2_000i64..120_000,
        prop_oneof![
            3 => "[a-zA-Z ,.'!?]{1,40}",
            1 => Just(String::new()),
            1 => Just("   ".to_string()),
            1 => "\\PC{1,20}",
            1 => "[\\x00-\\x1f\\x7f\\u{85}\\u{a0} a]{1,6}",
        ],
        proptest::option::of(0u32..4),
    )
        .prop_map(|(start, len, text, speaker)| Piece {
            start: UtcMillis(T0 + start),
            end: UtcMillis(T0 + start + len),
            text,
            speaker,
        })
}

fn arb_conversation() -> impl Strategy<Value = PushConversation> {
    (
        proptest::collection::vec("[a-z0-9/:-]{0,30}", 0..5),
        proptest::collection::vec(arb_piece(), 0..700),
        -10_000i64..5_000_000,
        prop_oneof![
            Just("en".to_string()),
            Just("de".to_string()),
            Just(String::new())
        ],
    )
        .prop_map(|(keys, pieces, duration, language)| PushConversation {
            member_segment_keys: keys,
            started_at: UtcMillis(T0),
            finished_at: UtcMillis(T0 + duration),
            pieces,
            language,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the builder produces, the server's validation accepts; what it
    /// refuses has a reason; text is never lost.
    #[test]
    fn the_server_accepts_everything_the_builder_produces(conv in arb_conversation()) {
        match payload::build(&conv) {
            Ok(built) => {
                let json = built.to_json();
                let valid = validate_create(&json);
                prop_assert!(valid.is_ok(), "{valid:?}");
                let valid = valid.unwrap();
                prop_assert_eq!(valid.session_id.as_deref(), Some(built.session_id.as_str()));
                prop_assert!(valid.segments <= MAX_SEGMENTS);
                // Every non-empty text survives, in time order.
                let mut pieces: Vec<&Piece> = conv.pieces.iter().collect();
                pieces.sort_by_key(|p| (p.start, p.end));
                let expected: Vec<String> = pieces
                    .iter()
                    .map(|p| payload::clean_text(&p.text))
                    .filter(|t| !t.is_empty())
                    .collect();
                prop_assert_eq!(texts(&json), expected.join(" "));
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                let has_text = conv.pieces.iter().any(|p| !payload::clean_text(&p.text).is_empty());
                let explained = conv.member_segment_keys.is_empty()
                    || conv.finished_at <= conv.started_at
                    || conv.language.trim().is_empty()
                    || !has_text;
                prop_assert!(explained, "refused without cause: {e}");
            }
        }
    }

    /// The session id depends on the set of members only.
    #[test]
    fn session_id_is_a_function_of_the_member_set(
        keys in proptest::collection::vec("[a-z0-9]{1,8}", 1..20),
        seed in any::<u64>(),
        extra in "[A-Z]{1,8}",
    ) {
        let mut shuffled = keys.clone();
        let n = shuffled.len();
        for i in (1..n).rev() {
            shuffled.swap(i, (seed as usize).wrapping_mul(31).wrapping_add(i) % (i + 1));
        }
        shuffled.push(keys[0].clone());
        let a = payload::session_id(&keys).unwrap();
        prop_assert_eq!(&a, &payload::session_id(&shuffled).unwrap());
        let mut more = keys.clone();
        more.push(extra);
        prop_assert_ne!(&a, &payload::session_id(&more).unwrap());
        prop_assert!(a.as_str().chars().count() <= 200);
    }
}
