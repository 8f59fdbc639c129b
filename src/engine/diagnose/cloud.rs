//! The cloud section, from the ledger alone (the cloud is not contacted):
//! the outbox by state, attempts, last errors and next retries, the rate
//! limit's current window, rejections with the server's message, locked
//! and replaced conversations, and runs holding the data directory now.

use std::time::Duration;

use super::Finding;
use crate::clock::UtcMillis;
use crate::cloud::ratelimit::RateLimit;
use crate::engine::remedy::Remedy;
use crate::engine::snapshot::Snapshot;
use crate::engine::workspace::Workspace;
use crate::store::OutboxState;

/// Checks the outbox of `snap` at `now` under `ws`'s push settings.
pub fn check(snap: &Snapshot, ws: &Workspace, now: UtcMillis) -> Vec<Finding> {
    let s = &snap.outbox_summary;
    let states: Vec<String> = s.by_state.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let mut out = vec![Finding::ok(
        "cloud.outbox",
        if states.is_empty() {
            "the outbox is empty: nothing was queued for the cloud".to_string()
        } else {
            format!("the outbox holds {}", states.join(", "))
        },
    )];
    if s.to_send > 0 {
        let waiting = snap
            .outbox
            .iter()
            .filter(|r| r.state.needs_sending())
            .map(|r| {
                format!(
                    "{} ({}): {} attempt(s){}{}",
                    r.push.conversation,
                    r.state.as_str(),
                    r.attempts,
                    r.retry_at
                        .map_or_else(String::new, |t| format!(", next try {}", t.to_rfc3339())),
                    r.last_error
                        .as_ref()
                        .map_or_else(String::new, |e| format!(", last error: {e}"))
                )
            });
        let failing = snap
            .outbox
            .iter()
            .filter(|r| {
                r.state == OutboxState::Failed || r.last_error.is_some() && r.state.needs_sending()
            })
            .count();
        out.push(
            Finding::warning(
                "cloud.queued",
                format!(
                    "{} conversation(s) wait to be sent{}{}",
                    s.to_send,
                    s.next_attempt_at
                        .map_or_else(String::new, |t| format!("; next try {}", t.to_rfc3339())),
                    if failing > 0 {
                        format!("; {failing} failed before")
                    } else {
                        String::new()
                    }
                ),
            )
            .fix(Remedy::Push {
                at: s.next_attempt_at.filter(|t| *t > now),
            })
            .detail(waiting),
        );
    }
    for r in &snap.outbox {
        let place = format!(
            "conversation {} (session {})",
            r.push.conversation, r.push.session_id
        );
        let message = r.last_error.clone().unwrap_or_default();
        match r.state {
            OutboxState::Rejected => out.push(
                Finding::problem(
                    "cloud.rejected",
                    format!(
                        "the cloud refused it{}: {message}",
                        r.last_status
                            .map_or_else(String::new, |c| format!(" (HTTP {c})"))
                    ),
                )
                .at(place)
                .fix(Remedy::RetryRejected),
            ),
            OutboxState::Locked => out.push(
                Finding::problem("cloud.locked", format!("locked in the cloud: {message}"))
                    .at(place)
                    .fix(Remedy::ResolveInCloud {
                        cloud_id: r.cloud_id.clone().unwrap_or_default(),
                    }),
            ),
            _ => {}
        }
        if r.held.is_some() {
            out.push(
                Finding::warning(
                    "cloud.vanished",
                    "in the cloud, but its segments vanished here: held until a person decides",
                )
                .at(format!(
                    "conversation {} (session {})",
                    r.push.conversation, r.push.session_id
                ))
                .fix(Remedy::ReviewTimeline),
            );
        }
    }
    let replaced = s.count(OutboxState::Superseded) + s.count(OutboxState::Deleted);
    if replaced > 0 {
        out.push(Finding::ok(
            "cloud.replaced",
            format!(
                "{replaced} cloud conversation(s) were replaced after an edit ({} deletes still to send)",
                s.count(OutboxState::DeletePending)
            ),
        ));
    }
    let c = &ws.config.cloud;
    let limit = RateLimit {
        max_per_window: c.pushes_per_hour,
        window: Duration::from_secs(c.rate_window_secs.max(1)),
    };
    for (key, w) in &snap.limiter.writes {
        let left = w.remaining(&limit, now);
        let f = Finding::ok(
            "cloud.rate_limit",
            format!(
                "key {key}: {} of {} creates used in this window (it ends {}){}",
                w.used(&limit, now),
                limit.max_per_window,
                limit.next_window(now).to_rfc3339(),
                w.blocked_until
                    .filter(|t| *t > now)
                    .map_or_else(String::new, |t| format!(
                        "; the cloud said wait until {}",
                        t.to_rfc3339()
                    ))
            ),
        );
        out.push(if left == 0 {
            Finding {
                severity: super::Severity::Warning,
                ..f
            }
            .fix(Remedy::Push {
                at: w.next_allowed_at(&limit, now),
            })
        } else {
            f
        });
    }
    for h in &snap.holders {
        out.push(Finding::warning(
            "cloud.running",
            format!(
                "another omi-sync run holds the {} section now ({})",
                h.section.as_str(),
                h.note
            ),
        ));
    }
    out
}
