//! `sessions` and `kill`: live proxied sessions.

use super::cli::{KillCmd, SessionsCmd};
use super::render;
use super::{CmdResult, Failure, Reply};
use crate::broker::Broker;
use crate::sessions::SessionRegistry;
use chrono::Utc;
use policy::session::SessionId;
use serde_json::json;
use std::sync::Arc;

pub fn list(
    broker: &Arc<Broker>,
    registry: &SessionRegistry,
    user: &str,
    c: SessionsCmd,
) -> CmdResult {
    let now = Utc::now();
    let visible: Vec<_> = registry
        .all()
        .into_iter()
        .filter(|s| {
            if c.mine {
                return s.user == user;
            }
            broker.read(|_, settings| {
                s.user == user || settings.is_admin(user) || settings.is_approver_for(user, &s.role)
            })
        })
        .map(|s| s.snapshot())
        .collect();
    let json = json!(visible);
    let text = if visible.is_empty() {
        "No live sessions.\n".to_string()
    } else {
        let rows: Vec<Vec<String>> = visible
            .iter()
            .map(|s| {
                vec![
                    s.id.to_string(),
                    s.user.clone(),
                    format!("{}@{}", s.login, s.host),
                    s.grant
                        .map(|g| g.to_string())
                        .unwrap_or_else(|| format!("role:{}", s.role)),
                    render::relative(s.started_at, now),
                    s.expires_at
                        .map(|e| render::relative(e, now))
                        .unwrap_or_else(|| "standing".into()),
                    s.bytes_in.to_string(),
                    s.bytes_out.to_string(),
                ]
            })
            .collect();
        render::table(
            &[
                "ID",
                "USER",
                "TARGET",
                "BY",
                "STARTED",
                "ENDS",
                "BYTES_IN",
                "BYTES_OUT",
            ],
            &rows,
        )
    };
    Ok(Reply { json, text })
}

pub async fn kill(broker: &Arc<Broker>, user: &str, c: KillCmd) -> CmdResult {
    let id: SessionId = c.session.parse().map_err(Failure::usage)?;
    let actor = user.to_string();
    let reason = c.reason.clone();
    broker
        .execute(actor.clone(), move |s, st, now| {
            s.kill_session(st, &actor, id, reason.as_deref(), now)
        })
        .await?;
    Ok(Reply {
        json: json!({"session": id, "killed": true, "reason": c.reason}),
        text: format!("{id} is cut: its user sees why, and both connections are closed.\n"),
    })
}
