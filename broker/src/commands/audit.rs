//! `audit`: the audit trail, read from the event log itself (auditors and admins).

use super::cli::AuditCmd;
use super::{CmdResult, Failure, Reply};
use crate::broker::Broker;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::io::BufRead;
use std::sync::Arc;

pub fn audit(broker: &Arc<Broker>, user: &str, c: AuditCmd) -> CmdResult {
    if !broker.settings().is_auditor(user) {
        return Err(Failure::forbidden("the audit trail is for auditors and admins; ask an admin to give you a role with auditor = true"));
    }
    let since = match c.since.as_deref() {
        None => None,
        Some(s) => Some(match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => match policy::duration::parse(s) {
                Ok(d) => Utc::now() - d,
                Err(_) => {
                    return Err(Failure::usage(format!(
                        "--since {s:?} is neither an RFC 3339 time nor an age like 2h"
                    )))
                }
            },
        }),
    };
    let path = broker.state_dir().join(crate::eventlog::LOG_FILE);
    let file = std::fs::File::open(&path).map_err(|e| Failure {
        status: super::exit::FAILURE,
        message: format!("cannot read the event log: {e}"),
    })?;
    let mut matched: std::collections::VecDeque<Value> = std::collections::VecDeque::new();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(since) = since {
            let t = v
                .get("time")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            if t.is_none_or(|t| t.with_timezone(&Utc) < since) {
                continue;
            }
        }
        if let Some(k) = &c.kind {
            if v.pointer("/event/type").and_then(Value::as_str) != Some(k.as_str()) {
                continue;
            }
        }
        if let Some(u) = &c.user {
            let actor = v.get("actor").and_then(Value::as_str) == Some(u.as_str());
            let about = v.pointer("/event/data/user").and_then(Value::as_str) == Some(u.as_str());
            if !actor && !about {
                continue;
            }
        }
        matched.push_back(v);
        if matched.len() > c.limit {
            matched.pop_front();
        }
    }
    let mut text = String::new();
    for v in &matched {
        let data = v
            .pointer("/event/data")
            .map(|d| d.to_string())
            .unwrap_or_default();
        text.push_str(&format!(
            "{:>6}  {}  {:<10} {:<16} {}\n",
            v.get("seq").and_then(Value::as_u64).unwrap_or(0),
            v.get("time").and_then(Value::as_str).unwrap_or(""),
            v.get("actor").and_then(Value::as_str).unwrap_or(""),
            v.pointer("/event/type")
                .and_then(Value::as_str)
                .unwrap_or(""),
            data
        ));
    }
    if text.is_empty() {
        text.push_str("No events match.\n");
    }
    Ok(Reply {
        json: json!(matched),
        text,
    })
}
