//! Read-only commands about oneself: `whoami`, `hosts`, and the dashboard.

use super::render;
use super::{CmdResult, Failure, Reply};
use crate::broker::Broker;
use chrono::Utc;
use policy::decision::AllowedBy;
use policy::Grant;
use serde_json::json;
use std::sync::Arc;

fn by_text(by: &AllowedBy) -> String {
    match by {
        AllowedBy::Grant(id) => format!("grant {id}"),
        AllowedBy::StandingRole(r) => format!("role {r}"),
    }
}

pub fn whoami(broker: &Arc<Broker>, user: &str) -> CmdResult {
    let now = Utc::now();
    broker.read(|state, settings| {
        let u = settings.user(user).ok_or_else(|| Failure::not_found("your key maps to no configured user"))?;
        let active: Vec<&Grant> = state.open_grants_of(user).into_iter().filter(|g| g.is_active(now)).collect();
        let lock = state.lock(user);
        let json = json!({
            "user": u.name,
            "standing_roles": u.roles,
            "can_request": u.can_request,
            "approver_for": settings.roles.iter().filter(|r| settings.is_approver_for(user, &r.name)).map(|r| r.name.clone()).collect::<Vec<_>>(),
            "admin": settings.is_admin(user),
            "auditor": settings.is_auditor(user),
            "locked": lock.map(|l| json!({"by": l.by, "reason": l.reason, "at": l.at})),
            "active_grants": active.iter().map(|g| render::grant_json(g)).collect::<Vec<_>>(),
        });
        let mut text = format!("user:          {}\n", u.name);
        if let Some(l) = lock {
            text.push_str(&format!("LOCKED by {} at {}: {}\n", l.by, render::time(l.at), l.reason));
        }
        let list = |v: &[String]| if v.is_empty() { "(none)".to_string() } else { v.join(", ") };
        text.push_str(&format!("standing roles: {}\n", list(&u.roles)));
        text.push_str(&format!("can request:   {}\n", list(&u.can_request)));
        if active.is_empty() {
            text.push_str("active grants: (none)\n");
        } else {
            text.push_str("active grants:\n");
            for g in &active {
                text.push_str(&format!("  {} {} on {} {}\n", g.id, g.role, render::scope(g), render::when(g, now)));
            }
        }
        Ok(Reply { json, text })
    })
}

pub fn hosts(broker: &Arc<Broker>, user: &str) -> CmdResult {
    let now = Utc::now();
    broker.read(|state, settings| {
        let reach = state.reachable(settings, user, now);
        let json = json!(reach);
        let text = if reach.is_empty() {
            "You can reach no host now. `whoami` shows the roles you can request; `request --help` says how.\n".to_string()
        } else {
            let rows: Vec<Vec<String>> = reach
                .iter()
                .map(|r| {
                    vec![
                        r.host.clone(),
                        r.logins.join(","),
                        by_text(&r.by),
                        r.until.map(|u| render::relative(u, now)).unwrap_or_else(|| "standing".into()),
                        crate::hint::ssh_to(&r.logins.first().cloned().unwrap_or_default(), &r.host),
                    ]
                })
                .collect();
            render::table(&["HOST", "LOGINS", "BY", "UNTIL", "CONNECT"], &rows)
        };
        Ok(Reply { json, text })
    })
}

pub fn dashboard(broker: &Arc<Broker>, user: &str) -> CmdResult {
    let now = Utc::now();
    broker.read(|state, settings| {
        let mine: Vec<&Grant> = state.open_grants_of(user);
        let waiting: Vec<&Grant> = state.awaiting_approval_by(settings, user);
        let reach = state.reachable(settings, user, now);
        let json = json!({
            "user": user,
            "grants": mine.iter().map(|g| render::grant_json(g)).collect::<Vec<_>>(),
            "awaiting_your_approval": waiting.iter().map(|g| render::grant_json(g)).collect::<Vec<_>>(),
            "reachable": reach,
        });
        let mut text = format!("latch: signed in as {user}\n");
        if let Some(l) = state.lock(user) {
            text.push_str(&format!("\nYou are LOCKED OUT by {}: {}\n", l.by, l.reason));
        }
        text.push_str("\nYour requests and grants:\n");
        if mine.is_empty() {
            text.push_str(&format!("  (none) request one: {} request --role ROLE --hosts PATTERN --reason TEXT\n", crate::hint::ssh()));
        } else {
            for g in &mine {
                text.push_str(&format!("  {} {} {} on {} {}\n", g.id, render::status(g, now), g.role, render::scope(g), render::when(g, now)));
            }
        }
        if !waiting.is_empty() {
            text.push_str("\nWaiting for your approval:\n");
            for g in &waiting {
                text.push_str(&format!(
                    "  {} {} wants {} on {} for {}: {}  (approve {} / deny {} --reason ...)\n",
                    g.id,
                    g.user,
                    g.role,
                    g.hosts,
                    policy::duration::format(g.requested_duration),
                    g.reason.as_deref().unwrap_or("no reason given"),
                    g.id,
                    g.id
                ));
            }
        }
        text.push_str("\nYou can reach now:\n");
        if reach.is_empty() {
            text.push_str("  (nothing)\n");
        } else {
            for r in &reach {
                text.push_str(&format!("  {} as {} ({})\n", r.host, r.logins.join(","), by_text(&r.by)));
            }
        }
        text.push_str(&format!("\n`{} help` lists every command.\n", crate::hint::ssh()));
        Ok(Reply { json, text })
    })
}
