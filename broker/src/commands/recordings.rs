//! `recordings`, `replay` and `transcript`: for auditors, over SSH.

use super::cli::{RecordingsCmd, ReplayCmd, TranscriptCmd};
use super::render;
use super::{CmdResult, Failure, Reply};
use crate::broker::Broker;
use crate::recording::catalog::{self, Entry};
use crate::recording::RecordingStore;
use chrono::{DateTime, Utc};
use recorder::cast::{EventKind, Recording};
use serde_json::json;
use std::time::Duration;

fn require_auditor(broker: &Broker, user: &str) -> Result<(), Failure> {
    if broker.settings().is_auditor(user) {
        Ok(())
    } else {
        Err(Failure::forbidden(
            "recordings are for auditors and admins; ask an admin for a role with auditor = true",
        ))
    }
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    policy::duration::parse(s)
        .map(|d| Utc::now() - d)
        .map_err(|_| {
            Failure::usage(format!(
                "--since {s:?} is neither an RFC 3339 time nor an age like 2h"
            ))
        })
}

fn entry_json(e: &Entry) -> serde_json::Value {
    let m = &e.manifest;
    json!({
        "recording": e.name(),
        "session": m.session,
        "channel": m.channel,
        "kind": m.kind,
        "user": m.user,
        "login": m.login,
        "host": m.host,
        "grant": m.grant,
        "role": m.role,
        "started_at": m.started_at,
        "ended_at": m.ended_at,
        "complete": m.complete,
        "end_cause": m.end_cause,
        "exit_status": m.exit_status,
        "bytes_in": m.bytes_in,
        "bytes_out": m.bytes_out,
        "cast": m.cast.as_ref().map(|c| c.file.clone()),
        "key_id": m.key_id,
    })
}

pub fn list(broker: &Broker, store: &RecordingStore, user: &str, c: RecordingsCmd) -> CmdResult {
    require_auditor(broker, user)?;
    let since = c.since.as_deref().map(parse_since).transpose()?;
    let mut entries: Vec<Entry> = catalog::list(store.dir())
        .into_iter()
        .filter(|e| {
            let m = &e.manifest;
            c.user.as_ref().is_none_or(|u| &m.user == u)
                && c.host.as_ref().is_none_or(|h| &m.host == h)
                && c.grant.as_ref().is_none_or(|g| m.grant.as_ref() == Some(g))
                && c.session.as_ref().is_none_or(|s| &m.session == s)
                && since.is_none_or(|t| m.ended_at >= t)
        })
        .collect();
    let mut matches: Vec<(Entry, Vec<recorder::screen::Match>)> = Vec::new();
    if let Some(needle) = &c.grep {
        for e in entries.drain(..) {
            let Ok(Some(rec)) = e.read_cast() else {
                continue;
            };
            match recorder::screen::grep(&rec, needle) {
                Ok(found) if !found.is_empty() => matches.push((e, found)),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(recording = %e.name(), error = %err, "could not render for search")
                }
            }
        }
        let keep = matches.len().saturating_sub(c.limit);
        matches.drain(..keep);
        let json = json!(matches
            .iter()
            .map(|(e, found)| {
                let mut j = entry_json(e);
                j["matches"] = json!(found
                    .iter()
                    .map(|m| json!({"at_seconds": m.time.as_secs_f64(), "line": m.line}))
                    .collect::<Vec<_>>());
                j
            })
            .collect::<Vec<_>>());
        let mut text = String::new();
        for (e, found) in &matches {
            let m = &e.manifest;
            text.push_str(&format!(
                "{}  {} as {} on {}  {}\n",
                e.name(),
                m.user,
                m.login,
                m.host,
                render::time(m.started_at)
            ));
            for f in found.iter().take(20) {
                text.push_str(&format!("  +{:>8.1}s  {}\n", f.time.as_secs_f64(), f.line));
            }
        }
        if text.is_empty() {
            text.push_str("No recording showed that text on screen.\n");
        }
        return Ok(Reply { json, text });
    }
    let keep = entries.len().saturating_sub(c.limit);
    entries.drain(..keep);
    let json = json!(entries.iter().map(entry_json).collect::<Vec<_>>());
    let text = if entries.is_empty() {
        "No recordings match.\n".to_string()
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let m = &e.manifest;
                let secs = (m.ended_at - m.started_at).num_seconds().max(0);
                vec![
                    e.name(),
                    m.kind.to_string(),
                    m.user.clone(),
                    format!("{}@{}", m.login, m.host),
                    m.grant
                        .clone()
                        .unwrap_or_else(|| format!("role:{}", m.role)),
                    render::time(m.started_at),
                    policy::duration::format(chrono::TimeDelta::seconds(secs.max(1))),
                    if m.complete {
                        m.end_cause.clone()
                    } else {
                        format!("{} (incomplete)", m.end_cause)
                    },
                ]
            })
            .collect();
        render::table(
            &[
                "RECORDING",
                "KIND",
                "USER",
                "TARGET",
                "BY",
                "STARTED",
                "LENGTH",
                "END",
            ],
            &rows,
        )
    };
    Ok(Reply { json, text })
}

/// The bytes to play, with the delay before each.
pub type Playback = Vec<(Duration, Vec<u8>)>;

/// A recording with a terminal (asciicast) part, or why there is none.
fn terminal_recording(store: &RecordingStore, which: &str) -> Result<(Entry, Recording), Failure> {
    let entry = catalog::find(store.dir(), which).map_err(Failure::not_found)?;
    match entry.read_cast() {
        Ok(Some(rec)) => Ok((entry, rec)),
        Ok(None) => Err(Failure::usage(format!(
            "{} is a {} channel recorded as metadata only (no terminal); `recordings --json --session {}` shows what it did",
            entry.name(),
            entry.manifest.kind,
            entry.manifest.session
        ))),
        Err(message) => Err(Failure { status: super::exit::FAILURE, message }),
    }
}

pub fn replay(
    broker: &Broker,
    store: &RecordingStore,
    user: &str,
    c: &ReplayCmd,
) -> Result<Playback, Failure> {
    require_auditor(broker, user)?;
    let (_, rec) = terminal_recording(store, &c.recording)?;
    let idle = c
        .idle_limit
        .as_deref()
        .map(|s| {
            policy::duration::parse(s).map_err(|e| Failure::usage(format!("--idle-limit: {e}")))
        })
        .transpose()?
        .and_then(|d| d.to_std().ok());
    let schedule = recorder::replay::schedule(&rec, c.speed, idle)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let mut out = Vec::new();
    let mut pending = Duration::ZERO;
    for step in schedule {
        pending += step.delay;
        match &step.event.kind {
            EventKind::Output(data) => {
                out.push((pending, data.clone().into_bytes()));
                pending = Duration::ZERO;
            }
            EventKind::Marker(label) if c.markers => {
                out.push((
                    pending,
                    format!("\r\n\x1b[2m[latch: {label}]\x1b[0m\r\n").into_bytes(),
                ));
                pending = Duration::ZERO;
            }
            _ => {}
        }
    }
    Ok(out)
}

pub fn transcript(
    broker: &Broker,
    store: &RecordingStore,
    user: &str,
    c: &TranscriptCmd,
) -> CmdResult {
    require_auditor(broker, user)?;
    let (entry, rec) = terminal_recording(store, &c.recording)?;
    let text = recorder::screen::transcript(&rec).map_err(|e| Failure {
        status: super::exit::FAILURE,
        message: e.to_string(),
    })?;
    let m = &entry.manifest;
    let head = format!(
        "# {}: {} as {} on {} ({}), {} to {}, {}\n",
        entry.name(),
        m.user,
        m.login,
        m.host,
        m.grant
            .clone()
            .unwrap_or_else(|| format!("role:{}", m.role)),
        render::time(m.started_at),
        render::time(m.ended_at),
        m.end_cause
    );
    Ok(Reply {
        json: json!({"recording": entry.name(), "manifest": entry_json(&entry), "transcript": text}),
        text: format!("{head}{text}"),
    })
}
