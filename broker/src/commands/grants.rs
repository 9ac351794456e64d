//! Commands that change or read requests and grants.

use super::cli::{
    ApproveCmd, DenyCmd, ExtendCmd, ListCmd, LockCmd, RequestCmd, RevokeCmd, UnlockCmd,
};
use super::render;
use super::{CmdResult, Failure, Reply};
use crate::broker::Broker;
use chrono::{DateTime, Utc};
use policy::state::{ApproveArgs, Outcome, RequestArgs};
use policy::{Grant, GrantId, GrantStatus};
use serde_json::json;
use std::sync::Arc;

fn parse_id(id: &str) -> Result<GrantId, Failure> {
    id.parse::<GrantId>().map_err(|_| {
        Failure::usage(format!(
            "{id:?} is not a request id: ids look like g17 (run 'list' to see them)"
        ))
    })
}

/// `--start`: an RFC 3339 time, or a delay from now like `30m`.
fn parse_start(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    match policy::duration::parse(s) {
        Ok(d) => Ok(now + d),
        Err(_) => Err(Failure::usage(format!(
            "--start {s:?} is neither an RFC 3339 time (2026-11-27T15:00:00Z) nor a delay like 30m"
        ))),
    }
}

/// The grant an operation's events concern, after they were applied.
fn grant_after(broker: &Broker, outcome: &Outcome) -> Option<Grant> {
    let id = outcome.events.iter().find_map(|e| e.grant_id())?;
    broker.read(|s, _| s.grant(id).cloned())
}

fn with_notes(mut text: String, notes: &[String]) -> String {
    for n in notes {
        text.push_str(&format!("note: {n}\n"));
    }
    text
}

fn grant_reply(g: &Grant, notes: &[String], text: String) -> Reply {
    let mut j = render::grant_json(g);
    if let Some(obj) = j.as_object_mut() {
        obj.insert("notes".into(), json!(notes));
    }
    Reply {
        json: j,
        text: with_notes(text, notes),
    }
}

pub async fn request(broker: &Arc<Broker>, user: &str, c: RequestCmd) -> CmdResult {
    let start = match &c.start {
        Some(s) => Some(parse_start(s, Utc::now())?),
        None => None,
    };
    let args = RequestArgs {
        role: c.role,
        hosts: c.hosts,
        duration: c.duration,
        reason: c.reason,
        ticket: c.ticket,
        start,
        break_glass: c.break_glass,
        totp: c.totp,
    };
    let actor = user.to_string();
    let outcome = broker
        .execute(actor.clone(), move |s, st, now| {
            s.request(st, &actor, &args, now)
        })
        .await?;
    let g =
        grant_after(broker, &outcome).ok_or_else(|| Failure::usage("request recorded no grant"))?;
    let now = Utc::now();
    let text = match g.status {
        GrantStatus::Approved if g.break_glass => format!(
            "{} BREAK-GLASS access granted: {} on {} {}. This is announced to every admin.\n",
            g.id,
            g.role,
            render::scope(&g),
            render::when(&g, now)
        ),
        GrantStatus::Approved => format!(
            "{} approved automatically: {} on {} {}\n",
            g.id,
            g.role,
            render::scope(&g),
            render::when(&g, now)
        ),
        _ => format!(
            "{} requested: {} on {} for {}. Waiting for approval by {}; it {}.\n",
            g.id,
            g.role,
            g.hosts,
            policy::duration::format(g.requested_duration),
            broker.read(|_, st| st
                .role(&g.role)
                .map(|r| r.approvers.join(", "))
                .unwrap_or_default()),
            render::when(&g, now),
        ),
    };
    Ok(grant_reply(&g, &outcome.notes, text))
}

pub fn list(broker: &Arc<Broker>, user: &str, c: ListCmd) -> CmdResult {
    let now = Utc::now();
    let wanted = match c.status.as_deref() {
        None => None,
        Some(s @ ("pending" | "approved" | "active" | "denied" | "cancelled" | "expired" | "revoked")) => Some(s.to_string()),
        Some(other) => {
            return Err(Failure::usage(format!(
                "--status {other:?} is not a status: use pending, approved, active, denied, cancelled, expired or revoked"
            )))
        }
    };
    broker.read(|state, settings| {
        let grants: Vec<&Grant> = state
            .grants()
            .filter(|g| {
                if c.mine {
                    g.user == user
                } else {
                    state.can_see(settings, user, g)
                }
            })
            .filter(|g| match wanted.as_deref() {
                None => c.all || !g.status.is_final(),
                Some("active") => g.is_active(now),
                Some(s) => g.status.as_str() == s,
            })
            .collect();
        let json = json!(grants
            .iter()
            .map(|g| render::grant_json(g))
            .collect::<Vec<_>>());
        let text = if grants.is_empty() {
            "No requests to show. `list --all` includes ended ones; `request --help` makes one.\n"
                .to_string()
        } else {
            render::table(&render::GRANT_HEADER, &render::grant_rows(&grants, now))
        };
        Ok(Reply { json, text })
    })
}

pub fn show(broker: &Arc<Broker>, user: &str, id: &str) -> CmdResult {
    let id = parse_id(id)?;
    broker.read(|state, settings| match state.grant(id) {
        Some(g) if state.can_see(settings, user, g) => Ok(Reply {
            json: render::grant_json(g),
            text: render::grant_detail(g, Utc::now()),
        }),
        _ => Err(Failure::not_found(format!(
            "no request {id}; run 'list' to see the ids you can see"
        ))),
    })
}

pub async fn approve(broker: &Arc<Broker>, user: &str, c: ApproveCmd) -> CmdResult {
    let id = parse_id(&c.id)?;
    let args = ApproveArgs {
        hosts: c.hosts,
        duration: c.duration,
        reason: c.reason,
    };
    let actor = user.to_string();
    let outcome = broker
        .execute(actor.clone(), move |s, st, now| {
            s.approve(st, &actor, id, &args, now)
        })
        .await?;
    let g = grant_after(broker, &outcome)
        .ok_or_else(|| Failure::not_found(format!("no request {id}")))?;
    let now = Utc::now();
    let text = match g.extends {
        Some(parent) => format!("{} approved: {} extended, {}\n", g.id, parent, {
            broker.read(|s, _| {
                s.grant(parent)
                    .map(|p| render::when(p, now))
                    .unwrap_or_default()
            })
        }),
        None => format!(
            "{} approved: {} for {} on {}, {}\n",
            g.id,
            g.role,
            g.user,
            render::scope(&g),
            render::when(&g, now)
        ),
    };
    Ok(grant_reply(&g, &outcome.notes, text))
}

pub async fn deny(broker: &Arc<Broker>, user: &str, c: DenyCmd) -> CmdResult {
    let id = parse_id(&c.id)?;
    let actor = user.to_string();
    let reason = c.reason;
    let outcome = broker
        .execute(actor.clone(), move |s, st, now| {
            s.deny(st, &actor, id, &reason, now)
        })
        .await?;
    let g = grant_after(broker, &outcome)
        .ok_or_else(|| Failure::not_found(format!("no request {id}")))?;
    Ok(grant_reply(
        &g,
        &outcome.notes,
        format!("{} denied.\n", g.id),
    ))
}

pub async fn revoke(broker: &Arc<Broker>, user: &str, c: RevokeCmd) -> CmdResult {
    let id = parse_id(&c.id)?;
    let actor = user.to_string();
    let reason = c.reason;
    let outcome = broker
        .execute(actor.clone(), move |s, st, now| {
            s.revoke(st, &actor, id, reason.as_deref(), now)
        })
        .await?;
    let g = grant_after(broker, &outcome)
        .ok_or_else(|| Failure::not_found(format!("no grant {id}")))?;
    Ok(grant_reply(
        &g,
        &outcome.notes,
        format!("{} revoked.\n", g.id),
    ))
}

pub async fn cancel(broker: &Arc<Broker>, user: &str, id: &str) -> CmdResult {
    let id = parse_id(id)?;
    let actor = user.to_string();
    let outcome = broker
        .execute(actor.clone(), move |s, st, now| {
            s.cancel(st, &actor, id, now)
        })
        .await?;
    let g = grant_after(broker, &outcome)
        .ok_or_else(|| Failure::not_found(format!("no request {id}")))?;
    Ok(grant_reply(
        &g,
        &outcome.notes,
        format!("{} cancelled.\n", g.id),
    ))
}

pub async fn extend(broker: &Arc<Broker>, user: &str, c: ExtendCmd) -> CmdResult {
    let id = parse_id(&c.id)?;
    let actor = user.to_string();
    let (duration, reason) = (c.duration, c.reason);
    let outcome = broker
        .execute(actor.clone(), move |s, st, now| {
            s.extend(st, &actor, id, &duration, reason.as_deref(), now)
        })
        .await?;
    let g = grant_after(broker, &outcome)
        .ok_or_else(|| Failure::not_found(format!("no grant {id}")))?;
    let now = Utc::now();
    let text = if g.status == GrantStatus::Approved {
        let parent = broker.read(|s, _| {
            s.grant(id)
                .map(|p| render::when(p, now))
                .unwrap_or_default()
        });
        format!("{} approved automatically: {id} {parent}\n", g.id)
    } else {
        format!(
            "{} requested: {} more for {id}. Waiting for approval; it {}.\n",
            g.id,
            policy::duration::format(g.requested_duration),
            render::when(&g, now)
        )
    };
    Ok(grant_reply(&g, &outcome.notes, text))
}

pub async fn lock(broker: &Arc<Broker>, user: &str, c: LockCmd) -> CmdResult {
    let actor = user.to_string();
    let (target, reason) = (c.user.clone(), c.reason);
    broker
        .execute(actor.clone(), move |s, st, now| {
            s.lock_user(st, &actor, &target, &reason, now)
        })
        .await?;
    Ok(Reply {
        json: json!({"user": c.user, "locked": true}),
        text: format!(
            "{} is locked out: every grant and standing role stops working until `unlock {}`.\n",
            c.user, c.user
        ),
    })
}

pub async fn unlock(broker: &Arc<Broker>, user: &str, c: UnlockCmd) -> CmdResult {
    let actor = user.to_string();
    let target = c.user.clone();
    broker
        .execute(actor.clone(), move |s, st, now| {
            s.unlock_user(st, &actor, &target, now)
        })
        .await?;
    Ok(Reply {
        json: json!({"user": c.user, "locked": false}),
        text: format!("{} is unlocked.\n", c.user),
    })
}
