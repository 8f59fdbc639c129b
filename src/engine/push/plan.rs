//! The plan: what the outbox must do so that the cloud holds exactly the
//! timeline's pushable conversations, and what each conversation's cloud
//! status is. Reads only; [`apply`] writes it.
//!
//! "The cloud already has exactly this" means an outbox row with the same
//! member segments that is live (queued, sent, being confirmed, pushed), or
//! a retracted one whose cloud copy is still there (a delete not sent yet,
//! a copy the cloud refused to delete, one a person chose to keep): such a
//! row is taken as it is, and nothing is sent. Only a conversation whose
//! cloud copy was deleted (or may have been) needs a new generation of its
//! session id, and so exactly one create. That makes `push; merge; push;
//! undo; push; push` cost one delete and two creates after the undo, then
//! nothing.
//!
//! A row no longer on the timeline is retracted. When all its segments are
//! still in the ledger, a person's edit changed it: its cloud copy is
//! deleted, as the plan (and `timeline`, and a dry run) shows first. When
//! some are gone (a VAD re-run found no speech there, a capture was lost),
//! nothing is sent for it, nor for what now overlaps it, until a person
//! decides: keep the cloud copy and forget it locally, or replace it.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::PushOptions;
use crate::clock::UtcMillis;
use crate::cloud::SessionId;
use crate::cloud::payload::{
    self, CreateConversationRequest, PayloadError, Piece, PushConversation,
};
use crate::store::{HeldFor, Ledger, LedgerReader, NewPush, OutboxRow, OutboxState, StoreError};
use crate::timeline::{Conversation, Domain, SegmentStatus, Timeline};

/// Why a conversation is not pushed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Hold {
    /// Its times are estimated: a person reviews them and allows it.
    EstimatedTime {
        /// Why they are estimated: `uptime` (the pendant's clock was not
        /// set) or `unknown` (no usable time at all, e.g. a file name
        /// without one).
        clock: crate::clock::ClockTrust,
    },
    /// Some members wait for transcription.
    WaitingForTranscription {
        /// How many.
        pending: usize,
    },
    /// Transcription failed for some members.
    TranscriptionFailed {
        /// How many.
        failed: usize,
    },
    /// Nothing to send: no member has text.
    NoText,
    /// It cannot be made into a valid request.
    Invalid {
        /// Why.
        message: String,
    },
    /// It overlaps a pushed conversation whose segments vanished: pushing
    /// it could duplicate that one in the cloud, so it waits for the same
    /// decision.
    OverlapsVanished {
        /// The vanished conversation's session id.
        session_id: String,
    },
}

/// Where one conversation of the timeline stands with the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CloudStatus {
    /// Not pushable yet.
    Held {
        /// Why.
        #[serde(flatten)]
        hold: Hold,
    },
    /// To be queued now (not in the outbox yet).
    New {
        /// Its `client_session_id`.
        session_id: String,
        /// Cloud conversations it replaces (edited after they were pushed).
        replaces: Vec<String>,
    },
    /// In the outbox, not sent (or not answered) yet.
    Queued {
        /// Its `client_session_id`.
        session_id: String,
        /// Not before this.
        retry_at: Option<String>,
        /// Requests sent so far.
        attempts: u32,
        /// The last failure.
        last_error: Option<String>,
    },
    /// Sent; the cloud is still processing it and it is being confirmed.
    /// Not counted as pushed until the cloud reports it completed.
    Confirming {
        /// Its `client_session_id`.
        session_id: String,
        /// The cloud's id.
        cloud_id: String,
        /// When the cloud first answered `processing`.
        since: Option<String>,
    },
    /// In the cloud, completed.
    Pushed {
        /// Its `client_session_id`.
        session_id: String,
        /// The cloud's id.
        cloud_id: String,
    },
    /// The server refused it.
    Rejected {
        /// Its `client_session_id`.
        session_id: String,
        /// The HTTP status, when known.
        status: Option<u16>,
        /// The server's message.
        message: String,
    },
    /// The cloud refused with 402 (locked): a person resolves it there.
    Locked {
        /// Its `client_session_id`.
        session_id: String,
        /// The cloud's id, when known.
        cloud_id: Option<String>,
        /// The server's message.
        message: String,
    },
}

/// A conversation on the timeline and its cloud status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationStatus {
    /// The timeline's id.
    pub conversation: String,
    /// Its start.
    pub started_at: UtcMillis,
    /// Its cloud status.
    pub status: CloudStatus,
}

/// A conversation to queue, with its request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    /// The outbox row to write.
    pub push: NewPush,
    /// The request, as sent.
    pub request: CreateConversationRequest,
    /// Readable notes from building the request (pieces joined, ...).
    pub notes: Vec<String>,
}

/// Why a refused row goes back in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum RequeueWhy {
    /// Its refusal was not its fault (a redirect, a proxy's 404, a route
    /// that was not there): the URL may have been fixed since.
    NotItsFault {
        /// The refusal's status.
        status: u16,
    },
    /// A person asked (`push --retry-rejected`).
    Asked,
    /// It was retracted before the cloud ever had it and is wanted again:
    /// its session id was never used, so it is sent under it.
    WantedAgain,
}

/// A row going back in the queue, with a freshly built request.
#[derive(Debug, Clone, PartialEq)]
pub struct Requeue {
    /// Its session id.
    pub session_id: String,
    /// The request as the timeline builds it now.
    pub request: CreateConversationRequest,
    /// Why.
    pub why: RequeueWhy,
}

/// What becomes of a conversation whose segments vanished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VanishedDecision {
    /// Held until a person decides (the default).
    Held,
    /// `--forget-vanished`: the cloud copy is kept, omi-sync stops tracking it.
    Forget,
    /// `--replace-vanished`: the cloud copy is deleted like an edit's.
    Replace,
}

/// A conversation that may be in the cloud and whose segments are gone
/// from the ledger, not by an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vanished {
    /// Its session id.
    pub session_id: String,
    /// The timeline id it had.
    pub conversation: String,
    /// The recording device.
    pub device: String,
    /// Its start.
    pub started_at: UtcMillis,
    /// Its end.
    pub finished_at: UtcMillis,
    /// The cloud's id, when known.
    pub cloud_id: Option<String>,
    /// How many of its segments are gone.
    pub missing: usize,
    /// How many it had.
    pub members: usize,
    /// What this push does about it.
    pub decision: VanishedDecision,
}

/// What to do about outbox rows no longer on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retraction {
    /// Never reached the cloud: drop it.
    Supersede(String),
    /// May be in the cloud and a person's edit replaced it: delete it there.
    Delete(String),
    /// Its segments vanished: hold it for a person.
    Hold(String),
    /// Its segments vanished and a person keeps the cloud copy: forget it.
    Forget(String),
}

/// The comparison of timeline and outbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Every conversation of the timeline, in order, with its status.
    pub conversations: Vec<ConversationStatus>,
    /// Conversations to queue.
    pub new: Vec<NewConversation>,
    /// Outbox rows to retract.
    pub retract: Vec<Retraction>,
    /// Retracted rows the timeline wants again while the cloud still has
    /// them: taken back as they are.
    pub readopt: Vec<String>,
    /// Held rows whose segments are back: released.
    pub release: Vec<String>,
    /// Refused (or never sent) rows to queue again.
    pub requeue: Vec<Requeue>,
    /// Conversations whose segments vanished, and what becomes of them.
    pub vanished: Vec<Vanished>,
}

/// The pieces of a conversation's transcript, one per transcribed member
/// (speech cut at the boundary of two contiguous captures is one member:
/// the timeline joins it).
fn pieces(conv: &Conversation) -> Vec<Piece> {
    conv.members()
        .filter(|s| s.status == SegmentStatus::Speech)
        .filter_map(|s| {
            let text = s.text.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
            Some(Piece {
                start: s.start,
                end: s.end,
                text: text.to_string(),
                speaker: None,
            })
        })
        .collect()
}

/// Why `conv` cannot be pushed, if it cannot.
fn hold_for(conv: &Conversation, allow_estimated: bool) -> Option<Hold> {
    if conv.domain == Domain::Estimated && !allow_estimated {
        let clock = conv
            .members()
            .map(|s| s.clock)
            .find(|c| !c.is_wall())
            .unwrap_or(crate::clock::ClockTrust::Unknown);
        return Some(Hold::EstimatedTime { clock });
    }
    let count = |st: SegmentStatus| conv.members().filter(|s| s.status == st).count();
    let pending = count(SegmentStatus::Pending);
    if pending > 0 {
        return Some(Hold::WaitingForTranscription { pending });
    }
    let failed = count(SegmentStatus::Failed);
    if failed > 0 {
        return Some(Hold::TranscriptionFailed { failed });
    }
    None
}

/// The cloud request for a pushable conversation.
pub fn request_for(
    conv: &Conversation,
    opts: &PushOptions,
) -> Result<(NewPush, CreateConversationRequest, Vec<String>), Hold> {
    let members: Vec<String> = conv
        .members()
        .flat_map(|s| s.keys())
        .map(str::to_string)
        .collect();
    let push = PushConversation {
        member_segment_keys: members.clone(),
        started_at: conv.started_at,
        finished_at: conv.finished_at,
        pieces: pieces(conv),
        language: opts.language.clone(),
    };
    let built = payload::build_with(&push, &opts.payload).map_err(|e| match e {
        PayloadError::NoText { .. } => Hold::NoText,
        other => Hold::Invalid {
            message: other.to_string(),
        },
    })?;
    let request_json = serde_json::to_string(&built.request).unwrap_or_default();
    Ok((
        NewPush {
            session_id: built.session_id.as_str().to_string(),
            conversation: conv.id.clone(),
            device: conv.device.clone(),
            members,
            started_at: conv.started_at,
            finished_at: conv.finished_at,
            segments: built.request.transcript_segments.len() as u32,
            request: request_json,
        },
        built.request,
        built.notes.iter().map(|n| n.to_string()).collect(),
    ))
}

/// Whether a refusal with this status was the address's fault, not the
/// conversation's (a redirect, a proxy's 404, a route that was not there;
/// 0: the request could not even be read back or encoded).
fn not_its_fault(status: Option<u16>) -> bool {
    matches!(status, Some(0 | 300..=399 | 404 | 405))
}

/// The rows of one conversation's generations, oldest first.
type Generations<'a> = Vec<(u32, &'a OutboxRow)>;

/// What to do for a pushable conversation, given its generations' rows.
enum Choice<'a> {
    /// A live row: it stands as it is.
    Take(&'a OutboxRow),
    /// A retracted row whose cloud copy is still there: take it back.
    Readopt(&'a OutboxRow),
    /// A retracted row the cloud never had: queue it again under its id.
    Reuse(&'a OutboxRow),
    /// Nothing usable: queue this generation.
    New(u32),
}

/// `request` is what the conversation would send now: a retracted copy is
/// taken back only when the cloud's copy says the same (a merge undone); a
/// copy whose words changed since (transcribed again) is not, and its
/// delete goes ahead while the new words are queued as a new generation.
fn choose<'a>(gens: &[(u32, &'a OutboxRow)], request: &CreateConversationRequest) -> Choice<'a> {
    let newest =
        |f: &dyn Fn(&OutboxRow) -> bool| gens.iter().rev().find(|(_, r)| f(r)).map(|(_, r)| *r);
    let live = |r: &OutboxRow| {
        matches!(
            r.state,
            OutboxState::Pending
                | OutboxState::Sending
                | OutboxState::Confirming
                | OutboxState::Pushed
                | OutboxState::Rejected
                | OutboxState::Failed
                | OutboxState::Locked
        )
    };
    let says_the_same = |r: &OutboxRow| {
        serde_json::from_str::<CreateConversationRequest>(&r.push.request)
            .is_ok_and(|sent| sent.transcript_segments == request.transcript_segments)
    };
    let cloud_still_has = |r: &OutboxRow| {
        ((r.state == OutboxState::DeletePending && r.attempts == 0)
            || r.state == OutboxState::Forgotten)
            && says_the_same(r)
    };
    if let Some(r) = newest(&live) {
        return Choice::Take(r);
    }
    if let Some(r) = newest(&cloud_still_has) {
        return Choice::Readopt(r);
    }
    if let Some(r) = newest(&|r| r.state == OutboxState::Superseded) {
        return Choice::Reuse(r);
    }
    Choice::New(gens.iter().map(|(g, _)| *g).max().map_or(1, |g| g + 1))
}

fn overlaps(a: (UtcMillis, UtcMillis), b: (UtcMillis, UtcMillis)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Every segment key the ledger holds (the timeline lays out all of them).
fn present_keys(timeline: &Timeline) -> HashSet<&str> {
    timeline
        .conversations
        .iter()
        .flat_map(|c| c.segments.iter())
        .chain(timeline.loose_silent.iter())
        .flat_map(|s| s.keys())
        .collect()
}

/// Compares the timeline with the outbox (reads only).
pub fn plan(
    ledger: &LedgerReader,
    timeline: &Timeline,
    opts: &PushOptions,
) -> Result<Plan, StoreError> {
    let rows = ledger.outbox()?;
    let mut by_base: BTreeMap<String, Generations> = BTreeMap::new();
    for row in &rows {
        let Some(id) = SessionId::from_stored(&row.push.session_id) else {
            continue;
        };
        let base = id.base();
        if let Some(g) = id.generation_of(&base) {
            by_base
                .entry(base.as_str().to_string())
                .or_default()
                .push((g, row));
        }
    }
    for gens in by_base.values_mut() {
        gens.sort_by_key(|(g, _)| *g);
    }
    let mut plan = Plan::default();
    let mut wanted: HashSet<&str> = HashSet::new();
    // Index into `plan.conversations` of each new conversation, for the
    // second look once the retractions are known.
    let mut new_at: Vec<usize> = Vec::new();
    for conv in &timeline.conversations {
        let built =
            hold_for(conv, opts.allow_estimated).map_or_else(|| request_for(conv, opts), Err);
        let status = match built {
            Err(hold) => CloudStatus::Held { hold },
            Ok((mut push, mut request, notes)) => {
                let gens = by_base
                    .get(&push.session_id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                match choose(gens, &request) {
                    Choice::Take(row) => {
                        wanted.insert(&row.push.session_id);
                        take(&mut plan, row, request, opts)
                    }
                    Choice::Readopt(row) => {
                        wanted.insert(&row.push.session_id);
                        plan.readopt.push(row.push.session_id.clone());
                        readopted_status(row)
                    }
                    Choice::Reuse(row) => {
                        wanted.insert(&row.push.session_id);
                        request.client_session_id = row.push.session_id.clone();
                        plan.requeue.push(Requeue {
                            session_id: row.push.session_id.clone(),
                            request,
                            why: RequeueWhy::WantedAgain,
                        });
                        queued_status(&row.push.session_id, None, 0, None)
                    }
                    Choice::New(generation) => {
                        // Its earlier copy was deleted (or may have been).
                        if let Some(base) =
                            SessionId::from_stored(&push.session_id).filter(|_| generation > 1)
                        {
                            let id = base.generation(generation).as_str().to_string();
                            request.client_session_id = id.clone();
                            push.session_id = id;
                            push.request = serde_json::to_string(&request).unwrap_or_default();
                        }
                        let session_id = push.session_id.clone();
                        plan.new.push(NewConversation {
                            push,
                            request,
                            notes,
                        });
                        new_at.push(plan.conversations.len());
                        CloudStatus::New {
                            session_id,
                            replaces: Vec::new(),
                        }
                    }
                }
            }
        };
        plan.conversations.push(ConversationStatus {
            conversation: conv.id.clone(),
            started_at: conv.started_at,
            status,
        });
    }
    retract_unwanted(&mut plan, &rows, &wanted, &present_keys(timeline), opts);
    second_look(&mut plan, &rows, &new_at);
    Ok(plan)
}

fn queued_status(
    session_id: &str,
    retry_at: Option<UtcMillis>,
    attempts: u32,
    last_error: Option<String>,
) -> CloudStatus {
    CloudStatus::Queued {
        session_id: session_id.to_string(),
        retry_at: retry_at.map(|t| t.to_rfc3339()),
        attempts,
        last_error,
    }
}

fn readopted_status(row: &OutboxRow) -> CloudStatus {
    match &row.cloud_id {
        Some(cloud_id) => CloudStatus::Pushed {
            session_id: row.push.session_id.clone(),
            cloud_id: cloud_id.clone(),
        },
        None => queued_status(&row.push.session_id, None, row.attempts, None),
    }
}

/// The status of a live row the timeline wants, and what the plan does
/// for it (release it from a hold, queue a refusal again).
fn take(
    plan: &mut Plan,
    row: &OutboxRow,
    mut request: CreateConversationRequest,
    opts: &PushOptions,
) -> CloudStatus {
    let id = row.push.session_id.clone();
    if row.held.is_some() {
        plan.release.push(id.clone());
    }
    let mut requeue = |why: RequeueWhy| {
        request.client_session_id = id.clone();
        plan.requeue.push(Requeue {
            session_id: id.clone(),
            request: request.clone(),
            why,
        });
        queued_status(&id, None, 0, row.last_error.clone())
    };
    match row.state {
        OutboxState::Confirming => CloudStatus::Confirming {
            session_id: id.clone(),
            cloud_id: row.cloud_id.clone().unwrap_or_default(),
            since: row.confirm_since.map(|t| t.to_rfc3339()),
        },
        OutboxState::Pushed => CloudStatus::Pushed {
            session_id: id.clone(),
            cloud_id: row.cloud_id.clone().unwrap_or_default(),
        },
        OutboxState::Rejected if not_its_fault(row.last_status) => {
            requeue(RequeueWhy::NotItsFault {
                status: row.last_status.unwrap_or(0),
            })
        }
        OutboxState::Rejected if opts.retry_rejected => requeue(RequeueWhy::Asked),
        OutboxState::Rejected => CloudStatus::Rejected {
            session_id: id.clone(),
            status: row.last_status,
            message: row.last_error.clone().unwrap_or_default(),
        },
        // A copy the cloud refused to delete is still there: it is what the
        // timeline wants.
        OutboxState::Locked if row.cloud_id.is_some() => {
            plan.readopt.push(id.clone());
            readopted_status(row)
        }
        OutboxState::Locked if opts.retry_rejected => requeue(RequeueWhy::Asked),
        OutboxState::Locked => CloudStatus::Locked {
            session_id: id.clone(),
            cloud_id: None,
            message: row.last_error.clone().unwrap_or_default(),
        },
        _ => queued_status(&id, row.retry_at, row.attempts, row.last_error.clone()),
    }
}

/// Retracts every row the timeline no longer wants (see the module docs).
fn retract_unwanted(
    plan: &mut Plan,
    rows: &[OutboxRow],
    wanted: &HashSet<&str>,
    present: &HashSet<&str>,
    opts: &PushOptions,
) {
    for row in rows {
        let id = row.push.session_id.clone();
        if wanted.contains(id.as_str()) {
            continue;
        }
        match row.state {
            OutboxState::Superseded
            | OutboxState::Deleted
            | OutboxState::Forgotten
            | OutboxState::DeletePending => continue,
            // The cloud refused to delete it (402): it stays until a person
            // unlocks it there and asks again.
            OutboxState::Locked if row.cloud_id.is_some() => {
                if opts.retry_rejected {
                    plan.retract.push(Retraction::Delete(id));
                }
                continue;
            }
            _ => {}
        }
        if !row.may_be_in_cloud() {
            plan.retract.push(Retraction::Supersede(id));
            continue;
        }
        let missing = row
            .push
            .members
            .iter()
            .filter(|k| !present.contains(k.as_str()))
            .count();
        if missing == 0 {
            plan.retract.push(Retraction::Delete(id));
            continue;
        }
        let decision = if opts.forget_vanished {
            plan.retract.push(Retraction::Forget(id.clone()));
            VanishedDecision::Forget
        } else if opts.replace_vanished {
            plan.retract.push(Retraction::Delete(id.clone()));
            VanishedDecision::Replace
        } else {
            if row.held != Some(HeldFor::Vanished) {
                plan.retract.push(Retraction::Hold(id.clone()));
            }
            VanishedDecision::Held
        };
        plan.vanished.push(Vanished {
            session_id: id,
            conversation: row.push.conversation.clone(),
            device: row.push.device.clone(),
            started_at: row.push.started_at,
            finished_at: row.push.finished_at,
            cloud_id: row.cloud_id.clone(),
            missing,
            members: row.push.members.len(),
            decision,
        });
    }
}

/// Once the retractions are known: a new conversation overlapping a held
/// vanished one waits for the same decision; the others say what they
/// replace.
fn second_look(plan: &mut Plan, rows: &[OutboxRow], new_at: &[usize]) {
    let span = |r: &OutboxRow| (r.push.started_at, r.push.finished_at);
    let deleted: Vec<&OutboxRow> = plan
        .retract
        .iter()
        .filter_map(|r| match r {
            Retraction::Delete(id) => rows.iter().find(|row| &row.push.session_id == id),
            _ => None,
        })
        // And copies already being deleted (their words changed).
        .chain(
            rows.iter()
                .filter(|row| row.state == OutboxState::DeletePending),
        )
        .collect();
    let held: Vec<&Vanished> = plan
        .vanished
        .iter()
        .filter(|v| v.decision == VanishedDecision::Held)
        .collect();
    let mut dropped: Vec<String> = Vec::new();
    for (n, &at) in new_at.iter().enumerate() {
        let new = &plan.new[n];
        let own = (new.push.started_at, new.push.finished_at);
        if let Some(v) = held
            .iter()
            .find(|v| v.device == new.push.device && overlaps(own, (v.started_at, v.finished_at)))
        {
            plan.conversations[at].status = CloudStatus::Held {
                hold: Hold::OverlapsVanished {
                    session_id: v.session_id.clone(),
                },
            };
            dropped.push(new.push.session_id.clone());
            continue;
        }
        let replaces: Vec<String> = deleted
            .iter()
            .filter(|r| r.push.device == new.push.device && overlaps(own, span(r)))
            .map(|r| {
                r.cloud_id
                    .clone()
                    .unwrap_or_else(|| r.push.session_id.clone())
            })
            .collect();
        if let CloudStatus::New { replaces: r, .. } = &mut plan.conversations[at].status {
            *r = replaces;
        }
    }
    plan.new.retain(|n| !dropped.contains(&n.push.session_id));
}

/// Writes a plan into the outbox: retracts, takes back, releases and
/// re-queues rows, and queues new conversations.
pub fn apply(ledger: &Ledger, plan: &Plan) -> Result<(), StoreError> {
    for r in &plan.retract {
        match r {
            Retraction::Supersede(id) => ledger.mark_superseded(id)?,
            Retraction::Delete(id) => ledger.queue_delete(id)?,
            Retraction::Hold(id) => ledger.set_held(id, Some(HeldFor::Vanished))?,
            Retraction::Forget(id) => ledger.mark_forgotten(id)?,
        }
    }
    for id in &plan.readopt {
        ledger.readopt(id)?;
    }
    for id in &plan.release {
        ledger.set_held(id, None)?;
    }
    for r in &plan.requeue {
        let request = serde_json::to_string(&r.request).unwrap_or_default();
        ledger.requeue(&r.session_id, Some(&request))?;
    }
    for n in &plan.new {
        ledger.enqueue_push(&n.push)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::timeline::{Rules, Segment, build};

    fn said(id: i64, start: i64, end: i64, text: &str) -> Segment {
        let span = (UtcMillis(start), UtcMillis(end));
        Segment::for_test(
            id,
            "omi",
            ClockTrust::Wall,
            span,
            SegmentStatus::Speech,
            Some(text),
        )
    }

    #[test]
    fn speech_cut_at_a_capture_boundary_is_one_piece() {
        let t = build(
            &[
                said(1, 0, 2_000, "Good morning."),
                // Cut at a capture boundary 2 ms later: the same sentence.
                said(2, 3_000, 5_998, "Over Bluetooth that takes"),
                said(3, 6_000, 7_000, "more than an hour."),
                said(4, 7_500, 8_000, "Right."),
            ],
            &[],
            &Rules::default(),
        );
        let p = pieces(&t.conversations[0]);
        let texts: Vec<&str> = p.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Good morning.",
                "Over Bluetooth that takes more than an hour.",
                "Right."
            ]
        );
        assert_eq!((p[1].start, p[1].end), (UtcMillis(3_000), UtcMillis(7_000)));
    }
}
