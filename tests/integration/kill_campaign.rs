//! The kill-point campaign: `omi-sync --auto` pulling from the simulated
//! pendant (a slow link that drops), finding speech, transcribing with the
//! real Whisper model and pushing to the contract server (the real API's
//! `processing` answers, 5xx, 429, stalls and resets), SIGKILLed at random
//! moments several times in a row, then run to the end. After every kill and
//! at the end it checks what custody promises:
//!
//! - the pendant is never freed past what the ledger holds durably;
//! - nothing is counted as pushed that the cloud does not have;
//! - no local audio is deleted while a conversation it feeds is not in the
//!   cloud (the retention window is 0 days, so the janitor frees at once);
//!
//! and at the end also: every record of the ring exactly once in the ledger
//! (by seq and by content hash, freed captures included), every conversation
//! exactly once in the cloud, all of them pushed.
//!
//! `OMI_KILL_POINTS=N` sets how many kills to land (default 8: the CI run);
//! `OMI_KILL_SEED=S` replays a campaign. The long campaign:
//!
//! ```sh
//! OMI_KILL_POINTS=500 OMI_SYNC_MODEL=../shared/models/ggml-tiny.en.bin \
//!   cargo test --test integration kill_campaign -- --nocapture
//! ```
//!
//! It prints the kill points by stage and the outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::sim::SimPendant;
use omi_sync::store::LedgerReader;

use crate::common::{SPEECH_T0, Sandbox, demo_frames, pack_records};
use crate::stt_common;
use crate::support::contract_server::{ContractConfig, ContractServer, Fault, Route, TEST_KEY};

/// Kills per round before the round's run to the end.
const KILLS_PER_ROUND: usize = 5;

/// The campaign's tally.
#[derive(Debug, Default)]
struct Tally {
    /// Kills that landed, by the stage the run was in.
    by_stage: BTreeMap<String, usize>,
    /// Runs that ended on their own before their kill came.
    ended_first: usize,
    rounds: usize,
}

impl Tally {
    fn points(&self) -> usize {
        self.by_stage.values().sum()
    }
}

/// A small xorshift generator: the campaign replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A variant C ring with two short sessions of the demo's speech an hour
/// apart (one demo file each, about two minutes in all): two conversations.
fn ring() -> (Vec<u8>, Vec<u8>) {
    use omi_sync::device::usb::Variant;
    use omi_sync::device::usb::fixture::FixtureBuilder;
    let mut records = pack_records(&demo_frames(0), SPEECH_T0);
    records.extend(pack_records(&demo_frames(3), SPEECH_T0 + 3600));
    let count = (records.len() / RECORD_BYTES) as u64;
    let mut b = FixtureBuilder::new(Variant::C, count / 36 + 8).expect("format image");
    for commit in records.chunks(36 * RECORD_BYTES) {
        b.writer().append(commit).expect("append records");
    }
    (b.finish(), records)
}

/// One round's world: a data directory, the pendant's image, the cloud.
struct World {
    sb: Sandbox,
    image: PathBuf,
    records: Vec<u8>,
    server: ContractServer,
    model: PathBuf,
}

impl World {
    fn new(model: &Path) -> World {
        let sb = Sandbox::new();
        std::fs::write(
            sb.dir.path().join("config.toml"),
            // Short windows so re-sent creates never wait out a real hour;
            // short confirmation checks for the `processing` answers; audio
            // freed as soon as the cloud has it.
            "[cloud]\nrequest_timeout_secs = 3\nrate_window_secs = 4\n\
             confirm_check_secs = 1\nstale_claim_secs = 2\n\
             [storage]\nkeep_days = 0\n",
        )
        .unwrap();
        let (image, records) = ring();
        let path = sb.inputs().join("ring.img");
        std::fs::write(&path, image).unwrap();
        let server = ContractServer::start(ContractConfig {
            processing_delay: Duration::from_millis(300),
            stale_after: Duration::from_secs(2),
            window: Duration::from_secs(4),
            ..ContractConfig::default()
        });
        World {
            sb,
            image: path,
            records,
            server,
            model: model.to_path_buf(),
        }
    }

    fn device(&self) -> String {
        format!("sim:{}", self.image.display())
    }

    /// `--auto` from the simulated pendant, with `faults` on the link.
    fn auto(&self, faults: &str) -> Command {
        let mut cmd = self.sb.cmd();
        cmd.args(["--auto", "--json", "--wait", "--source"])
            .arg(format!("sim:{}", self.image.display()))
            .args(["--sim-faults", faults, "--api-url"])
            .arg(self.server.base_url())
            .env("OMI_API_KEY", TEST_KEY)
            .env("OMI_SYNC_MODEL", &self.model);
        cmd
    }

    /// Faults for the next run, drawn from `rng`: the link and the cloud.
    fn faults(&self, rng: &mut Rng) -> String {
        let faults = [
            Fault::Status(500),
            Fault::TooManyRequests {
                retry_after: Some("1".into()),
            },
            Fault::Stall(Duration::from_millis(800)),
            Fault::Reset,
            Fault::ProcessThenReset,
            Fault::ProcessThenStall(Duration::from_millis(500)),
            Fault::AnswerProcessing,
            Fault::ProcessingHangs,
        ];
        self.server.clear_faults();
        for _ in 0..rng.below(3) {
            let f = faults[rng.below(faults.len() as u64) as usize].clone();
            self.server.inject_on(Route::Create, f, 1);
        }
        format!(
            "delay-ms={},drop-random={},seed={}",
            1 + rng.below(2),
            20_000 + rng.below(40_000),
            rng.next() % 1000
        )
    }

    /// Custody's promises that hold at every moment (after a kill too).
    fn assert_safe(&self, when: &str) {
        if !self.ledger_made() {
            // Killed before the ledger was made: nothing may have moved.
            let freed_to = SimPendant::open(&self.image, "")
                .unwrap()
                .metadata()
                .read_seq;
            assert_eq!(freed_to, 0, "{when}: the pendant freed with no ledger");
            assert!(
                self.server.requests().is_empty(),
                "{when}: sent with no ledger"
            );
            return;
        }
        let ledger = LedgerReader::open(&self.sb.data()).unwrap();
        let durable = ledger
            .ring_resume_point(&self.device())
            .unwrap()
            .map_or(0, |r| r.durable_seq);
        let freed_to = SimPendant::open(&self.image, "")
            .unwrap()
            .metadata()
            .read_seq;
        assert!(
            freed_to <= durable,
            "{when}: the pendant was freed to {freed_to}, past the durable {durable}"
        );
        drop(ledger);

        let live: HashMap<String, bool> = self
            .server
            .conversations()
            .into_iter()
            .map(|c| (c.id.clone(), c.status == "completed"))
            .collect();
        let timeline = self.json(&["timeline", "--json"]);
        let mut in_cloud = BTreeSet::new();
        for c in timeline["conversations"].as_array().unwrap() {
            if c["cloud"]["state"] == "pushed" {
                let id = c["cloud"]["cloud_id"].as_str().unwrap_or_default();
                assert!(
                    live.get(id).copied().unwrap_or(false),
                    "{when}: conversation {} counted as pushed as {id:?}, which the cloud does not have completed",
                    c["id"]
                );
                in_cloud.insert(c["id"].as_str().unwrap().to_string());
            }
        }
        // Local audio gone only when every conversation it feeds is there.
        let feeds = self.conversations_by_capture(&timeline);
        let storage = self.json(&["storage", "--json"]);
        for cap in storage["captures"].as_array().unwrap() {
            let path = self.sb.data().join(cap["stored_path"].as_str().unwrap());
            if path.exists() {
                continue;
            }
            let id = cap["capture_id"].as_i64().unwrap();
            for conv in feeds.get(&id).into_iter().flatten() {
                assert!(
                    in_cloud.contains(conv),
                    "{when}: capture {id}'s audio was deleted but conversation {conv} is not in the cloud"
                );
            }
        }
    }

    /// Whether the ledger exists with its schema (a kill can land before
    /// the first run's schema transaction commits).
    fn ledger_made(&self) -> bool {
        let path = self.sb.data().join("ledger.sqlite3");
        path.exists()
            && rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
            .is_ok_and(|v| v > 0)
    }

    /// Which conversations each capture's segments belong to.
    fn conversations_by_capture(&self, timeline: &Value) -> HashMap<i64, Vec<String>> {
        let segments = self.json(&["segments", "--json"]);
        let capture_of: HashMap<i64, i64> = segments["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_i64().unwrap(), s["capture_id"].as_i64().unwrap()))
            .collect();
        let mut feeds: HashMap<i64, Vec<String>> = HashMap::new();
        for c in timeline["conversations"].as_array().unwrap() {
            for s in c["segments"].as_array().unwrap() {
                let cap = capture_of[&s["id"].as_i64().unwrap()];
                feeds
                    .entry(cap)
                    .or_default()
                    .push(c["id"].as_str().unwrap().to_string());
            }
        }
        feeds
    }

    /// What the job promises once a run has finished.
    fn assert_whole(&self) {
        self.assert_safe("at the end");
        let ledger = LedgerReader::open(&self.sb.data()).unwrap();
        let want = (self.records.len() / RECORD_BYTES) as u64;
        let streams = ledger.ring_streams(&self.device()).unwrap();
        assert_eq!(streams.len(), 1, "one stream");
        let mut next = 0;
        for span in ledger.ring_spans(streams[0]).unwrap() {
            assert_eq!(span.seqs.start, next, "no hole and nothing twice");
            let bytes = &self.records
                [span.seqs.start as usize * RECORD_BYTES..span.seqs.end as usize * RECORD_BYTES];
            let capture = ledger.capture(span.capture_id).unwrap();
            assert_eq!(
                capture.sha256,
                hex::encode(Sha256::digest(bytes)),
                "records {:?} held byte for byte",
                span.seqs
            );
            next = span.seqs.end;
        }
        assert_eq!(next, want, "every record held");
        drop(ledger);

        let timeline = self.json(&["timeline", "--json"]);
        let conversations = timeline["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 2, "{timeline:#}");
        assert!(
            conversations
                .iter()
                .all(|c| c["cloud"]["state"] == "pushed"),
            "{timeline:#}"
        );
        let live = self.server.conversations();
        assert_eq!(live.len(), 2, "one cloud copy per conversation");
        for c in &live {
            let sid = c.session_id.as_deref().expect("a session id");
            assert_eq!(self.server.creations_for(sid), 1, "{sid} created twice");
        }
        let read_seq = SimPendant::open(&self.image, "")
            .unwrap()
            .metadata()
            .read_seq;
        assert_eq!(read_seq, want, "the pendant freed once all is durable");
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.sb.cmd().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The stages of a whole run, in order, with how long each took.
type Stages = Vec<(String, Duration)>;

/// What a watched run did.
struct Watched {
    /// The stages it entered, in order, with when (since its start).
    entered: Vec<(String, Duration)>,
    /// The stage it was killed in, or `None` if it ended on its own.
    killed_in: Option<String>,
    /// Its exit code when it ended on its own.
    code: Option<i32>,
}

/// Runs `--auto`, following the `stage_started` events it prints, and
/// SIGKILLs it once `kill(stage index, time in that stage)` says so, where
/// the index is into `order` (a stage not in it counts as the last).
fn run_watched(
    world: &World,
    faults: &str,
    order: &[String],
    kill: impl Fn(usize, Duration) -> bool,
) -> Watched {
    let out = world.sb.dir.path().join("auto.out");
    let started = Instant::now();
    let mut child = world
        .auto(faults)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut entered: Vec<(String, Duration)> = vec![("start".into(), Duration::ZERO)];
    let mut read = 0;
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        // Whole lines only: the last may be half written.
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        for line in text[read.min(complete)..complete].lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_default();
            if v["event"] == "stage_started" {
                let stage = v["stage"].as_str().unwrap_or("?").to_string();
                entered.push((stage, started.elapsed()));
            }
        }
        read = complete;
        if let Some(status) = child.try_wait().unwrap() {
            return Watched {
                entered,
                killed_in: None,
                code: status.code(),
            };
        }
        let (stage, since) = entered.last().unwrap();
        let index = order.iter().position(|s| s == stage).unwrap_or(order.len());
        if kill(index, started.elapsed() - *since) {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            child.wait().unwrap();
            let stage = stage.clone();
            return Watched {
                entered,
                killed_in: Some(stage),
                code: None,
            };
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// One round: kills until `KILLS_PER_ROUND` landed (or a run finished the
/// job), then a run to the end, then the checks. Each kill aims at a stage
/// of `stages` at random and a moment inside it; a run that is already past
/// that stage is killed as soon as it enters the next.
fn round(model: &Path, rng: &mut Rng, stages: &Stages, tally: &mut Tally, budget: usize) {
    let world = World::new(model);
    let order: Vec<String> = stages.iter().map(|(s, _)| s.clone()).collect();
    for _ in 0..KILLS_PER_ROUND.min(budget) {
        let faults = world.faults(rng);
        let target = rng.below(stages.len() as u64) as usize;
        let at = Duration::from_millis(rng.below(stages[target].1.as_millis() as u64 + 1));
        let run = run_watched(&world, &faults, &order, |index, in_stage| {
            index > target || (index == target && in_stage >= at)
        });
        let Some(stage) = run.killed_in else {
            tally.ended_first += 1;
            break;
        };
        world.assert_safe(&format!("after a kill in {stage} ({faults})"));
        *tally.by_stage.entry(stage).or_default() += 1;
    }
    world.server.clear_faults();
    let out = world.auto("").output().unwrap();
    // 9: a killed run had already done it all but say so.
    assert!(
        matches!(out.status.code(), Some(0 | 9)),
        "the run to the end: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    world.assert_whole();
    tally.rounds += 1;
}

/// The stages of one whole uninterrupted run here and their lengths.
fn stages(model: &Path) -> Stages {
    let world = World::new(model);
    let started = Instant::now();
    let run = run_watched(&world, "delay-ms=1", &[], |_, _| false);
    assert_eq!(run.code, Some(0), "one whole run");
    world.assert_whole();
    let mut ends: Vec<Duration> = run.entered.iter().skip(1).map(|(_, at)| *at).collect();
    ends.push(started.elapsed());
    run.entered
        .into_iter()
        .zip(ends)
        .map(|((stage, from), to)| (stage, to.saturating_sub(from)))
        .collect()
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let points: usize = std::env::var("OMI_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("OMI_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill campaign: {points} points, OMI_KILL_SEED={seed}");
    let mut rng = Rng(seed.max(1));
    let stages = stages(&model);
    eprintln!("kill campaign: one whole run's stages {stages:?}");
    let mut tally = Tally::default();
    let started = Instant::now();
    while tally.points() < points {
        let before = tally.points();
        round(&model, &mut rng, &stages, &mut tally, points - before);
        assert!(
            tally.rounds <= 3 * (points / KILLS_PER_ROUND + 1),
            "kills keep missing: {tally:?}"
        );
    }
    eprintln!(
        "kill campaign: {} kill points in {} rounds ({} runs ended before their kill), \
         0 lost, 0 duplicated; by stage {:?}; {:.0?}; OMI_KILL_SEED={seed}",
        tally.points(),
        tally.rounds,
        tally.ended_first,
        tally.by_stage,
        started.elapsed(),
    );
}
