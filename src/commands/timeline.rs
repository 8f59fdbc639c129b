//! `omi-sync timeline`: the conversations, as text or as the JSON scripts use.

use serde::Serialize;

use super::Context;
use crate::engine::push::stage::{self as push_stage, PushRequest};
use crate::engine::push::{self, CloudStatus, ConversationStatus, Vanished};
use crate::exit::{CommandResult, ExitCode};
use crate::term::say::{self, clock_time, wall};
use crate::term::{BOLD, DIM, WARN, duration, paint};
use crate::timeline::{Conversation, Domain, Segment, SegmentStatus, Timeline};

/// `timeline --json`: field names are a contract with scripts; keep them.
#[derive(Debug, Serialize)]
pub struct TimelineJson {
    /// Conversations in time order.
    pub conversations: Vec<ConversationJson>,
    /// Conversations that may be in the cloud and whose segments vanished
    /// from the ledger (not by an edit): held until a person decides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vanished: Vec<Vanished>,
}

/// One conversation in `timeline --json`.
#[derive(Debug, Serialize)]
pub struct ConversationJson {
    /// Id (for `merge`).
    pub id: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    /// `wall` or `estimated`.
    pub clock: &'static str,
    /// The recording device.
    pub device: String,
    /// Where it stands with the Omi cloud (`held`, `new`, `queued`,
    /// `confirming`, `pushed`, `rejected`, `locked`, with details).
    pub cloud: Option<CloudStatus>,
    /// Its segments in time order.
    pub segments: Vec<SegmentJson>,
}

/// One segment in `timeline --json`.
#[derive(Debug, Serialize)]
pub struct SegmentJson {
    /// Id (for `split`).
    pub id: i64,
    /// RFC 3339 UTC.
    pub start: String,
    /// RFC 3339 UTC.
    pub end: String,
    /// `pending`, `speech`, `silent` or `failed`.
    pub status: SegmentStatus,
    /// The transcript, `null` until transcribed.
    pub text: Option<String>,
    /// The ledger ids of the rows after the first that the same speech runs
    /// on into (cut at the boundary of contiguous captures); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<i64>,
}

impl TimelineJson {
    /// The JSON form of a timeline (without cloud status).
    pub fn from_timeline(t: &Timeline) -> Self {
        Self::with_cloud(t, &[])
    }

    /// The JSON form of a timeline, with each conversation's cloud status.
    pub fn with_cloud(t: &Timeline, cloud: &[ConversationStatus]) -> Self {
        TimelineJson {
            conversations: t
                .conversations
                .iter()
                .map(|c| ConversationJson {
                    cloud: cloud
                        .iter()
                        .find(|s| s.conversation == c.id)
                        .map(|s| s.status.clone()),
                    id: c.id.clone(),
                    started_at: c.started_at.to_rfc3339(),
                    finished_at: c.finished_at.to_rfc3339(),
                    clock: c.domain.as_str(),
                    device: c.device.clone(),
                    segments: c
                        .segments
                        .iter()
                        .map(|s| SegmentJson {
                            id: s.id,
                            start: s.start.to_rfc3339(),
                            end: s.end.to_rfc3339(),
                            status: s.status,
                            text: s.text.clone(),
                            joined: s.joined.iter().map(|p| p.id).collect(),
                        })
                        .collect(),
                })
                .collect(),
            vanished: Vec::new(),
        }
    }
}

/// `omi-sync timeline`
pub fn run(ctx: &Context) -> CommandResult {
    let ledger = ctx.ledger()?;
    let timeline = ctx.ws.timeline(&ledger)?;
    let plan = push::plan(
        &ledger,
        &timeline,
        &push_stage::options(&ctx.ws, &PushRequest::default()),
    )?;
    let cloud = plan.conversations;
    if ctx.out.json {
        let mut json = TimelineJson::with_cloud(&timeline, &cloud);
        json.vanished = plan.vanished;
        ctx.out.print_json(&json);
    } else if timeline.conversations.is_empty() && plan.vanished.is_empty() {
        anstream::println!("No conversations yet. Import some audio first: omi-sync import PATH");
        return Ok(ExitCode::NothingToDo);
    } else {
        for c in &timeline.conversations {
            print_conversation(
                c,
                cloud
                    .iter()
                    .find(|s| s.conversation == c.id)
                    .map(|s| &s.status),
            );
        }
        for v in &plan.vanished {
            anstream::println!(
                "{} {}  {}",
                paint(WARN, "Vanished conversation"),
                paint(BOLD, &v.conversation),
                super::push::vanished_line(v)
            );
        }
        anstream::println!(
            "{}",
            paint(
                DIM,
                format!(
                    "{} conversations. Join two with `omi-sync merge ID ID`, start a new one at a segment with `omi-sync split SEGMENT`.",
                    timeline.conversations.len()
                )
            )
        );
    }
    Ok(ExitCode::Done)
}

/// A short line about a conversation's cloud status.
fn cloud_line(status: &CloudStatus) -> String {
    match status {
        CloudStatus::Held { hold } => paint(DIM, say::hold(hold)),
        CloudStatus::New { replaces, .. } if !replaces.is_empty() => paint(
            WARN,
            format!(
                "edited after it was pushed: `omi-sync push` replaces {}",
                replaces.join(", ")
            ),
        ),
        CloudStatus::New { .. } => paint(DIM, "ready to push (omi-sync push)"),
        CloudStatus::Queued { retry_at, .. } => match retry_at {
            Some(t) => format!("queued for the cloud, next attempt at {t}"),
            None => "queued for the cloud".to_string(),
        },
        CloudStatus::Confirming { cloud_id, .. } => format!(
            "sent to the Omi cloud as {cloud_id}, being confirmed (the cloud is still processing it)"
        ),
        CloudStatus::Pushed { cloud_id, .. } => format!("in the Omi cloud as {cloud_id}"),
        CloudStatus::Rejected { message, .. } => paint(
            WARN,
            format!(
                "refused by the cloud: {message} (omi-sync push --retry-rejected sends it again)"
            ),
        ),
        CloudStatus::Locked { message, .. } => paint(
            WARN,
            format!(
                "locked in the Omi cloud ({message}): unlock it in the Omi app, then omi-sync push --retry-rejected"
            ),
        ),
    }
}

fn print_conversation(c: &Conversation, cloud: Option<&CloudStatus>) {
    let estimated = c.domain == Domain::Estimated;
    let when = format!(
        "{} → {} UTC",
        wall(c.started_at),
        clock_time(c.finished_at).get(..8).unwrap_or_default()
    );
    let speech: i64 = c.members().map(|s| s.end.since(s.start)).sum();
    anstream::println!(
        "{} {}  {}  ({}, {} of speech)  {}{}",
        paint(BOLD, "Conversation"),
        paint(BOLD, &c.id),
        if estimated {
            paint(WARN, format!("~{when}"))
        } else {
            when
        },
        duration(c.finished_at.since(c.started_at) as f64 / 1000.0),
        duration(speech as f64 / 1000.0),
        c.device,
        if estimated {
            paint(WARN, "  estimated time: held back from the cloud")
        } else {
            String::new()
        }
    );
    if let Some(status) = cloud {
        anstream::println!("  {}", cloud_line(status));
    }
    for s in &c.segments {
        print_segment_line(s);
    }
}

fn print_segment_line(s: &Segment) {
    let status = match s.status {
        SegmentStatus::Silent => paint(DIM, "silent "),
        SegmentStatus::Failed => paint(WARN, "failed "),
        SegmentStatus::Pending => paint(DIM, "pending"),
        SegmentStatus::Speech => "speech ".to_string(),
    };
    let text = s
        .text
        .as_deref()
        .map(|t| format!("  {t}"))
        .unwrap_or_default();
    let ids: Vec<String> = s.ids().map(|id| format!("#{id}")).collect();
    anstream::println!(
        "  {:>5}  {}–{}  {status}{text}",
        ids.join("+"),
        clock_time(s.start),
        clock_time(s.end),
    );
}
