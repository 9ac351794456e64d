//! Human output: tables, times and one-line summaries. JSON output is serde's.

use chrono::{DateTime, Utc};
use policy::{Grant, GrantStatus};

/// `2026-11-27 14:03:07Z`: readable, unambiguous, sorts as text.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `in 59m` / `3m ago`, rounded down to the largest two units.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (future, d) = if d >= chrono::Duration::zero() {
        (true, d)
    } else {
        (false, -d)
    };
    let secs = d.num_seconds();
    let text = if secs < 1 {
        "now".to_string()
    } else {
        let rounded = if secs >= 3600 { secs - secs % 60 } else { secs };
        policy::duration::format(chrono::Duration::seconds(rounded))
    };
    if text == "now" {
        text
    } else if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// The effective host scope of a grant: `prod-db-*` or `prod-db-* ∩ prod-db-0[12]`.
pub fn scope(g: &Grant) -> String {
    match &g.approved_hosts {
        Some(n) => format!("{} & {}", g.hosts, n),
        None => g.hosts.to_string(),
    }
}

/// What a grant's status means right now, for the table.
pub fn status(g: &Grant, now: DateTime<Utc>) -> String {
    match g.status {
        GrantStatus::Approved if g.extends.is_some() => "approved (extension)".into(),
        GrantStatus::Approved if g.starts_at.is_some_and(|s| s > now) => {
            "approved (not started)".into()
        }
        GrantStatus::Approved if g.break_glass => "active BREAK-GLASS".into(),
        GrantStatus::Approved => "active".into(),
        s => s.to_string(),
    }
}

/// When it matters next: expiry for active grants, approval deadline for pending ones.
pub fn when(g: &Grant, now: DateTime<Utc>) -> String {
    match (g.status, g.expires_at, g.ended_at) {
        (GrantStatus::Pending, Some(e), _) => format!("times out {}", relative(e, now)),
        (GrantStatus::Approved, Some(e), _) if g.starts_at.is_some_and(|s| s > now) => {
            format!("starts {}", relative(g.starts_at.unwrap_or(e), now))
        }
        (GrantStatus::Approved, Some(e), _) => format!("expires {}", relative(e, now)),
        (_, _, Some(end)) => format!("ended {}", relative(end, now)),
        _ => String::new(),
    }
}

/// A plain text table: header, then rows, columns padded to the widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

pub fn grant_rows(grants: &[&Grant], now: DateTime<Utc>) -> Vec<Vec<String>> {
    grants
        .iter()
        .map(|g| {
            vec![
                g.id.to_string(),
                status(g, now),
                g.user.clone(),
                g.role.clone(),
                scope(g),
                when(g, now),
                g.reason.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

pub const GRANT_HEADER: [&str; 7] = ["ID", "STATUS", "USER", "ROLE", "HOSTS", "WHEN", "REASON"];

/// Full detail of one grant, for `show`.
pub fn grant_detail(g: &Grant, now: DateTime<Utc>) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| {
        if !v.is_empty() {
            s.push_str(&format!("{k:<12} {v}\n"));
        }
    };
    kv("id", g.id.to_string());
    kv("status", status(g, now));
    kv("user", g.user.clone());
    kv("role", g.role.clone());
    kv("hosts", scope(g));
    kv("duration", policy::duration::format(g.requested_duration));
    if let Some(c) = g.capped_from {
        kv("capped from", policy::duration::format(c));
    }
    kv("reason", g.reason.clone().unwrap_or_default());
    kv("ticket", g.ticket.clone().unwrap_or_default());
    if g.break_glass {
        kv("break-glass", "yes".into());
    }
    if let Some(p) = g.extends {
        kv("extends", p.to_string());
    }
    kv("created", time(g.created_at));
    if let Some(by) = &g.approved_by {
        kv("approved by", by.clone());
    }
    if let Some(t) = g.starts_at {
        kv("starts", time(t));
    }
    if let Some(t) = g.expires_at {
        let label = if g.status == GrantStatus::Pending {
            "times out"
        } else {
            "expires"
        };
        kv(label, format!("{} ({})", time(t), relative(t, now)));
    }
    s.push_str("history:\n");
    for h in &g.history {
        let detail = h
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {}  {:<10} by {}{}\n",
            time(h.at),
            h.action,
            h.actor,
            detail
        ));
    }
    s
}

/// A grant as DESIGN.md's JSON shape (serde's), for `--json`.
pub fn grant_json(g: &Grant) -> serde_json::Value {
    serde_json::to_value(g).unwrap_or(serde_json::Value::Null)
}
